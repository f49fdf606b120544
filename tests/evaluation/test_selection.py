"""The selection rule (evaluation/selection.py): paired, lesion-grouped differences over three
source groups (MSK and the ISIC archive pooled), and a verdict that noise cannot win."""

from __future__ import annotations

import numpy as np
import pytest

from dermalens.evaluation.selection import (
    Scored,
    figures,
    paired_comparison,
    stratified_resamples,
    verdict,
)

SOURCES = ["ham10000"] * 200 + ["bcn"] * 200 + ["msk"] * 60 + ["isic-archive"] * 60


def _scored(quality: float, seed: int) -> Scored:
    """Every source with both classes; `quality` is how far malignant scores sit above benign ones."""
    rng = np.random.default_rng(seed)
    n = len(SOURCES)
    labels = ["mel" if k % 4 == 0 else ("bcc" if k % 4 == 1 else "nv") for k in range(n)]
    y = np.array([label != "nv" for label in labels])
    p = 1 / (1 + np.exp(-(rng.normal(size=n) + quality * y - 0.5)))
    prediction = [label if rng.random() < 0.3 + quality / 5 else "nv" for label in labels]
    return Scored([f"i{k}" for k in range(n)], list(SOURCES), labels, p, prediction)


def test_msk_and_the_archive_are_one_group_of_the_rule():
    out = figures(_scored(1.0, 0), np.arange(len(SOURCES)))
    assert {k for k in out if k.startswith("auc_")} == {"auc_ham10000", "auc_bcn", "auc_msk+archive"}
    assert out["rule_auc"] == pytest.approx(
        np.mean([out["auc_ham10000"], out["auc_bcn"], out["auc_msk+archive"]])
    )


def test_resamples_keep_each_source_size_and_whole_lesions():
    groups = [f"lesion{k // 2}" for k in range(len(SOURCES))]  # two images per lesion
    for idx in stratified_resamples(SOURCES, groups, n_boot=5):
        picked = np.asarray(SOURCES, dtype=object)[idx]
        assert all(np.sum(picked == s) == SOURCES.count(s) for s in set(SOURCES))
        drawn = [groups[i] for i in idx]
        assert all(drawn.count(g) % 2 == 0 for g in set(drawn))  # a lesion comes with both its images


def test_a_model_against_itself_never_replaces_it_and_a_clearly_better_one_does():
    reference = _scored(1.0, 0)
    same = paired_comparison(reference, reference, {}, n_boot=50)
    assert same["rule_auc"]["delta"] == 0 and verdict(same)[0] is False
    better = _scored(4.0, 1)
    result = paired_comparison(reference, better, {}, n_boot=50)
    assert result["rule_auc"]["ci"][0] > 0
    replaces, why = verdict(result)
    assert replaces, why


def test_images_scored_by_one_model_only_are_an_error():
    reference, other = _scored(1.0, 0), _scored(1.0, 0)
    other.ids[0] = "elsewhere"
    with pytest.raises(ValueError, match="one model only"):
        paired_comparison(reference, other, {}, n_boot=5)
