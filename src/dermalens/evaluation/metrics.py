"""Medical metrics from arrays: the binary (malignant vs benign) and the diagnostic (dx) view.

Every figure is computed by scikit-learn; this module only chooses which function,
which labels and which edge cases apply, so that the numbers in ``metrics.json`` are
exactly what anyone gets by running scikit-learn on ``predictions.csv``. The one
exception is the expected calibration error, which scikit-learn does not provide: it
is the usual binned formula over `sklearn.calibration.calibration_curve`'s bins.

Undefined figures (an AUC with one class present, a PPV with no positive decision)
are NaN here and ``null`` in JSON: an honest "cannot be computed on this data"
instead of a misleading 0.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from dermalens.core.taxonomy import is_dx_code, is_malignant
from dermalens.inference.probabilities import top_class

#: Sensitivities at which the specificity is reported (screening operating points).
SENSITIVITY_TARGETS = (0.90, 0.95, 0.98)
#: The diagnosis decision offsets (`ArtifactMeta.class_bias`, `Combined.class_bias`); None = argmax.
Bias = Sequence[float] | np.ndarray | None
#: Bins of the expected calibration error and the reliability diagram.
ECE_BINS = 10


def jsonable(value: Any) -> Any:
    """`value` with NaN/inf as None and numpy scalars as Python ones (strict JSON, no ``NaN``)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def malignant_truth(labels: Sequence[str]) -> np.ndarray:
    """1 for a malignant label (dx code or 'malignant'), else 0, via the taxonomy."""
    return np.asarray([int(is_malignant(label)) for label in labels], dtype=int)


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> float:
    """Call a scikit-learn metric; NaN where it is undefined on this data (one class present...)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(fn(*args, **kwargs))
        except ValueError:
            return math.nan


def operating_point(y: np.ndarray, p: np.ndarray, target_sensitivity: float) -> tuple[float, float]:
    """(threshold, specificity) of the highest threshold whose sensitivity is ≥ target.

    The decision is ``p >= threshold``, as `roc_curve` counts it; all ROC points are kept
    (``drop_intermediate=False``), so the threshold is the exact highest one.
    """
    y = np.asarray(y)
    if y.sum() == 0 or y.sum() == len(y):
        return math.nan, math.nan
    fpr, tpr, thresholds = skm.roc_curve(y, p, drop_intermediate=False)
    index = int(np.argmax(tpr >= target_sensitivity - 1e-12))
    return float(min(thresholds[index], 1.0)), float(1.0 - fpr[index])


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Σ_b (n_b / N)·|observed rate_b − mean p_b| over `calibration_curve`'s uniform bins."""
    from sklearn.calibration import calibration_curve

    y, p = np.asarray(y), np.asarray(p, dtype=float)
    if len(y) == 0:
        return math.nan
    observed, predicted = calibration_curve(y, p, n_bins=n_bins, strategy="uniform", pos_label=1)
    # calibration_curve drops empty bins; count the non-empty ones with the same edges.
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=n_bins)
    counts = counts[counts > 0]
    return float(np.sum(counts / len(p) * np.abs(observed - predicted)))


