"""Turning predictor output into API results: heatmap PNGs, labels from file names, correctness.

The heatmap is sent as a transparent RGBA PNG at the model's input size. It covers what the
model saw: the whole frame stretched to the input (`preprocessing.resize: stretch`, which CSS
``object-fit: fill`` shows) or, for older models, the centre crop to the input's aspect ratio
(``object-fit: cover``), so the page lays it over the thumbnail without server-side compositing.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from PIL import Image

from dermalens.core.taxonomy import DIAGNOSES
from dermalens.inference.overlay import heatmap_rgba
from dermalens.inference.results import Prediction, correctness


def heatmap_png_base64(heatmap: np.ndarray) -> str:
    """The heatmap as a base64 RGBA PNG (no data: prefix)."""
    buffer = io.BytesIO()
    Image.fromarray(heatmap_rgba(heatmap), "RGBA").save(buffer, "PNG", compress_level=3)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def result_dict(
    prediction: Prediction, *, filename: str, label: str | None, heatmap: bool, upload: dict[str, Any]
) -> dict[str, Any]:
    """One `ImageResult` as a dict (upload: sha256, size_bytes, width, height): the prediction's
    JSON fields with the file's name, label and correctness (key order as the log stores it)."""
    correct, correct_dx = correctness(label, prediction)
    fields = prediction.json_fields()
    code = fields.pop("prediction")  # None for a refused image: no verdict, no diagnosis
    diagnosis = DIAGNOSES.get(code) if code else None
    return {
        "filename": filename,
        "prediction": code,
        "prediction_name": (diagnosis.name if diagnosis else code) if code else None,
        **fields,
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
    return {"model": member.model, **member.json_fields()}
