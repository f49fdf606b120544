"""Figures of the evaluation and comparison reports, as PNG bytes (matplotlib, Agg backend).

Why PNG bytes: the reports embed them as base64 ``data:`` URIs, so one HTML file holds
everything and can be mailed, archived or attached to a model card without a folder.
Curves come from scikit-learn (`roc_curve`, `precision_recall_curve`, `calibration_curve`).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

DPI = 100


@dataclass
class Curve:
    """One model's binary scores, for ROC/PR plots (several Curves are overlaid)."""

    name: str
    y: np.ndarray  # 1 = malignant
    p: np.ndarray  # p_malignant
    threshold: float | None = None  # operating threshold to mark


def png(fig: Figure) -> bytes:
    """Render and close a figure (closing matters: reports draw dozens)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _operating(curve: Curve) -> tuple[float, float, float, float] | None:
    """(fpr, tpr, recall, precision) at the curve's threshold, or None."""
    if curve.threshold is None:
        return None
    decision = curve.p >= curve.threshold
    positives, negatives = curve.y == 1, curve.y == 0
    tpr = float(decision[positives].mean()) if positives.any() else np.nan
    fpr = float(decision[negatives].mean()) if negatives.any() else np.nan
    precision = float(curve.y[decision].mean()) if decision.any() else np.nan
    return fpr, tpr, tpr, precision


def roc_png(curves: Sequence[Curve], title: str = "ROC: malignant vs benign") -> bytes:
    from sklearn.metrics import roc_auc_score

    fig, ax = plt.subplots(figsize=(5, 4.6))
    for curve in curves:
        if not 0 < curve.y.sum() < len(curve.y):
            continue
        fpr, tpr, _ = roc_curve(curve.y, curve.p)
        line = ax.plot(fpr, tpr, label=f"{curve.name} (AUC {roc_auc_score(curve.y, curve.p):.3f})")[0]
        point = _operating(curve)
        if point is not None:
            ax.plot(
                point[0],
                point[1],
                "o",
                color=line.get_color(),
                markersize=8,
                label=f"operating point t={curve.threshold:.3f}",
            )
    ax.plot([0, 1], [0, 1], ":", color="grey", linewidth=1)
    ax.set(
        xlabel="1 − specificity (false positive rate)",
        ylabel="sensitivity (true positive rate)",
        xlim=(0, 1),
        ylim=(0, 1.01),
        title=title,
    )
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return png(fig)


def pr_png(curves: Sequence[Curve]) -> bytes:
    from sklearn.metrics import average_precision_score

    fig, ax = plt.subplots(figsize=(5, 4.6))
    for curve in curves:
        if not curve.y.any():
            continue
        precision, recall, _ = precision_recall_curve(curve.y, curve.p)
        ap = average_precision_score(curve.y, curve.p)
        line = ax.step(recall, precision, where="post", label=f"{curve.name} (AP {ap:.3f})")[0]
        point = _operating(curve)
        if point is not None:
            ax.plot(point[2], point[3], "o", color=line.get_color(), markersize=8, label="operating point")
        ax.axhline(curve.y.mean(), linestyle=":", color="grey", linewidth=1)
    ax.set(
        xlabel="recall (sensitivity)",
        ylabel="precision (PPV)",
        xlim=(0, 1),
        ylim=(0, 1.01),
        title="Precision-recall: malignant",
    )
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    return png(fig)


def reliability_png(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> bytes:
    """Observed malignancy rate per bin of p_malignant, with the count histogram below."""
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(5, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    observed, predicted = calibration_curve(y, p, n_bins=n_bins, strategy="uniform", pos_label=1)
    top.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    top.plot(predicted, observed, "o-", label="model")
    top.set(ylabel="observed share malignant", ylim=(0, 1.01), title="Reliability of p_malignant")
    top.legend(fontsize=8)
    top.grid(alpha=0.3)
    bottom.hist(p, bins=np.linspace(0, 1, n_bins + 1), color="tab:grey")
    bottom.set(xlabel="predicted p_malignant", ylabel="images", xlim=(0, 1))
    return png(fig)


def confusion_png(matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str) -> bytes:
    """Row-normalised colours (recall per true class), raw counts written in the cells."""
    counts = np.asarray(matrix, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = max(3.6, 1.0 + 0.55 * len(labels))
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{int(counts[i, j])}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if share[i, j] > 0.6 else "black",
            )
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    return png(fig)


def per_class_png(per_class: dict[str, dict[str, Any]]) -> bytes:
    names = list(per_class)
    keys = ("precision", "recall", "f1")
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(names) + 2), 3.8))
    for k, key in enumerate(keys):
        values = [per_class[c][key] if per_class[c][key] is not None else 0.0 for c in names]
        ax.bar(x + (k - 1) * 0.27, values, width=0.27, label=key)
    ax.set_xticks(x, [f"{c}\n(n={per_class[c]['support']})" for c in names])
    ax.set(ylim=(0, 1), title="Per-class precision, recall and F1")
    ax.legend(fontsize=8, ncol=3)
    ax.grid(axis="y", alpha=0.3)
    return png(fig)


def thumbnail_uri(path: Any, width: int = 140) -> str | None:
    """A small JPEG of an image file as a data URI (None if it cannot be read)."""
    from PIL import Image

    from dermalens.core.decode import ImageDecodeError, decode_image

    try:
        image = Image.fromarray(decode_image(path, min_size=(width, width)))
    except ImageDecodeError:
        return None
    image.thumbnail((width, width))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return data_uri(buffer.getvalue(), "image/jpeg")
