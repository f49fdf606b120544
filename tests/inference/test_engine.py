"""The one engine: an ensemble of two *different* members, and parity of the API with `evaluate`."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from conftest import lesion_like, save_image
from dermalens.core.taxonomy import DX_CODES
from dermalens.inference.engine import Engine
from dermalens.inference.predictor import Classifier


def _probs(results) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.array([[r.probabilities[c] for c in DX_CODES] for r in results])


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return [lesion_like(200 + i, (160, 120)) for i in range(6)]


@pytest.mark.parametrize("tta", [1, 8])
def test_ensemble_averages_members_each_with_its_own_preprocessing(
    tiny_artifact: Path, tiny_artifact_other: Path, images: list[np.ndarray], tta: int
) -> None:
    a = Classifier.load(tiny_artifact, tta=tta).predict(list(images))
    b = Classifier.load(tiny_artifact_other, tta=tta).predict(list(images))
    both = Classifier.load([tiny_artifact, tiny_artifact_other], tta=tta).predict(list(images))
    assert not np.allclose(_probs(a), _probs(b), atol=1e-3)  # genuinely different members
    assert np.allclose(_probs(both), (_probs(a) + _probs(b)) / 2, atol=1e-6)
    assert [r.ood_score for r in both] == pytest.approx(
        [max(x.ood_score, y.ood_score) for x, y in zip(a, b, strict=True)]
    )
    for r in both:
        assert r.p_malignant == pytest.approx(sum(r.probabilities[c] for c in ("akiec", "bcc", "mel")))


def test_engine_keeps_unreadable_inputs_in_place_and_decodes_once(tiny_artifact, tiny_artifact_other, images):
    engine = Engine.load([tiny_artifact, tiny_artifact_other])
    assert engine.decode_size() == (100, 75)  # the second member's working size: draft never below it
    run = engine.run([images[0], b"not an image", images[1]], ids=["a", "bad", "b"])
    assert run.rows == [0, 2] and [k for k, _ in run.errors] == [1]
    assert [m.image_ids for m in run.members] == [["a", "b"], ["a", "b"]]
    assert run.members[0].failed[0][0] == "bad"
    assert run.members[0].logits.shape == (1, 2, 7) and run.members[1].features is not None


@pytest.mark.parametrize("tta", [1, 8])
def test_api_and_evaluate_agree_for_a_two_member_ensemble(
    tiny_artifact: Path, tiny_artifact_other: Path, images: list[np.ndarray], tmp_path: Path, tta: int
) -> None:
    from dermalens.evaluation.evaluate import evaluate

    rows = ["path,label,group"]
    for i, image in enumerate(images):
        save_image(tmp_path / "data" / f"{i}.png", image, "PNG")
        rows.append(f"{i}.png,{DX_CODES[i % 7]},g{i}")
    (tmp_path / "data" / "labels.csv").write_text("\n".join(rows) + "\n")
    members = [tiny_artifact, tiny_artifact_other]
    evaluate(members, tmp_path / "data", tmp_path / "out", tta, n_boot=10, report=False)
    with open(tmp_path / "out" / "predictions.csv", newline="", encoding="utf-8") as handle:
        written = {r["image"]: r for r in csv.DictReader(handle)}
    api = Classifier.load(members, tta=tta).predict(
        [tmp_path / "data" / f"{i}.png" for i in range(len(images))]
    )
    for i, result in enumerate(api):
        row = written[f"{i}.png"]
        assert float(row["p_malignant"]) == pytest.approx(result.p_malignant, abs=1e-9)
        assert float(row["ood_score"]) == pytest.approx(result.ood_score, abs=1e-9)
        assert [float(row[f"p_{c}"]) for c in DX_CODES] == pytest.approx(
            list(result.probabilities.values()), abs=1e-9
        )


def test_network_inputs_are_what_the_network_is_fed(tiny_artifact_other: Path, tmp_path: Path) -> None:
    """INT8 calibration reads `network_inputs`: the engine's own decode and preprocessing (here a
    member with a working size and no colour constancy), unreadable files skipped."""
    from dermalens.core.preprocess import prepare

    engine = Engine.load(tiny_artifact_other)
    spec = engine.meta.preprocessing
    good = save_image(tmp_path / "a.jpg", lesion_like(4, (400, 300)))
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    inputs = list(engine.network_inputs([good, tmp_path / "bad.jpg", good]))
    assert len(inputs) == 2 and inputs[0].shape == (3, spec.input_size[1], spec.input_size[0])
    np.testing.assert_array_equal(inputs[0], prepare(good, spec))


def test_lanes_score_chunks_in_parallel_with_the_same_results_in_input_order(
    tiny_artifact: Path, images: list[np.ndarray]
) -> None:
    """Two lanes score chunks at once; rows, errors, logits, gate scores and CAMs are those of one
    lane, in input order, wherever the unreadable inputs fall."""
    inputs: list = [*images, b"not an image", *images[::-1], b"", images[2]]
    one, two = Engine.load(tiny_artifact, threads=1), Engine.load(tiny_artifact, threads=2)
    assert (one.lanes, two.lanes) == (1, 2)
    assert [len(c) for c in two.chunks(len(inputs))] == [8, 7]  # one chunk per lane
    assert [len(c) for c in two.chunks(40)] == [8] * 5  # at most CHUNK
    a, b = (e.run(inputs, heatmap=True) for e in (one, two))
    assert b.rows == a.rows == [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 14]
    assert [k for k, _ in b.errors] == [6, 13]
    assert np.allclose(b.members[0].logits, a.members[0].logits, atol=1e-6)
    assert np.allclose(b.members[0].ood_score, a.members[0].ood_score, atol=1e-6)
    assert all(np.allclose(x, y, atol=1e-6) for x, y in zip(a.cams, b.cams, strict=True))


def test_one_image_runs_its_members_at_once_with_the_results_of_one_lane(
    tiny_artifact: Path, tiny_artifact_other: Path, images: list[np.ndarray]
) -> None:
    """A lone chunk (one image) spreads the members over the idle lanes; members with the same
    preprocessing share one canonical view; the outputs are those of one thread."""
    members = [tiny_artifact, tiny_artifact_other, tiny_artifact]
    one, two = Engine.load(members, threads=1), Engine.load(members, threads=2)
    views = two._prepare(images[0]).views  # type: ignore[union-attr]
    assert views[0] is views[2] and views[0] is not views[1]
    for image in images[:3]:
        a, b = one.run([image], heatmap=True), two.run([image], heatmap=True)
        for x, y in zip(a.members, b.members, strict=True):
            assert np.allclose(x.logits, y.logits, atol=1e-6) and np.allclose(x.ood_score, y.ood_score)
        assert np.allclose(a.cams[0], b.cams[0], atol=1e-6)
