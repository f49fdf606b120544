"""The diagnosis decision rule: which class the app names, fitted on validation, stored in the artifact.

Why: a network trained on HAM10000's mix (two thirds nevi) and weighted only part of the way
towards balance names the common class too often, so 7-class balanced accuracy and the recall of
rare malignant classes (BCC, akiec) suffer although the probabilities rank them well. Logit
adjustment (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021) picks the class by
log p − τ·log(training prior) instead of p; τ = 0 is the plain argmax, τ = 1 the full correction.

Only the *decision* moves: the probabilities, p_malignant, its threshold and every AUC are those of
the calibrated model. τ is one number chosen on the validation splits (the mean over sources of
7-class balanced accuracy, so no single clinic decides), never on a test split. It is stored as
per-class offsets (`ArtifactMeta.class_bias`) that `inference.probabilities.top_class` reads
everywhere a diagnosis is named.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import balanced_accuracy_score

from dermalens.artifact.meta import ArtifactMeta
from dermalens.artifact.store import load_meta
from dermalens.artifact.write import write_meta
from dermalens.evaluation.run import label_targets, model_label
from dermalens.inference.probabilities import top_class

log = logging.getLogger(__name__)

#: The strengths tried, from the plain argmax (0) to beyond the full prior correction.
TAU_GRID = tuple(round(0.05 * k, 2) for k in range(31))


def training_prior(meta: ArtifactMeta) -> np.ndarray:
    """[C] the class mix of the artifact's training data (`data.sources` counts, pooled over
    sources, labels folded into the model's classes: SCC → akiec), smoothed by one image."""
    counts = np.ones(len(meta.classes))
    sources = meta.data.get("sources") or {}
    for per_class in sources.values():
        for label, n in per_class.items():
            name = model_label(label, meta.classes)
            if name in meta.classes:
                counts[meta.classes.index(name)] += n
    if counts.sum() <= len(meta.classes):
        raise ValueError(f"{meta.name}: artifact.json has no per-source class counts (data.sources)")
    return counts / counts.sum()


def source_balanced_accuracy(
    probs: np.ndarray, targets: np.ndarray, sources: Sequence[str], bias: np.ndarray | None
) -> dict[str, float]:
    """7-class balanced accuracy per source (sources with fewer than two classes are left out)."""
    keyed = np.asarray(sources, dtype=object)
    predicted = top_class(probs, bias)
    out: dict[str, float] = {}
    for source in sorted(set(keyed.tolist())):
        rows = keyed == source
        if len(set(targets[rows].tolist())) >= 2:
            with warnings.catch_warnings():  # classes predicted that the source lacks: expected
                warnings.simplefilter("ignore", UserWarning)
                out[str(source)] = float(balanced_accuracy_score(targets[rows], predicted[rows]))
    return out


def fit_tau(
    probs: np.ndarray,
    targets: np.ndarray,
    sources: Sequence[str],
    prior: np.ndarray,
    grid: Sequence[float] = TAU_GRID,
) -> tuple[float, dict[float, dict[str, float]]]:
    """The τ of `grid` with the highest mean per-source balanced accuracy (the smallest on ties),
    and every τ's per-source figures (the evidence stored in the artifact)."""
    log_prior = np.log(prior)
    table = {float(tau): source_balanced_accuracy(probs, targets, sources, -tau * log_prior) for tau in grid}
    if not any(table.values()):
        raise ValueError("no source has two or more diagnoses in the validation data")
    best = max(table, key=lambda tau: (round(float(np.mean(list(table[tau].values()))), 6), -tau))
    return best, table


@dataclass
class DecisionRule:
    """A fitted decision rule: the per-class offsets, the rule in words, and the evidence."""

    class_bias: list[float]
    rule: str
    evidence: dict[str, Any]


def fit_rule(
    meta: ArtifactMeta, probs: np.ndarray, targets: np.ndarray, sources: Sequence[str], source: str
) -> DecisionRule:
    """Fit τ on calibrated probabilities ([N, C], class indices `targets`) against the training
    prior of `meta` (one model's, or an ensemble's primary's): the offsets, the rule, the evidence."""
    prior = training_prior(meta)
    tau, table = fit_tau(probs, targets, sources, prior)
    evidence = {
        "source": source,
        "n": len(targets),
        "tau": tau,
        "prior": dict(zip(meta.classes, map(float, prior), strict=True)),
        "balanced_accuracy_before": table[0.0],
        "balanced_accuracy_after": table[tau],
        "grid": {f"{t:.2f}": v for t, v in table.items()},
    }
    rule = (
        f"log p − {tau:.2f}·log(training prior): τ maximises the mean per-source 7-class balanced "
        f"accuracy on {source}"
    )
    return DecisionRule([float(b) for b in -tau * np.log(prior)], rule, evidence)


def set_decision(
    meta: ArtifactMeta, probs: np.ndarray, targets: np.ndarray, sources: Sequence[str], source: str
) -> float:
    """`fit_rule`, written into `meta`: the offsets, the rule and the evidence (a 7-class "dx" head
    only; others keep the argmax)."""
    if meta.head != "dx":
        return 0.0
    fitted = fit_rule(meta, probs, targets, sources, source)
    meta.class_bias, meta.class_bias_rule = fitted.class_bias, fitted.rule
    meta.metrics["decision"] = fitted.evidence
    return float(fitted.evidence["tau"])


def fit_decision_artifact(
    artifact_path: str | os.PathLike[str],
    probs: np.ndarray,
    labels: Sequence[str],
    sources: Sequence[str],
    *,
    source: str = "the validation splits",
    meta: ArtifactMeta | None = None,
) -> ArtifactMeta:
    """Fit the rule on calibrated validation probabilities (rows aligned with `labels`, dx codes;
    SCC counts as akiec, labels the model cannot name are left out) and store it in the artifact."""
    folder = Path(artifact_path)
    if meta is None:
        folder, meta = load_meta(artifact_path)
    if probs.shape != (len(labels), len(meta.classes)):
        raise ValueError(
            f"probabilities {probs.shape} do not match {len(labels)} labels × {len(meta.classes)}"
        )
    keep, targets = label_targets(labels, meta.classes)
    tau = set_decision(
        meta, probs[keep], targets, [s for s, k in zip(sources, keep, strict=True) if k], source
    )
    write_meta(folder, meta)
    log.info("decision rule of %s: tau %.2f", folder, tau)
    return meta


def fit_decision(
    model: str | os.PathLike[str] | None,
    datasets: Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    *,
    split_name: str = "val",
    out: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Fit the decision rule (in place, or on a copy at `out`) on the `split_name` split of every
    (dataset, split file) pair, pooled and scored per source; return the evidence."""
    from dermalens.evaluation.outputs import Pooled, refit_on_splits

    def fit(folder: Path, pooled: Pooled, meta: ArtifactMeta) -> ArtifactMeta:
        return fit_decision_artifact(
            folder, pooled.probs, pooled.labels, pooled.sources, source=pooled.text, meta=meta
        )

    folder, meta = refit_on_splits(model, datasets, fit, split_name=split_name, out=out, progress=progress)
    return {"artifact": str(folder), **meta.metrics["decision"]}
