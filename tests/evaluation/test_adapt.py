"""`dermalens adapt` on real images, with 300 HAM10000 test images as "the clinic": lesion-grouped
folds decide which steps are kept, the new artifact serves with the kept steps and says on its card
what was adapted; too few images change nothing, and say so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dermalens import Classifier
from dermalens.artifact.store import load_meta
from dermalens.cli import main
from dermalens.evaluation.adapt import STEPS, helps

pytestmark = pytest.mark.realdata


def test_adapt_keeps_what_helps_out_of_fold(
    sets_artifact: Path, ham10000: Path, sets_split: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "clinic-model"
    argv = ["adapt", "--model", str(sets_artifact), "--data", str(ham10000), "--split", str(sets_split)]
    assert (
        main(
            [
                *argv,
                "--split-name",
                "test",
                "--out",
                str(out),
                "--folds",
                "3",
                "--n-boot",
                "20",
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "out of fold, pooled" in printed and "balanced_accuracy" in printed
    before, after = load_meta(sets_artifact)[1], load_meta(out)[1]
    report = after.metrics["adaptation"]
    assert report["n"] == 300 and len(report["per_fold"]) == 3 and set(report["kept"]) <= set(STEPS)
    for step, trial in report["left"].items():  # a step left out was not better out of fold
        assert not helps(step, report["before"]["figures"], trial, before)
    assert (after.temperature != before.temperature) == ("temperature" in report["kept"])
    assert (after.threshold != before.threshold) == ("threshold" in report["kept"])
    assert report["before"]["figures"]["refused"] == report["after"]["figures"]["refused"]  # gate unchanged
    result = Classifier.load(out).predict(ham10000 / "images" / "ISIC_0024306.jpg")
    assert result.prediction_set and result.prediction_set[0] == result.prediction
    assert main([*argv, "--split-name", "test", "--out", str(out)]) == 2  # never over an existing folder


def test_too_few_images_change_nothing(
    sets_artifact: Path, ham10000: Path, sets_split: Path, tmp_path: Path, capsys
) -> None:
    assignments = json.loads(sets_split.read_text())["assignments"]
    few = tmp_path / "few.json"
    ids = sorted(i for i, s in assignments.items() if s == "test")[:30]
    few.write_text(json.dumps({"assignments": {i: "clinic" for i in ids}, "seed": 0}))
    out = tmp_path / "same"
    argv = ["adapt", "--model", str(sets_artifact), "--data", str(ham10000), "--split", str(few)]
    assert main([*argv, "--split-name", "clinic", "--out", str(out), "--no-progress"]) == 0
    assert "needs at least 100; nothing was changed" in capsys.readouterr().out
    before, after = load_meta(sets_artifact)[1], load_meta(out)[1]
    assert (after.temperature, after.threshold, after.class_bias, after.conformal) == (
        before.temperature,
        before.threshold,
        before.class_bias,
        before.conformal,
    )
