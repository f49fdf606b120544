"""Temperature scaling, the sensitivity-target threshold, and storing both in an artifact."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from dermalens.artifact.store import load_meta
from dermalens.core.taxonomy import DX_CODES
from dermalens.evaluation.calibration import (
    calibrate,
    calibrate_artifact,
    fit_temperature,
    nll,
    threshold_for_sensitivity,
)
from dermalens.evaluation.metrics import binary_metrics
from dermalens.inference.probabilities import softmax


def overconfident(
    n: int = 2000, classes: int = 7, true_t: float = 2.5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose labels are drawn from softmax(logits / true_t): the model is overconfident by true_t."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, classes))
    probs = softmax(logits, true_t)
    targets = np.array([rng.choice(classes, p=row) for row in probs])
    return logits, targets


def test_temperature_lowers_nll_and_recovers_the_true_temperature() -> None:
    logits, targets = overconfident()
    t = fit_temperature(logits, targets)
    assert t == pytest.approx(2.5, rel=0.15)
    assert nll(logits, targets, t) < nll(logits, targets, 1.0) - 0.1
    # the fitted T is the minimum: nudging it either way does not help
    assert nll(logits, targets, t) <= min(nll(logits, targets, t * 1.1), nll(logits, targets, t / 1.1))


def test_temperature_of_underconfident_logits_is_below_one() -> None:
    logits, targets = overconfident(true_t=0.5, seed=1)
    assert fit_temperature(logits, targets) < 0.7
    # TTA views ([V, N, C]) are accepted and scored as samples
    assert fit_temperature(np.stack([logits, logits]), targets) == pytest.approx(
        fit_temperature(logits, targets)
    )


def test_temperature_needs_labels() -> None:
    with pytest.raises(ValueError, match="no validation images"):
        fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int))


@pytest.mark.parametrize("target", [0.8, 0.9, 0.95, 1.0])
def test_threshold_reaches_the_target_sensitivity_and_is_the_highest(target: float) -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1)
    cut = threshold_for_sensitivity(y, p, target)
    assert binary_metrics(y, p, cut, full=False)["sensitivity"] >= target
    higher = np.min(p[p > cut]) if np.any(p > cut) else 1.1
    assert binary_metrics(y, p, higher, full=False)["sensitivity"] < target


def test_threshold_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="malignant and benign"):
        threshold_for_sensitivity(np.zeros(5), np.linspace(0, 1, 5))
    with pytest.raises(ValueError, match="target sensitivity"):
        threshold_for_sensitivity(np.array([0, 1]), np.array([0.2, 0.8]), 1.5)


def test_calibrate_artifact_stores_temperature_and_threshold(tiny_artifact: Path, tmp_path: Path) -> None:
    from dermalens.inference.predictor import Classifier

    folder = Path(shutil.copytree(tiny_artifact, tmp_path / "copy"))
    logits, targets = overconfident(n=300, true_t=3.0, seed=5)
    labels = [DX_CODES[t] for t in targets]
    meta = calibrate_artifact(folder, logits, labels, 0.9, source="synthetic")
    _, stored = load_meta(folder)  # hashes still verify
    assert stored.temperature == pytest.approx(meta.temperature) and stored.temperature > 2
    assert stored.threshold == pytest.approx(meta.threshold)
    assert "90%" in stored.threshold_rule and "synthetic" in stored.threshold_rule
    evidence = stored.metrics["calibration"]
    assert evidence["nll_after"] < evidence["nll_before"] and evidence["sensitivity"] >= 0.9
    assert Classifier.load(folder).threshold == pytest.approx(meta.threshold)  # what predictions use


def test_calibrate_on_a_split(
    tiny_artifact: Path, dataset_csv: Path, split_file: Path, tmp_path: Path
) -> None:
    summary = calibrate(
        tiny_artifact, dataset_csv, split_file, out=tmp_path / "calibrated", target_sensitivity=0.95
    )
    assert summary["n"] == 7  # one val image per class
    assert summary["sensitivity"] >= 0.95 and summary["nll_after"] <= summary["nll_before"] + 1e-9
    _, original = load_meta(tiny_artifact)
    _, copy = load_meta(tmp_path / "calibrated")
    assert original.temperature == 1.5  # --out leaves the source artifact alone
    assert copy.temperature == pytest.approx(summary["temperature"])
    with pytest.raises(ValueError, match="exists"):
        calibrate(tiny_artifact, dataset_csv, split_file, out=tmp_path / "calibrated")
