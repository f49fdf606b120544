"""Prediction sets fitted with MAPIE on real images: the serving rule is MAPIE's, the stated coverage
holds on held-out images of the same population, unsure images get larger sets, and `evaluate`
reports coverage and set size with intervals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from mapie.classification import SplitConformalClassifier

from dermalens.artifact.store import load_meta
from dermalens.cli import main
from dermalens.evaluation.conformal import _Probabilities, check_coverage, deterministic_aps, fit_quantiles
from dermalens.evaluation.outputs import pooled_probabilities
from dermalens.evaluation.run import label_targets
from dermalens.inference.conformal import prediction_sets
from dermalens.inference.engine import Engine

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def held_out(sets_artifact: Path, sets_split: Path, ham10000: Path) -> dict[str, np.ndarray]:
    """The sets artifact's calibrated probabilities and targets on both halves of `sets_split`."""
    engine = Engine.load(sets_artifact)
    out: dict[str, np.ndarray] = {}
    for name in ("val", "test"):
        pooled = pooled_probabilities(engine, [(ham10000, sets_split)], name)
        keep, targets = label_targets(pooled.labels, engine.meta.classes)
        out[name], out[name + "_y"] = pooled.probs[keep], targets
    return out


def test_serving_sets_are_mapies_own(held_out: dict[str, np.ndarray]) -> None:
    probs, targets = held_out["val"], held_out["val_y"]
    quantiles = fit_quantiles(probs, targets, [0.8, 0.9, 0.95])
    estimator = _Probabilities(probs.shape[1]).fit(probs, targets)
    mapie = SplitConformalClassifier(estimator, [0.8, 0.9, 0.95], deterministic_aps(), prefit=True)
    _, expected = mapie.conformalize(probs, targets).predict_set(held_out["test"])
    for k, key in enumerate(("0.80", "0.90", "0.95")):
        np.testing.assert_array_equal(prediction_sets(held_out["test"], quantiles[key]), expected[:, :, k])
    assert quantiles["0.80"] < quantiles["0.90"] < quantiles["0.95"]


def test_stated_coverage_holds_on_held_out_images(
    sets_artifact: Path, held_out: dict[str, np.ndarray]
) -> None:
    meta = load_meta(sets_artifact)[1]
    assert meta.conformal is not None and meta.conformal.n == len(held_out["val_y"])
    for coverage in (0.8, 0.9, 0.95):
        _, quantile = meta.conformal.quantile(coverage)
        sets = prediction_sets(held_out["test"], quantile)
        covered = sets[np.arange(len(held_out["test_y"])), held_out["test_y"]].mean()
        # 300 test images: 3 binomial standard deviations of the stated rate, or less
        assert abs(covered - coverage) <= 3 * np.sqrt(coverage * (1 - coverage) / len(sets)) + 0.01


def test_unsure_images_get_larger_sets(held_out: dict[str, np.ndarray], sets_artifact: Path) -> None:
    _, quantile = load_meta(sets_artifact)[1].conformal.quantile()  # type: ignore[union-attr]
    probs = held_out["test"]
    sizes = prediction_sets(probs, quantile).sum(axis=1)
    top = probs.max(axis=1)
    assert sizes.min() >= 1  # never empty
    assert sizes[top < np.median(top)].mean() > sizes[top >= np.median(top)].mean()


def test_bad_coverage_says_what_is_accepted(
    sets_artifact: Path, ham10000: Path, sets_split: Path, capsys
) -> None:
    for bad in (1.0, 0.3, 0.925):
        with pytest.raises(ValueError, match=r"from 0\.50 to 0\.99 in steps of 0\.01"):
            check_coverage(bad)
    argv = [
        "artifact",
        "conformal",
        "--model",
        str(sets_artifact),
        "--data",
        str(ham10000),
        "--split",
        str(sets_split),
    ]
    assert main([*argv, "--coverage", "1.5"]) == 2
    assert "0.50 to 0.99" in capsys.readouterr().err


def test_evaluate_reports_sets_per_image_and_coverage(
    sets_artifact: Path, ham10000: Path, sets_split: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", str(sets_artifact), "--data", str(ham10000), "--split", str(sets_split)]
    assert main([*argv, "--out", str(out), "--n-boot", "50", "--no-progress"]) == 0
    rows = list(csv.DictReader((out / "predictions.csv").open(encoding="utf-8")))
    assert rows and all(r["prediction"] == r["prediction_set"].split("|")[0] for r in rows)
    assert all(int(r["set_size"]) == len(r["prediction_set"].split("|")) for r in rows)
    figures = json.loads((out / "metrics.json").read_text())["prediction_sets"]
    assert figures["coverage_stated"] == 0.9
    shown = figures["all"]
    covered = np.mean([r["label"] in r["prediction_set"].split("|") for r in rows])
    assert shown["coverage"] == pytest.approx(covered)
    assert shown["ci"]["coverage"][0] <= shown["coverage"] <= shown["ci"]["coverage"][1]
    assert shown["mean_set_size"] == pytest.approx(np.mean([int(r["set_size"]) for r in rows]))