def binary_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC of scores `p` for 0/1 (or boolean) truth `y`; NaN where only one outcome occurs."""
    y = np.asarray(y, dtype=int)
    return _quiet(skm.roc_auc_score, y, p) if 0 < y.sum() < len(y) else math.nan


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float, *, full: bool = True) -> dict[str, Any]:
    """Malignant-vs-benign figures at `threshold` (decision ``p >= threshold``).

    Sensitivity/specificity are the recalls of class 1/0 and PPV/NPV their precisions, all
    from one `precision_recall_fscore_support` call. `full=False` skips the figures that
    bootstrap replicates and subgroup rows do not need.
    """
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    decision = (p >= threshold).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        precision, recall, f1, _ = skm.precision_recall_fscore_support(
            y, decision, labels=[0, 1], zero_division=np.nan
        )
    out: dict[str, Any] = {
        "n": len(y),
        "n_malignant": int(y.sum()),
        "auc": binary_auc(y, p),
        "pr_auc": _quiet(skm.average_precision_score, y, p) if y.any() else math.nan,
        "sensitivity": float(recall[1]),
        "specificity": float(recall[0]),
        "ppv": float(precision[1]),
        "npv": float(precision[0]),
        "f1": float(f1[1]),
        "threshold": float(threshold),
    }
    if full:
        out["ece"] = expected_calibration_error(y, p)
        out["brier"] = _quiet(skm.brier_score_loss, y, p) if len(y) else math.nan
        out["specificity_at_sensitivity"] = {}
        for target in SENSITIVITY_TARGETS:
            cut, specificity = operating_point(y, p, target)
            point = {"specificity": specificity, "threshold": cut}
            out["specificity_at_sensitivity"][f"{target:.2f}"] = point
    return out


def _ovr_aucs(codes: np.ndarray, probs: np.ndarray, n_classes: int) -> np.ndarray:
    """One-vs-rest AUC per class (NaN where a class is absent or is every label), one sklearn call."""
    onehot = np.eye(n_classes, dtype=int)[codes]
    valid = [k for k in range(n_classes) if 0 < onehot[:, k].sum() < len(codes)]
    aucs = np.full(n_classes, math.nan)
    if valid:
        aucs[valid] = skm.roc_auc_score(onehot[:, valid], probs[:, valid], average=None)
    return aucs


def multiclass_metrics(
    y: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
    *,
    full: bool = True,
    class_bias: Bias = None,
) -> dict[str, Any]:
    """Diagnosis figures; averages run over the classes present in `y` (absent ones have no recall).

    The predicted class is the artifact's decision (`top_class` with its `class_bias`), exactly what
    the app shows; the AUCs read the probabilities themselves.

    `auc_macro` is the mean of the one-vs-rest AUCs of the present classes, which equals
    ``roc_auc_score(y, probs, multi_class="ovr", labels=classes)`` when all are present.
    Labels are passed to scikit-learn as class indices (same results, several times faster).
    """
    classes = list(classes)
    probs = np.asarray(probs, dtype=float)
    codes = np.asarray([classes.index(label) for label in y], dtype=int)
    predicted = top_class(probs, None if class_bias is None else np.asarray(class_bias, dtype=float))
    present = sorted(set(codes.tolist()))
    aucs = _ovr_aucs(codes, probs, len(classes))
    present_aucs = [aucs[k] for k in present if not math.isnan(aucs[k])]
    out: dict[str, Any] = {
        "n": len(codes),
        "accuracy": _quiet(skm.accuracy_score, codes, predicted),
        "balanced_accuracy": _quiet(skm.balanced_accuracy_score, codes, predicted),
        "macro_f1": _quiet(skm.f1_score, codes, predicted, labels=present, average="macro", zero_division=0),
        "auc_macro": float(np.mean(present_aucs)) if present_aucs else math.nan,
    }
    if full:
        labels = list(range(len(classes)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            precision, recall, f1, support = skm.precision_recall_fscore_support(
                codes, predicted, labels=labels, zero_division=np.nan
            )
        out["per_class"] = {
            c: {
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "f1": float(f1[k]),
                "auc": float(aucs[k]),
                "support": int(support[k]),
            }
            for k, c in enumerate(classes)
        }
        out["confusion_matrix"] = {
            "labels": classes,
            "matrix": skm.confusion_matrix(codes, predicted, labels=labels).tolist(),
            "rows": "true label",
            "columns": "predicted label",
        }
    return out


def one_vs_auc(
    labels: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
    positive: str,
    *,
    against: Sequence[str] | None = None,
) -> float:
    """ROC AUC of P(`positive`) for `positive` images against `against` images (None: all
    others), e.g. melanoma vs nevus, the hard pair of dermoscopy; NaN when a side is empty or
    the model has no such class."""
    if positive not in classes:
        return math.nan
    labels_arr = np.asarray(labels, dtype=object)
    keep = (
        np.ones(len(labels_arr), dtype=bool) if against is None else np.isin(labels_arr, [positive, *against])
    )
    y = labels_arr[keep] == positive
    if y.all() or not y.any():
        return math.nan
    return _quiet(skm.roc_auc_score, y, np.asarray(probs)[keep][:, list(classes).index(positive)])


def dx_mask(labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Records the diagnostic view can score: a dx label that is one of the model's dx classes."""
    dx_model = all(is_dx_code(c) for c in classes)
    return np.asarray([dx_model and label in classes for label in labels], dtype=bool)


def compute_metrics(
    labels: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
    malignant: Sequence[str],
    threshold: float,
    class_bias: Bias = None,
) -> dict[str, Any]:
    """The ``binary`` and (where dx labels exist) ``multiclass`` sections of ``metrics.json``.

    p_malignant is the sum of the malignant classes' probabilities, as the predictor computes it.
    """
    probs = np.asarray(probs, dtype=float)
    mal_idx = [k for k, c in enumerate(classes) if c in malignant]
    p_mal = probs[:, mal_idx].sum(axis=1)
    result: dict[str, Any] = {"binary": binary_metrics(malignant_truth(labels), p_mal, threshold)}
    mask = dx_mask(labels, classes)
    if mask.any():
        dx_labels = [label for label, keep in zip(labels, mask, strict=True) if keep]
        result["multiclass"] = multiclass_metrics(dx_labels, probs[mask], classes, class_bias=class_bias)
        result["multiclass"]["n_excluded"] = int((~mask).sum())
    else:
        result["multiclass"] = None
    return result
