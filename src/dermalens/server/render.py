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

from dermalens.inference.overlay import heatmap_rgba
from dermalens.inference.results import Prediction, correctness
from dermalens.taxonomy import DIAGNOSES


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
    code = prediction.diagnosis  # None for a refused image: no verdict, no diagnosis
    diagnosis = DIAGNOSES.get(code) if code else None
    return {
        "filename": filename,
        "prediction": code,
        "prediction_name": (diagnosis.name if diagnosis else code) if code else None,
        "p_malignant": round(prediction.p_malignant, 6),
        "decision": prediction.decision,
        "reason": prediction.reason,
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
        # The patient data the model read (None for image-only models, which ignore it).
        "metadata": prediction.metadata.to_dict() if prediction.metadata is not None else None,
        "members": [member_dict(m) for m in prediction.members] if prediction.members is not None else None,
        **upload,
    }


def member_dict(member: Prediction) -> dict[str, Any]:
    """One ensemble member's own result (``compare=true``): no verdict when its own gate refuses."""
    return {
        "model": member.model,
        "prediction": member.diagnosis,
        "p_malignant": round(member.p_malignant, 6),
        "decision": member.decision,
        "reason": member.reason,
        "threshold": round(member.threshold, 6),
        "ood": member.ood,
        "ood_score": round(member.ood_score, 4),
        "probabilities": {k: round(v, 6) for k, v in member.probabilities.items()},
    }
