"""The colour check of the out-of-distribution gate: dermoscopy is never grey.

The gate's stored statistics and their score live with the artifact (`artifact.ood.OodGate`);
this is the per-image part the engine computes from the canonical pixels and hands to
`OodGate.score` (numpy only, no torch).
"""

from __future__ import annotations

import numpy as np

#: Mean channel spread (max - min, 0-255) of the canonical image below which it is "colourless".
#: Dermoscopy is never grey: the least colourful of HAM10000's 7,153 training images scores 3.3
#: (0.1st percentile 3.8), while documents, X-ray-like and grayscale photos score 0, and the
#: embedding distance alone accepted some of them (a text page, a grey photo).
MIN_CHROMA = 2.0


def colour_score(canon: np.ndarray) -> float:
    """MIN_CHROMA / chroma of a canonical uint8 H×W×3 image: above 1.0 means grayscale-like."""
    red, green, blue = canon[:, :, 0], canon[:, :, 1], canon[:, :, 2]  # slices: 10× faster than axis=2
    spread = np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)
    chroma = float(spread.mean())  # uint8: max ≥ min, no overflow
    return MIN_CHROMA / max(chroma, 0.02)
