"""Calibrated probabilities from logits: the one softmax with temperature in dermalens.

Temperature scaling (Guo et al. 2017) divides logits by one scalar fitted on validation; the
predictor, evaluation, calibration, the baseline and training's finalisation all turn logits
into probabilities here, so that a served probability is exactly the one evaluated.
"""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """[N, C] probabilities of softmax(logits / temperature), in float64."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def view_probabilities(views: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """[N, C] mean over TTA views of the calibrated softmax of [V, N, C] logits."""
    return np.mean([softmax(view, temperature) for view in views], axis=0)
