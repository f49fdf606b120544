"""The selection rule (issue #34): choices that noise cannot make.

Why a new rule: the former one averaged four per-source validation AUCs, two of them from small
splits (MSK 117 images, the ISIC archive 297) whose 95 % intervals are ±0.06-0.08; a recipe change
then "won" on validation and lost on test. This rule:

* pools MSK and the ISIC archive into one group (414 images of the same archive and camera era),
  so the figure is the mean AUC of three groups of 414-1,900 images: HAM10000, BCN, MSK+archive;
* scores the *difference* between two models on the same images with a paired bootstrap that
  resamples whole lesions within each source (the errors of two models on one image are
  correlated; resampling lesions keeps a lesion's several images together);
* puts 7-class balanced accuracy, BCC and melanoma recall beside AUC, so a model that ranks
  benign/malignant better but diagnoses worse is seen.

A candidate replaces the reference only when the lower end of the 95 % interval of Δ(rule AUC) is
above zero and neither Δ balanced accuracy nor a group's ΔAUC is below −0.01 (point estimates).
Derm7pt is scored the same way beside it and decides nothing (evaluation only).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dermalens.core.taxonomy import DX_CODES, HAM_FOLD
from dermalens.evaluation.bootstrap import percentile_interval, resamples
from dermalens.evaluation.metrics import binary_auc, malignant_truth

#: The rule's groups: MSK and the ISIC archive pooled; an unknown source is its own group.
RULE_GROUPS = {"ham10000": "ham10000", "bcn": "bcn", "msk": "msk+archive", "isic-archive": "msk+archive"}
#: Point-estimate floor for Δ balanced accuracy and for each group's ΔAUC.
TOLERANCE = -0.01


@dataclass
class Scored:
    """One model's predictions on a set of images (rows of evaluate's predictions.csv files)."""

    ids: list[str]
    sources: list[str]
    labels: list[str]
    p_malignant: np.ndarray
    prediction: list[str]

    def __post_init__(self) -> None:
        # Arrays every bootstrap resample indexes: built once here, not once per resample.
        self.label_array = np.asarray(self.labels, dtype=object)
        self.prediction_array = np.asarray(self.prediction, dtype=object)
        self.truth = malignant_truth(self.labels)
        self.rule_groups = np.asarray([RULE_GROUPS.get(s, s) for s in self.sources], dtype=object)

    def take(self, order: Sequence[str]) -> Scored:
        at = {image: k for k, image in enumerate(self.ids)}
        missing = [i for i in order if i not in at]
        if missing:
            raise ValueError(f"{len(missing)} images scored by one model only (e.g. {missing[0]})")
        idx = [at[i] for i in order]
        pick = [self.ids, self.sources, self.labels, self.prediction]
        ids, sources, labels, prediction = ([values[k] for k in idx] for values in pick)
        return Scored(ids, sources, labels, self.p_malignant[idx], prediction)


def read_predictions(paths: Sequence[Path]) -> Scored:
    """The rows of one or more predictions.csv files; refused images keep their scores."""
    rows: list[dict[str, str]] = []
    for path in paths:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows.extend(csv.DictReader(f))
    if not rows:
        raise ValueError(f"no predictions in {', '.join(map(str, paths))}")
    return Scored(
        [r["image"] for r in rows],
        [r.get("source") or "all" for r in rows],
        [HAM_FOLD.get(r["label"], r["label"]) for r in rows],
        np.asarray([float(r["p_malignant"]) for r in rows]),
        [r["prediction"] for r in rows],
    )


def figures(scored: Scored, idx: np.ndarray) -> dict[str, float]:
    """The rule's figures on the rows `idx`: each group's AUC and their mean, pooled 7-class
    balanced accuracy over the classes present, BCC and melanoma recall."""
    labels, preds = scored.label_array[idx], scored.prediction_array[idx]
    groups, y, p = scored.rule_groups[idx], scored.truth[idx], scored.p_malignant[idx]
    out = {f"auc_{g}": binary_auc(y[groups == g], p[groups == g]) for g in sorted(set(groups))}
    out["rule_auc"] = float(np.nanmean(list(out.values())))
    recalls = {c: float(np.mean(preds[labels == c] == c)) for c in DX_CODES if np.any(labels == c)}
    out["balanced_accuracy"] = float(np.mean(list(recalls.values()))) if recalls else math.nan
    out["bcc_recall"] = recalls.get("bcc", math.nan)
    out["mel_recall"] = recalls.get("mel", math.nan)
    return out


def stratified_resamples(
    sources: Sequence[str], groups: Sequence[str], n_boot: int, seed: int = 0
) -> Iterator[np.ndarray]:
    """Index arrays that resample whole lesions within each source (each source keeps its size)."""
    strata = {s: np.nonzero(np.asarray(sources, dtype=object) == s)[0] for s in sorted(set(sources))}
    streams = {
        s: resamples(len(rows), n_boot, seed + k, [groups[int(i)] for i in rows])
        for k, (s, rows) in enumerate(strata.items())
    }
    for _ in range(n_boot):
        yield np.concatenate([strata[s][next(stream)] for s, stream in streams.items()])


def paired_comparison(
    reference: Scored, candidate: Scored, lesions: dict[str, str], *, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Each figure for both models and the paired bootstrap interval of candidate − reference."""
    candidate = candidate.take(reference.ids)
    groups = [lesions.get(i, i) for i in reference.ids]
    everything = np.arange(len(reference.ids))
    a, b = figures(reference, everything), figures(candidate, everything)
    draws: dict[str, list[float]] = {k: [] for k in a}
    for idx in stratified_resamples(reference.sources, groups, n_boot, seed):
        fa, fb = figures(reference, idx), figures(candidate, idx)
        for key in draws:
            draws[key].append(fb.get(key, math.nan) - fa.get(key, math.nan))
    return {
        key: {
            "reference": a[key],
            "candidate": b[key],
            "delta": b[key] - a[key],
            "ci": percentile_interval(d),
        }
        for key, d in draws.items()
    }


def verdict(comparison: dict[str, Any]) -> tuple[bool, str]:
    """Whether the candidate replaces the reference under the rule, and why (in words)."""
    rule = comparison["rule_auc"]
    low = rule["ci"][0] if rule["ci"] else math.nan
    worse = [k for k, v in comparison.items() if k.startswith("auc_") and v["delta"] < TOLERANCE]
    ba = comparison["balanced_accuracy"]["delta"]
    if not low > 0:
        return False, f"Δ rule AUC {rule['delta']:+.4f}, 95 % interval reaches {low:+.4f} (not above 0)"
    if worse or ba < TOLERANCE:
        return False, f"Δ rule AUC interval above 0, but lower: {', '.join(worse) or 'balanced accuracy'}"
    return True, f"Δ rule AUC {rule['delta']:+.4f} (95 % interval from {low:+.4f}), no group or BA lower"
