"""Test-time augmentation: the 8 flips/rotations of the dihedral group, applied to model input.

Dermoscopy has no canonical orientation, so averaging predictions over flips and
90° rotations is a free, label-preserving ensemble. Rotations by 90° swap height and
width; the exported network accepts any input size, so nothing is cropped.
"""

from __future__ import annotations

import numpy as np

#: (rotations by 90°, horizontal flip) in the order used for a given count.
TRANSFORMS: tuple[tuple[int, bool], ...] = (
    (0, False),
    (0, True),
    (2, False),
    (2, True),
    (1, False),
    (1, True),
    (3, False),
    (3, True),
)


def tta_views(chw: np.ndarray, count: int) -> list[np.ndarray]:
    """`count` (1-8) views of a C×H×W array: identity, h-flip, 180°, v-flip, then 90°/270° variants."""
    if not 1 <= count <= len(TRANSFORMS):
        raise ValueError(f"TTA count {count}; valid: 1 to {len(TRANSFORMS)}")
    views = []
    for k, flip in TRANSFORMS[:count]:
        view = np.rot90(chw, k=k, axes=(1, 2))
        views.append(np.ascontiguousarray(view[:, :, ::-1] if flip else view))
    return views


def undo_view(heatmap: np.ndarray, index: int) -> np.ndarray:
    """Map a [..., h, w] heatmap computed on view `index` back to the original orientation."""
    k, flip = TRANSFORMS[index]
    if flip:
        heatmap = heatmap[..., ::-1]
    return np.ascontiguousarray(np.rot90(heatmap, k=-k, axes=(-2, -1)))
