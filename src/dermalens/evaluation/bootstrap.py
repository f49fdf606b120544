"""Bootstrap confidence intervals and the paired bootstrap test of an AUC difference.

Why the bootstrap: sensitivity, AUC and balanced accuracy have no simple closed-form
interval that holds for every one of them on a few hundred images, while resampling
the test set does. Why optionally by group: HAM10000 holds several photos of one
lesion; resampling images treats them as independent and makes intervals too narrow,
resampling lesions (the ``group`` of a record) does not. Replicates are seeded, so a
report is reproducible to the digit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from dermalens.evaluation.metrics import Bias, binary_metrics, malignant_truth, multiclass_metrics

#: Figures that get an interval in ``metrics.json`` (the "main figures").
BINARY_MAIN = ("auc", "pr_auc", "sensitivity", "specificity", "ppv", "npv", "f1")
MULTICLASS_MAIN = ("accuracy", "balanced_accuracy", "macro_f1", "auc_macro")
UNITS = ("image", "group")


def resamples(
    n: int, n_boot: int, seed: int = 0, groups: Sequence[str] | None = None
) -> Iterator[np.ndarray]:
    """`n_boot` index arrays drawn with replacement: by image, or by whole group when `groups` is given."""
    rng = np.random.default_rng(seed)
    if groups is None:
        for _ in range(n_boot):
            yield rng.integers(0, n, n)
        return
    _, inverse = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    members = [np.nonzero(inverse == g)[0] for g in range(inverse.max() + 1)] if n else []
    for _ in range(n_boot):
        picked = rng.integers(0, len(members), len(members))
        yield np.concatenate([members[g] for g in picked]) if len(members) else np.zeros(0, int)


def percentile_interval(values: Sequence[float], level: float = 0.95) -> list[float] | None:
    """[low, high] percentile interval of the finite replicate values (None if there are none)."""
    finite = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if finite.size == 0:
        return None
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))]


def bootstrap_ci(
    statistic: Callable[[np.ndarray], dict[str, float]],
    n: int,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    groups: Sequence[str] | None = None,
    level: float = 0.95,
) -> dict[str, list[float] | None]:
    """Percentile interval of every figure `statistic(indices)` returns, over bootstrap resamples."""
    draws: dict[str, list[float]] = {}
    for indices in resamples(n, n_boot, seed, groups):
        for key, value in statistic(indices).items():
            draws.setdefault(key, []).append(value)
    return {key: percentile_interval(values, level) for key, values in draws.items()}


def metric_intervals(
    labels: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
    malignant: Sequence[str],
    threshold: float,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    groups: Sequence[str] | None = None,
    level: float = 0.95,
    class_bias: Bias = None,
) -> dict[str, Any]:
    """95 % intervals of the main binary and multiclass figures (the ``ci`` section of ``metrics.json``)."""
    from dermalens.evaluation.metrics import dx_mask

    probs = np.asarray(probs, dtype=float)
    mal_idx = [k for k, c in enumerate(classes) if c in malignant]
    y = malignant_truth(labels)
    p_mal = probs[:, mal_idx].sum(axis=1)
    dx = dx_mask(labels, classes)
    label_arr = np.asarray(labels, dtype=object)

    def statistic(idx: np.ndarray) -> dict[str, float]:
        figures = binary_metrics(y[idx], p_mal[idx], threshold, full=False)
        out = {f"binary.{k}": figures[k] for k in BINARY_MAIN}
        if dx.any():
            keep = idx[dx[idx]]
            multi = multiclass_metrics(
                list(label_arr[keep]), probs[keep], classes, full=False, class_bias=class_bias
            )
            out.update({f"multiclass.{k}": multi[k] for k in MULTICLASS_MAIN})
        return out

    intervals = bootstrap_ci(statistic, len(labels), n_boot=n_boot, seed=seed, groups=groups, level=level)
    result: dict[str, Any] = {
        "level": level,
        "method": "percentile bootstrap",
        "n_boot": n_boot,
        "seed": seed,
        "unit": "group" if groups is not None else "image",
        "binary": {k.split(".", 1)[1]: v for k, v in intervals.items() if k.startswith("binary.")},
    }
    if dx.any():
        result["multiclass"] = {
            k.split(".", 1)[1]: v for k, v in intervals.items() if k.startswith("multiclass.")
        }
    return result


def paired_auc_test(
    y: np.ndarray,
    p_reference: np.ndarray,
    p_other: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    groups: Sequence[str] | None = None,
    level: float = 0.95,
) -> dict[str, Any]:
    """Paired bootstrap of AUC(other) − AUC(reference) on the same resampled images.

    Both models are scored on each resample, so the per-image correlation of their
    errors is kept (an unpaired comparison of two intervals would be far too
    conservative). The two-sided p-value is twice the smaller share of replicates on
    either side of zero (floored at 1/n_boot): the usual bootstrap test of "no difference".
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, dtype=int)
    if not 0 < y.sum() < len(y):
        return {"delta": math.nan, "ci": None, "p_value": math.nan, "n_boot": 0}
    delta = float(roc_auc_score(y, p_other) - roc_auc_score(y, p_reference))
    diffs = []
    for idx in resamples(len(y), n_boot, seed, groups):
        yy = y[idx]
        if 0 < yy.sum() < len(yy):
            diffs.append(float(roc_auc_score(yy, p_other[idx]) - roc_auc_score(yy, p_reference[idx])))
    values = np.asarray(diffs)
    if values.size == 0:
        return {"delta": delta, "ci": None, "p_value": math.nan, "n_boot": 0}
    share = min(float(np.mean(values <= 0)), float(np.mean(values >= 0)))
    p_value = min(1.0, max(2 * share, 1.0 / values.size))
    return {
        "delta": delta,
        "ci": percentile_interval(list(values), level),
        "p_value": p_value,
        "n_boot": int(values.size),
        "unit": "group" if groups is not None else "image",
    }
