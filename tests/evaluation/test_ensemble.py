"""`dermalens artifact ensemble`: the decision fitted on the members' combined output with the
single-model fitters, what it was fitted on recorded, and the limits said in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from dermalens.artifact.meta import WEIGHTS_FILE
from dermalens.artifact.store import load_meta
from dermalens.cli import main
from dermalens.evaluation.calibration import fit_operating_point
from dermalens.evaluation.ensemble import build_ensemble
from dermalens.evaluation.metrics import malignant_truth
from dermalens.evaluation.outputs import pooled_probabilities
from dermalens.inference.engine import Engine


def test_the_decision_is_fitted_on_the_combined_output(
    ensemble_artifact: Path, bundled_network: Path, ham10000: Path, sets_split: Path
) -> None:
    _, meta = load_meta(ensemble_artifact)
    spec = meta.ensemble
    assert spec is not None and spec.members == ["members/tiny-other"] and spec.gate == "first"
    assert not (ensemble_artifact / "members/tiny-other" / WEIGHTS_FILE).exists()
    assert meta.name == f"{load_meta(bundled_network)[1].name}+tiny-other"
    pooled = pooled_probabilities(Engine.load(ensemble_artifact), [(ham10000, sets_split)])
    p_malignant = pooled.probs[:, meta.malignant_indices].sum(axis=1)
    again = fit_operating_point(pooled.labels, p_malignant, 0.95, "again")
    assert spec.threshold == pytest.approx(again.threshold) and spec.threshold != meta.threshold
    y = malignant_truth(pooled.labels)
    assert (p_malignant[y == 1] >= spec.threshold).mean() >= 0.95
    assert spec.class_bias and spec.class_bias != meta.class_bias and "τ maximises" in spec.class_bias_rule
    assert spec.conformal is not None and spec.conformal.n == spec.fitted["decision"]["n"] > 250
    fitted = spec.fitted
    assert fitted["n"] == 300 and "split 'val' of split.json (300 images)" in fitted["source"]
    assert len(fitted["date"]) == 10 and fitted["calibration"]["sensitivity"] >= 0.95
    assert set(fitted["member_ids"]) == {"", "members/tiny-other"}


def test_four_members_are_refused_with_the_reason(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["artifact", "ensemble", *[a for k in range(4) for a in ("--model", f"m{k}")]]
    argv += ["--data", "d", "--split", "s", "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "4 model(s) given; an ensemble artifact holds 2 to 3" in err and "serving budget" in err
    assert not (tmp_path / "out").exists()


def test_an_ensemble_as_a_member_and_a_refit_of_an_ensemble_are_refused(
    hand_ensemble: Path, tiny_artifact: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="is itself an ensemble artifact"):
        build_ensemble([tiny_artifact, hand_ensemble], tmp_path / "out", [("d", "s")])
    argv = ["artifact", "fit-decision", "--model", str(hand_ensemble), "--data", "d", "--split", "s"]
    assert main([*argv, "--out", str(tmp_path / "refit")]) == 2
    assert not (tmp_path / "refit").exists()


def test_members_must_agree_on_classes(tiny_artifact: Path, tmp_path: Path) -> None:
    from dermalens.artifact.write import update, writable_copy

    other = writable_copy(tiny_artifact, tmp_path / "renamed")
    _, meta = load_meta(other)
    update(other, classes=list(reversed(meta.classes)))
    with pytest.raises(ValueError, match="ensemble members disagree on classes"):
        build_ensemble([tiny_artifact, other], tmp_path / "out", [("d", "s")])
    assert not (tmp_path / "out").exists()
