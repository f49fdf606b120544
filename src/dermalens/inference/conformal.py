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


def shown_sets(probs: np.ndarray, quantile: float, named: np.ndarray) -> np.ndarray:
    """[N, C] the sets a person is shown: `prediction_sets` plus each row's `named` diagnosis.

    Why: the named diagnosis comes from the artifact's decision rule (`top_class`), which can name a
    rarer class than the most probable one; a set that left it out would contradict the card beside
    it. Adding a class only makes a set larger, so the coverage stays at least the stated one."""
    sets = prediction_sets(probs, quantile)
    sets[np.arange(len(sets)), np.asarray(named, dtype=int)] = True
    return sets


def set_labels(member: np.ndarray, classes: list[str], probs: np.ndarray, named: int) -> list[str]:
    """The class names of one row's set: the named diagnosis first, then the others, most probable
    first (how every view lists them)."""
    chosen = [k for k in np.argsort(-probs, kind="stable") if member[k] and k != named]
    return [classes[k] for k in [named, *chosen]]
