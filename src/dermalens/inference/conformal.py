"""Prediction sets with a stated coverage: which diagnoses an image's set holds.

Split-conformal prediction (Vovk et al. 2005; Angelopoulos & Bates, "A Gentle Introduction to
Conformal Prediction", 2021) turns calibrated probabilities into a *set* of diagnoses that holds
the true one for at least a stated share of images (e.g. 90 %) from the population the quantile
was fitted on. The score is APS (Romano, Sesia & Candès, "Classification with Valid and Adaptive
Coverage", NeurIPS 2020): the diagnoses are taken from the most probable down until their
cumulative probability reaches the fitted quantile, so an image the model is unsure about gets a
larger set.

The quantile is fitted with MAPIE (`evaluation.conformal`) and stored in the artifact. Serving
needs only this comparison, so the `serve` install stays without scikit-learn: the rule below is
MAPIE's own prediction rule for a prefit APS classifier (``include_last_label=True``: the class
whose cumulative probability first reaches the quantile is in the set, and the set is never
empty), and a test checks that both give the same sets.
"""

from __future__ import annotations

import numpy as np

#: MAPIE's tolerance when it compares cumulative probabilities with the quantile.
EPSILON = 1e-8


def prediction_sets(probs: np.ndarray, quantile: float) -> np.ndarray:
    """[N, C] boolean: which classes each row's set holds, for calibrated `probs` [N, C].

    Every class at least as probable as the first one whose cumulative probability (in decreasing
    order of probability) reaches `quantile` is in the set: ties stay together."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probabilities of shape {probs.shape}; expected [images, classes]")
    order = np.argsort(-probs, axis=1, kind="stable")
    cumulative = np.cumsum(np.take_along_axis(probs, order, axis=1), axis=1)
    reached = cumulative - quantile >= -EPSILON
    reached[:, -1] = True  # rounding: the last cumulative sum is 1 up to float error
    last = np.take_along_axis(order, reached.argmax(axis=1)[:, None], axis=1)
    floor = np.take_along_axis(probs, last, axis=1)
    return probs - floor >= -EPSILON


def set_labels(member: np.ndarray, classes: list[str], probs: np.ndarray) -> list[str]:
    """The class names of one row's set, most probable first (how every view lists them)."""
    chosen = [k for k in np.argsort(-probs, kind="stable") if member[k]]
    return [classes[k] for k in chosen]
