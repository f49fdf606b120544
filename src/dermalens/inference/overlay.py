"""Heatmap colouring, shared by the web API (transparent PNG) and the CLI (``--heatmaps DIR`` overlays)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from dermalens.inference.results import Prediction

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


def overlay(image: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """The `heatmap_rgba` evidence map alpha-composited over the canonical RGB image."""
    rgba = heatmap_rgba(heatmap).astype(np.float32)
    alpha = rgba[..., 3:4] / 255.0
    blended = (1 - alpha) * image.astype(np.float32) + alpha * rgba[..., :3]
    return np.clip(blended, 0, 255).astype(np.uint8)


def save_overlay(result: Prediction, path: Path) -> Path:
    """Image | overlay side by side (needs a prediction made with heatmap=True, keep_image=True)."""
    if result.heatmap is None or result.image is None:
        raise ValueError("the prediction has no heatmap/image; predict with heatmap=True, keep_image=True")
    path.parent.mkdir(parents=True, exist_ok=True)
    both = np.concatenate([result.image, overlay(result.image, result.heatmap)], axis=1)
    Image.fromarray(both).save(path)
    return path
