"""An ensemble artifact opens as its members and decides with its own threshold, decision rule,
prediction sets and gate rule; with other models, or without the field, the generic rule as before."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from dermalens.artifact.meta import OOD_FILE, EnsembleSpec
from dermalens.artifact.ood import OodGate
from dermalens.artifact.store import load_meta
from dermalens.artifact.write import save_gate, write_ensemble, write_meta
from dermalens.inference.engine import Engine
from dermalens.inference.predictor import Classifier


@pytest.fixture(scope="module")
def images(ham10000: Path) -> list[Path]:
    return sorted((ham10000 / "images").glob("*.jpg"))[:6]


def test_it_opens_as_its_members_with_the_spec_s_decision(
    ensemble_artifact: Path, images: list[Path]
) -> None:
    _, meta = load_meta(ensemble_artifact)
    spec = meta.ensemble
    assert spec is not None and spec.conformal is not None
    engine = Engine.load(ensemble_artifact)
    assert len(engine.members) == 2 and engine.ensemble == spec
    assert [m.meta.name for m in engine.members] == [meta.name, "tiny-other"]
    run = engine.run(images)
    assert run.combined.threshold == spec.threshold == engine.threshold != meta.threshold
    assert run.combined.class_bias.tolist() == pytest.approx(spec.class_bias)
    assert run.combined.conformal == spec.conformal.quantile()
    results = Classifier.load(ensemble_artifact).predict(list(images))
    assert all(r.threshold == spec.threshold for r in results)
    assert any(r.prediction_set for r in results) and {
        r.set_coverage for r in results if r.prediction_set
    } == {0.9}


def test_its_probabilities_are_the_members_average(
    ensemble_artifact: Path, bundled_network: Path, images: list[Path]
) -> None:
    members = [bundled_network, ensemble_artifact / "members/tiny-other"]  # the primary's source, a member
    alone = [Engine.load(m).run(images) for m in members]
    both = Engine.load(ensemble_artifact).run(images).combined
    assert all(len(run.members) == 1 for run in alone)  # a member opened alone is one network
    assert np.allclose(both.probs, (alone[0].combined.probs + alone[1].combined.probs) / 2, atol=1e-6)


def strict_copy(member: Path, tmp_path: Path) -> Path:
    """`member` whose gate refuses every image (its threshold divided by a million)."""
    folder = Path(shutil.copytree(member, tmp_path / "strict"))
    _, meta = load_meta(folder)
    gate = OodGate.load(folder / OOD_FILE)
    gate.threshold /= 1e6
    save_gate(folder, meta, gate)
    write_meta(folder, meta)
    return folder


@pytest.mark.parametrize("rule", ["first", "max"])
def test_the_gate_rule_decides_whose_refusal_counts(
    rule: str, bundled_network: Path, tiny_artifact_other: Path, images: list[Path], tmp_path: Path
) -> None:
    strict = strict_copy(tiny_artifact_other, tmp_path)
    spec = EnsembleSpec(["members/strict"], threshold=0.1, threshold_rule="by hand", gate=rule)  # type: ignore[arg-type]
    folder = write_ensemble(tmp_path / "ensemble", bundled_network, [strict], spec)
    run = Engine.load(folder).run(images)
    primary, member = (m.ood_score for m in run.members)
    assert not (primary > 1).all()
    # "max": the member refuses all; "first": its gate file was left out (it would never count)
    assert (member > 1).all() if rule == "max" else (member == 0).all()
    expected = primary if rule == "first" else np.maximum(primary, member)
    assert run.combined.ood_score.tolist() == pytest.approx(expected.tolist())
    refused = [r.ood for r in run.combined.results()]
    assert all(refused) == (rule == "max")


def test_with_other_models_the_generic_rule_holds(
    ensemble_artifact: Path, tiny_artifact: Path, images: list[Path]
) -> None:
    engine = Engine.load([ensemble_artifact, tiny_artifact])
    assert len(engine.members) == 3 and engine.ensemble is None and engine.sets is None
    assert engine.threshold == pytest.approx(np.mean([m.meta.threshold for m in engine.members]))
    run = engine.run(images)
    assert run.combined.conformal is None
    assert run.combined.ood_score.tolist() == pytest.approx(
        np.max([m.ood_score for m in run.members], axis=0).tolist()
    )


def test_an_artifact_without_the_field_opens_as_before(tiny_artifact: Path, images: list[Path]) -> None:
    engine = Engine.load(tiny_artifact)
    assert len(engine.members) == 1 and engine.ensemble is None
    assert engine.threshold == engine.meta.threshold == Classifier(engine).threshold
    assert engine.run(images).combined.threshold == engine.meta.threshold
