"""Heatmap overlays as PNG files (the CLI's ``--heatmaps DIR``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from dermalens.inference.results import Prediction


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a [0, 1] heatmap (jet-like ramp) over the canonical RGB image."""
    value = np.clip(heatmap, 0, 1)[..., None]
    ramp = np.concatenate(
        [
            np.clip(1.5 - np.abs(4 * value - 3), 0, 1),
            np.clip(1.5 - np.abs(4 * value - 2), 0, 1),
            np.clip(1.5 - np.abs(4 * value - 1), 0, 1),
        ],
        axis=-1,
    )
    blended = (1 - alpha * value) * image.astype(np.float32) + alpha * value * ramp * 255
    return np.clip(blended, 0, 255).astype(np.uint8)


def save_overlay(result: Prediction, path: Path) -> Path:
    """Image | overlay side by side (needs a prediction made with heatmap=True, keep_image=True)."""
    if result.heatmap is None or result.image is None:
        raise ValueError("the prediction has no heatmap/image; predict with heatmap=True, keep_image=True")
    path.parent.mkdir(parents=True, exist_ok=True)
    both = np.concatenate([result.image, overlay(result.image, result.heatmap)], axis=1)
    Image.fromarray(both).save(path)
    return path
