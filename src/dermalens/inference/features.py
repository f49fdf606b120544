"""Hand-crafted colour and texture features of a canonical lesion image, for the classical baseline.

Why these: they are the computable parts of the dermatologist's ABCD rule and of the
pre-deep-learning dermoscopy literature — colour distribution (HSV histograms, Lab
moments), the six dermoscopic colours (white, red, light/dark brown, blue-grey, black),
lesion-versus-skin contrast (centre versus border of the crop), and texture (uniform
local binary patterns, gradient statistics). They are computed on the *canonical*
image (cropped, resized, colour-corrected by the artifact's preprocessing), the same
pixels the networks see, so the comparison is fair.

Changing a feature changes `FEATURE_VERSION`; a baseline artifact records the version
it was fitted with and refuses to run with another.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from skimage.color import rgb2lab
from skimage.feature import local_binary_pattern
from skimage.filters import sobel

FEATURE_VERSION = 1
HSV_BINS = (12, 8, 8)
LBP_SETTINGS = ((8, 1.0), (16, 2.0))  # (points, radius): fine and coarser texture
#: Reference Lab colours of the dermoscopic colour palette (approximate, after colour constancy).
DERMOSCOPIC_COLOURS: dict[str, tuple[float, float, float]] = {
    "white": (90.0, 0.0, 5.0),
    "red": (50.0, 45.0, 25.0),
    "light_brown": (60.0, 15.0, 30.0),
    "dark_brown": (35.0, 15.0, 20.0),
    "blue_grey": (45.0, -2.0, -10.0),
    "black": (15.0, 2.0, 2.0),
}


def _names() -> list[str]:
    names = [f"hsv_{ch}{i}" for ch, bins in zip("hsv", HSV_BINS, strict=True) for i in range(bins)]
    names += [f"lab_{stat}_{ch}" for stat in ("mean", "std", "skew") for ch in "Lab"]
    names += [f"lab_centre_minus_border_{ch}" for ch in "Lab"] + [f"lab_centre_std_{ch}" for ch in "Lab"]
    names += [f"colour_{name}" for name in DERMOSCOPIC_COLOURS]
    names += [f"lbp{p}_{i}" for p, _ in LBP_SETTINGS for i in range(p + 2)]
    names += ["grad_mean", "grad_std", "grad_p90", "grad_centre_minus_border"]
    return names


FEATURE_NAMES: tuple[str, ...] = tuple(_names())


def _centre_mask(height: int, width: int) -> np.ndarray:
    """The central half of the crop (where the lesion usually is); the rest is 'border'."""
    mask = np.zeros((height, width), dtype=bool)
    mask[height // 4 : height - height // 4, width // 4 : width - width // 4] = True
    return mask


def image_features(rgb: np.ndarray) -> np.ndarray:
    """Feature vector (float64, len(FEATURE_NAMES)) of one canonical H×W×3 uint8 image."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width = rgb.shape[:2]
    centre = _centre_mask(height, width)
    parts: list[np.ndarray] = []

    hsv = np.asarray(Image.fromarray(rgb).convert("HSV"))
    for channel, bins in enumerate(HSV_BINS):
        hist = np.bincount((hsv[..., channel].ravel().astype(int) * bins) // 256, minlength=bins)
        parts.append(hist / hist.sum())

    lab = rgb2lab(rgb).reshape(height, width, 3)
    flat = lab.reshape(-1, 3)
    mean, std = flat.mean(0), flat.std(0)
    skewness = ((flat - mean) ** 3).mean(0) / np.maximum(std, 1e-6) ** 3  # Fisher skew, as scipy.stats.skew
    parts += [mean, std, skewness]
    parts += [lab[centre].mean(0) - lab[~centre].mean(0), lab[centre].std(0)]

    palette = np.asarray(list(DERMOSCOPIC_COLOURS.values()))
    # nearest palette colour: argmin |x − p|² = argmin (|p|² − 2 x·p), one matrix product
    nearest = np.argmin((palette**2).sum(1)[None, :] - 2 * flat @ palette.T, axis=1)
    parts.append(np.bincount(nearest, minlength=len(palette)) / len(flat))

    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    for points, radius in LBP_SETTINGS:
        codes = local_binary_pattern(gray, points, radius, method="uniform").astype(int)
        hist = np.bincount(codes.ravel(), minlength=points + 2)
        parts.append(hist / hist.sum())

    grad = sobel(gray.astype(np.float64) / 255.0)
    parts.append(
        np.array(
            [grad.mean(), grad.std(), np.percentile(grad, 90), grad[centre].mean() - grad[~centre].mean()]
        )
    )
    return np.concatenate(parts).astype(np.float64)
