"""Per-source figures: the same model on each clinic's images separately.

Why: a pooled figure over HAM10000 + BCN + MSK is dominated by whichever source is largest and
easiest; a model that is good on its own clinic and poor elsewhere looks fine pooled. Each
source gets its own AUC and balanced accuracy with intervals, its melanoma-vs-nevus and
melanoma-vs-rest AUC, and its refusal rate (the OOD gate must accept ordinary dermoscopy from
every clinic, not only the one it was fitted on).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dermalens.evaluation.bootstrap import metric_intervals
from dermalens.evaluation.metrics import Bias, compute_metrics, one_vs_auc


def source_metrics(
    sources: Sequence[str],
    labels: Sequence[str],
    probs: np.ndarray,
    ood: np.ndarray,
    classes: Sequence[str],
    malignant: Sequence[str],
    threshold: float,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    groups: Sequence[str] | None = None,
    class_bias: Bias = None,
) -> dict[str, dict[str, Any]]:
    """``{source: {n, refused, refused_by_class, binary, multiclass, ci, mel_vs_nv_auc,
    mel_vs_rest_auc}}``."""
    keyed = np.asarray([s or "unknown" for s in sources], dtype=object)
    probs = np.asarray(probs, dtype=float)
    out: dict[str, dict[str, Any]] = {}
    for source in sorted(set(keyed)):
        rows = np.nonzero(keyed == source)[0]
        sub_labels = [labels[int(i)] for i in rows]
        figures = compute_metrics(sub_labels, probs[rows], classes, malignant, threshold, class_bias)
        out[str(source)] = {
            "n": len(rows),
            "refused": int(np.asarray(ood)[rows].sum()),
            "refused_rate": float(np.asarray(ood)[rows].mean()),
            "refused_by_class": refused_by_class(sub_labels, np.asarray(ood)[rows]),
            "binary": figures["binary"],
            "multiclass": figures["multiclass"],
            "mel_vs_nv_auc": one_vs_auc(sub_labels, probs[rows], classes, "mel", against=("nv",)),
            "mel_vs_rest_auc": one_vs_auc(sub_labels, probs[rows], classes, "mel"),
            "ci": metric_intervals(
                sub_labels,
                probs[rows],
                classes,
                malignant,
                threshold,
                n_boot=n_boot,
                seed=seed,
                groups=[groups[int(i)] for i in rows] if groups is not None else None,
                class_bias=class_bias,
            ),
        }
    return out


def source_lines(by_source: dict[str, dict[str, Any]]) -> list[str]:
    """One printable line per source (the CLI's summary)."""
    lines = []
    for source, row in by_source.items():
        multi = row.get("multiclass") or {}
        ci = row["ci"]["binary"].get("auc")
        auc = row["binary"]["auc"]
        auc_text = f"{auc:.3f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")
        ba = multi.get("balanced_accuracy")
        lines.append(
            f"  {source:<14} n={row['n']:<5} AUC {auc_text}  bal.acc "
            f"{'n/a' if ba is None else f'{ba:.3f}'}  mel-vs-nv AUC {_num(row['mel_vs_nv_auc'])}  "
            f"refused {row['refused']} ({row['refused_rate']:.1%})"
        )
    return lines


def _num(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def refused_by_class(labels: Sequence[str], ood: np.ndarray) -> dict[str, dict[str, float]]:
    """``{label: {n, refused, rate}}``: a gate that refuses the lesions rare in its training data
    (BCC, vascular lesions, dermatofibromas) more often than nevi misses exactly the ones that
    matter, so refusals are reported per diagnosis too."""
    flags = np.asarray(ood, dtype=bool)
    out: dict[str, dict[str, float]] = {}
    for label in sorted(set(labels)):
        rows = np.asarray([lab == label for lab in labels])
        out[label] = {
            "n": int(rows.sum()),
            "refused": int(flags[rows].sum()),
            "rate": float(flags[rows].mean()),
        }
    return out
