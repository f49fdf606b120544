"""The validation figures that choose the kept epoch."""

import numpy as np
import pytest

from dermalens.training.loop import quick_metrics


def _logits(p_mal: list[float]) -> np.ndarray:
    """Two classes (0 benign, 1 malignant) with the given malignant probabilities."""
    p = np.asarray(p_mal)
    return np.log(np.stack([1 - p, p], axis=1))


def test_source_auc_is_the_mean_of_each_sources_own_auc():
    # Source a is ranked perfectly, source b inversely; pooled, a's high scores dominate.
    p_mal = [0.9, 0.8, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7]
    targets = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    sources = ["a"] * 4 + ["b"] * 4
    figures = quick_metrics(_logits(p_mal), targets, [1], sources)
    assert figures["source_auc"] == pytest.approx((1.0 + 0.0) / 2)
    assert figures["auc"] == pytest.approx(0.75)  # pooled: a's separation carries b
    assert "source_auc" not in quick_metrics(_logits(p_mal), targets, [1])


def test_a_source_with_one_outcome_is_left_out_of_the_mean():
    p_mal = [0.9, 0.1, 0.2, 0.3]
    targets = np.array([1, 0, 0, 0])
    figures = quick_metrics(_logits(p_mal), targets, [1], ["a", "a", "b", "b"])
    assert figures["source_auc"] == pytest.approx(1.0)  # b has no malignant image: no AUC
