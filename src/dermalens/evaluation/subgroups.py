"""Subgroup figures: the same metrics per age band, sex and anatomical site.

Why: a model can be good on average and poor for a group (older patients, acral or
facial sites, which are rarer in HAM10000); a report that hides this misleads. Rows
with few malignant or benign images are flagged rather than dropped, so the table adds
up to the whole set and the reader sees where the data is too thin to judge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from dermalens.evaluation.metrics import Bias, binary_metrics, dx_mask, malignant_truth, multiclass_metrics

#: Age bands of the subgroup table: [low, high) in years, and their label.
AGE_BANDS: tuple[tuple[float, float, str], ...] = (
    (0, 30, "<30"),
    (30, 45, "30-44"),
    (45, 60, "45-59"),
    (60, 75, "60-74"),
    (75, math.inf, "75+"),
)


def age_band(age: float | None) -> str | None:
    """The subgroup label of an age in years (None when unknown)."""
    if age is None or math.isnan(age):
        return None
    return next(label for low, high, label in AGE_BANDS if low <= age < high)


def subgroup_metrics(
    labels: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
    malignant: Sequence[str],
    threshold: float,
    attributes: dict[str, Sequence[str | None]],
    *,
    min_per_class: int = 10,
    class_bias: Bias = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Figures per value of each attribute (e.g. ``{"age": bands, "sex": ..., "site": ...}``).

    Attributes with no known value are left out. Unknown values form an ``unknown`` row,
    so the rows add up to the whole set. Rows with fewer than `min_per_class` malignant or
    benign images are flagged ``few_cases``: their figures are too noisy to compare.
    """
    probs = np.asarray(probs, dtype=float)
    mal_idx = [k for k, c in enumerate(classes) if c in malignant]
    y = malignant_truth(labels)
    p_mal = probs[:, mal_idx].sum(axis=1)
    dx = dx_mask(labels, classes)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, values in attributes.items():
        if not any(v is not None for v in values):
            continue
        keyed = np.asarray([v if v is not None else "unknown" for v in values], dtype=object)
        order = sorted(set(keyed), key=lambda v: (v == "unknown", _band_rank(v), v))
        table: dict[str, dict[str, Any]] = {}
        for value in order:
            rows = keyed == value
            row = binary_metrics(y[rows], p_mal[rows], threshold, full=False)
            row["few_cases"] = bool(min(row["n_malignant"], row["n"] - row["n_malignant"]) < min_per_class)
            sub = rows & dx
            if sub.any():
                dx_labels = [labels[int(i)] for i in np.nonzero(sub)[0]]
                multi = multiclass_metrics(dx_labels, probs[sub], classes, full=False, class_bias=class_bias)
                row["accuracy"], row["balanced_accuracy"] = multi["accuracy"], multi["balanced_accuracy"]
            table[str(value)] = row
        out[name] = table
    return out


def _band_rank(value: str) -> int:
    labels = [label for _low, _high, label in AGE_BANDS]
    return labels.index(value) if value in labels else len(labels)
