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


def top_class(probs: np.ndarray, class_bias: np.ndarray | None = None) -> np.ndarray:
    """[N] index of each row's diagnosis: argmax of log p + `class_bias` (the artifact's decision
    rule; None or all zeros = the most probable class).

    Why a bias on the decision only: the probabilities and p_malignant stay calibrated to the
    training mix (so AUC, the threshold and the figures a user reads are unchanged), while the
    diagnosis is not drowned out by the most common class. This is logit adjustment (Menon et al.,
    "Long-tail learning via logit adjustment", ICLR 2021); `evaluation.calibration` fits it.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if class_bias is None or not np.any(class_bias):
        return probs.argmax(axis=1)
    return (np.log(np.maximum(probs, 1e-12)) + np.asarray(class_bias, dtype=np.float64)).argmax(axis=1)
