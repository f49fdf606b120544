"""`dermalens adapt` on real images, with 300 HAM10000 test images as "the clinic": lesion-grouped
folds decide which steps are kept, the new artifact serves with the kept steps and says on its card
what was adapted; too few images change nothing, and say so."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dermalens import Classifier
from dermalens.artifact.store import load_meta
from dermalens.cli import main
from dermalens.evaluation.adapt import FEATURE_STEPS, MIN_REFUSED, STEPS, helps
from dermalens.models.onnx_head import read_head

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
                "--head",
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "out of fold, pooled" in printed and "balanced_accuracy" in printed
    before, after = load_meta(sets_artifact)[1], load_meta(out)[1]
    report = after.metrics["adaptation"]
    assert report["n"] == 300 and len(report["per_fold"]) == 3
    assert set(report["kept"]) <= {*STEPS, *FEATURE_STEPS}
    for step, trial in report["left"].items():  # a step left out was not better out of fold
        base = report["without_head"] if step == "head" else report["before"]["figures"]
        assert not helps(step, base, trial, before)
    assert (after.temperature != before.temperature) == ("temperature" in report["kept"])
    assert (after.threshold != before.threshold) == ("threshold" in report["kept"])
    assert report["gate_not_dermoscopy_refused"] >= 0.0
    if "gate" in report["kept"]:  # re-centred: fewer held-out refusals, non-dermoscopy still refused
        assert report["after"]["figures"]["refused"] < report["before"]["figures"]["refused"]
        assert report["gate_not_dermoscopy_refused"] >= MIN_REFUSED and "re-centred" in after.ood_method
    else:
        assert report["before"]["figures"]["refused"] == report["after"]["figures"]["refused"]
    graph_head, weights = read_head(out / "model.onnx"), torch.load(out / "weights.pt", weights_only=True)
    changed = not np.array_equal(graph_head[0], read_head(sets_artifact / "model.onnx")[0])
    assert changed == ("head" in report["kept"])
    assert np.allclose(weights["classifier.weight"].numpy(), graph_head[0], atol=1e-6)  # weights.pt in step
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
