"""`dermalens refit-gate`: a new gate (with its mid-level part) for an existing artifact,
leaving its predictions untouched."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from conftest import lesion_like
from dermalens import Classifier
from dermalens.artifact.ood import OodGate
from dermalens.data.readers import load_dataset
from dermalens.data.splits import split_dataset

pytestmark = pytest.mark.slow


def test_refit_gate_writes_a_copy_with_a_two_part_gate(tiny_artifact, tiny_dataset, tmp_path):
    split = split_dataset(load_dataset(tiny_dataset), val=0.25, test=0.0, seed=0)
    split.save(tmp_path / "split.json")
    out = tmp_path / "refitted"
    cmd = [sys.executable, "-m", "dermalens.cli", "artifact", "refit-gate", "--model", str(tiny_artifact)]
    cmd += ["--data", str(tiny_dataset), "--split", str(tmp_path / "split.json"), "--quantile", "0.9"]
    done = subprocess.run(
        [*cmd, "--out", str(out), "--no-progress"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]

    outputs = [o.name for o in ort.InferenceSession(str(out / "model.onnx")).get_outputs()]
    assert outputs == ["logits", "features", "cam", "level_features"]
    gate = OodGate.load(out / "ood.npz")
    assert gate.uses_level and gate.threshold != OodGate.load(tiny_artifact / "ood.npz").threshold
    assert gate.nearest_by == "distance"  # issue #34: each image in its nearest class's radius
    before, after = Classifier.load(tiny_artifact), Classifier.load(out)  # hashes verified on load
    assert after.meta.ood_threshold == pytest.approx(gate.threshold) and "mid-level" in after.meta.ood_method
    images = [lesion_like(s, (64, 48)) for s in range(3)]
    for old, new in zip(before.predict(images), after.predict(images), strict=True):
        assert np.allclose(list(old.probabilities.values()), list(new.probabilities.values()), atol=1e-5)
    assert after.predict(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)).ood


def test_refit_gate_explains_a_split_without_training_images(tiny_artifact, tiny_dataset, tmp_path):
    from dermalens.data.splits import Split

    Split({"nope": "train"}, 0, {}, {}).save(tmp_path / "split.json")
    cmd = [sys.executable, "-m", "dermalens.cli", "artifact", "refit-gate", "--model", str(tiny_artifact)]
    cmd += [
        "--data",
        str(tiny_dataset),
        "--split",
        str(tmp_path / "split.json"),
        "--out",
        str(tmp_path / "o"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "no train images" in done.stderr


def test_refit_gate_pools_several_datasets_and_wants_a_split_for_each(tiny_artifact, tiny_dataset, tmp_path):
    """A model trained on several datasets (HAM10000 + ISIC 2019) is refitted on all of them."""
    split = split_dataset(load_dataset(tiny_dataset), val=0.25, test=0.0, seed=0)
    split.save(tmp_path / "split.json")
    pair = ["--data", str(tiny_dataset), "--split", str(tmp_path / "split.json")]
    cmd = [
        sys.executable,
        "-m",
        "dermalens.cli",
        "artifact",
        "refit-gate",
        "--model",
        str(tiny_artifact),
        "--no-progress",
    ]
    one = subprocess.run([*cmd, *pair, "--out", str(tmp_path / "one")], capture_output=True, text=True)
    two = subprocess.run([*cmd, *pair, *pair, "--out", str(tmp_path / "two")], capture_output=True, text=True)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    means = [OodGate.load(tmp_path / name / "ood.npz").means for name in ("one", "two")]
    assert np.allclose(means[0], means[1], atol=1e-4)  # the same images twice: the same class means
    odd = subprocess.run([*cmd, *pair, "--data", str(tiny_dataset)], capture_output=True, text=True)
    assert odd.returncode != 0 and "one --split per --data" in odd.stderr


def test_refit_gate_on_an_ensemble_refits_the_primary_gate_and_keeps_the_ensemble(
    hand_ensemble, tiny_dataset, tmp_path, caplog
):
    """The gate rule "first" reads the primary's gate: that one is refitted; the members, the
    ensemble's decision and what it serves stay, and every hash is rewritten."""
    import logging

    from dermalens.artifact.store import load_meta
    from dermalens.cli import main
    from dermalens.inference.engine import Engine

    split = split_dataset(load_dataset(tiny_dataset), val=0.25, test=0.0, seed=0)
    split.save(tmp_path / "split.json")
    out = tmp_path / "refitted"
    with caplog.at_level(logging.WARNING):
        assert main(["artifact", "refit-gate", "--model", str(hand_ensemble), "--data", str(tiny_dataset),
                     "--split", str(tmp_path / "split.json"), "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    assert any("refits its primary's OOD gate" in r.getMessage() for r in caplog.records)
    before, after = load_meta(hand_ensemble)[1], load_meta(out)[1]  # verified: members pinned too
    assert after.ensemble == before.ensemble
    assert after.files["members/other/artifact.json"] == before.files["members/other/artifact.json"]
    assert OodGate.load(out / "ood.npz").threshold != OodGate.load(hand_ensemble / "ood.npz").threshold
    engines = [Engine.load(hand_ensemble), Engine.load(out)]
    assert [len(e.members) for e in engines] == [2, 2] and engines[1].ensemble == before.ensemble
    images = [lesion_like(s, (64, 48)) for s in range(3)]
    old, new = (e.run(images).combined for e in engines)
    assert np.allclose(old.probs, new.probs, atol=1e-5)  # the decision fitted on them still holds


def test_refit_gate_never_changes_a_member_in_place_and_names_its_missing_weights(
    hand_ensemble, tiny_dataset, tmp_path, capsys
):
    from dermalens.cli import main

    member = hand_ensemble / "members" / "other"
    argv = [
        "artifact",
        "refit-gate",
        "--model",
        str(member),
        "--data",
        str(tiny_dataset),
        "--split",
        "s.json",
    ]
    assert main(argv) == 2
    assert "is a member of the ensemble" in capsys.readouterr().err  # its ensemble pins its files
    assert main([*argv, "--out", str(tmp_path / "copy")]) == 2
    assert "no weights.pt (an ensemble's member folders" in capsys.readouterr().err
    assert not (tmp_path / "copy").exists()
