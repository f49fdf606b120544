"""Turning predictor output into API results: heatmap PNGs, labels from file names, correctness.

The heatmap is sent as a transparent RGBA PNG at the model's input size. It covers the
centre crop the model saw (the image cropped to the input's aspect ratio), which is
exactly what CSS ``object-fit: cover`` shows in a box of that aspect ratio, so the page
can lay it over the thumbnail without any server-side compositing.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from PIL import Image

from dermalens.inference.results import Prediction, correctness
from dermalens.taxonomy import DIAGNOSES

#: Colour ramp (value, RGB) of the evidence map: blue (low) → cyan → yellow → red (high).
_RAMP = ((0.0, (0, 0, 255)), (0.35, (0, 255, 255)), (0.65, (255, 255, 0)), (1.0, (255, 0, 0)))


def heatmap_rgba(heatmap: np.ndarray) -> np.ndarray:
    """H×W values in [0, 1] → H×W×4 uint8; weak evidence is nearly transparent."""
    value = np.clip(np.nan_to_num(heatmap.astype(np.float32)), 0.0, 1.0)
    stops = np.array([s for s, _ in _RAMP], dtype=np.float32)
    colours = np.array([c for _, c in _RAMP], dtype=np.float32)
    rgb = np.stack([np.interp(value, stops, colours[:, k]) for k in range(3)], axis=-1)
    alpha = 190.0 * value**1.5  # the image stays visible under weak and medium evidence
    return np.concatenate([rgb, alpha[..., None]], axis=-1).round().astype(np.uint8)


def heatmap_png_base64(heatmap: np.ndarray) -> str:
    """The heatmap as a base64 RGBA PNG (no data: prefix)."""
    buffer = io.BytesIO()
    Image.fromarray(heatmap_rgba(heatmap), "RGBA").save(buffer, "PNG", compress_level=3)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def result_dict(
    prediction: Prediction, *, filename: str, label: str | None, heatmap: bool, upload: dict[str, Any]
) -> dict[str, Any]:
    """One `ImageResult` as a dict (upload: sha256, size_bytes, width, height)."""
    correct, correct_dx = correctness(label, prediction)
    diagnosis = DIAGNOSES.get(prediction.prediction)
    return {
        "filename": filename,
        "prediction": prediction.prediction,
        "prediction_name": diagnosis.name if diagnosis else prediction.prediction,
        "p_malignant": round(prediction.p_malignant, 6),
        "decision": prediction.decision,
        "threshold": round(prediction.threshold, 6),
        "ood": prediction.ood,
        "ood_score": round(prediction.ood_score, 4),
        "probabilities": {k: round(v, 6) for k, v in prediction.probabilities.items()},
        "heatmap_png": heatmap_png_base64(prediction.heatmap)
        if heatmap and prediction.heatmap is not None
        else None,
        "true_label": label,
        "correct": correct,
        "correct_dx": correct_dx,
        **upload,
    }
