"""Turning the engine's result into the API's: the upload's name, hash and label, and the heatmap PNG.

The heatmap is sent as a transparent RGBA PNG at the model's input size. It covers what the
model saw: the whole frame stretched to the input (`preprocessing.resize: stretch`, which CSS
``object-fit: fill`` shows) or, for older models, the centre crop to the input's aspect ratio
(``object-fit: cover``), so the page lays it over the thumbnail without server-side compositing.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from dermalens.core.hashing import bytes_sha256
from dermalens.inference.overlay import heatmap_rgba
from dermalens.inference.results import Prediction
from dermalens.server.schemas import ImageResult


def heatmap_png_base64(heatmap: np.ndarray) -> str:
    """The heatmap as a base64 RGBA PNG (no data: prefix)."""
    buffer = io.BytesIO()
    Image.fromarray(heatmap_rgba(heatmap), "RGBA").save(buffer, "PNG", compress_level=3)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def api_result(
    result: Prediction, *, filename: str, label: str | None, data: bytes, heatmap: bool
) -> ImageResult:
    """The API's result for one upload: the engine's result judged against the upload's label (once:
    the response and the log row read it), with the file's name, hash and size, and the heatmap as a
    PNG when it was asked for."""
    known = result.judged(label, filename=filename, sha256=bytes_sha256(data), size_bytes=len(data))
    png = heatmap_png_base64(known.heatmap) if heatmap and known.heatmap is not None else None
    return ImageResult(**dict(known), heatmap_png=png)
