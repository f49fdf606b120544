"""Prediction sets in the one result and its views: the named diagnosis leads its set, a higher
coverage gives a superset, a refused image gets no set, an artifact without sets (any written
before them) still loads and says "not fitted", and an ensemble has none."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dermalens import Classifier
from dermalens.artifact.meta import META_FILE
from dermalens.inference.rows import output_columns

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def images(ham10000: Path) -> list[Path]:
    return sorted((ham10000 / "images").glob("ISIC_00245*.jpg"))[:24]


def test_each_result_carries_its_set(sets_artifact: Path, images: list[Path]) -> None:
    results = Classifier.load(sets_artifact).predict(images)
    wider = Classifier.load(sets_artifact, coverage=0.95).predict(images)
    assert any(len(r.prediction_set or []) > 1 for r in wider)
    for one, more in zip(results, wider, strict=True):
        shown = one.prediction_set
        assert shown and shown[0] == one.prediction and one.set_size == len(shown)
        assert one.set_coverage == 0.9 and more.set_coverage == 0.95
        ranked = [one.probabilities[c] for c in shown[1:]]  # after the named diagnosis: by probability
        assert ranked == sorted(ranked, reverse=True)
        assert set(shown) <= set(more.prediction_set or [])
        row = one.flat()
        assert row["prediction_set"] == "|".join(shown) and row["set_size"] == len(shown)


def test_a_refused_image_gets_no_set(sets_artifact: Path) -> None:
    from skimage import data

    result = Classifier.load(sets_artifact).predict(data.coffee())
    assert result.refused and result.prediction is None and result.top_class  # kept for analysis
    assert result.prediction_set is None and result.set_size is None and result.set_coverage is None
    assert result.flat()["prediction_set"] is None


def test_an_artifact_without_sets_loads_and_says_not_fitted(
    sets_artifact: Path, images: list[Path], tmp_path: Path
) -> None:
    old = Path(shutil.copytree(sets_artifact, tmp_path / "old"))
    data = json.loads((old / META_FILE).read_text())
    del data["conformal"]  # as artifact.json was written before prediction sets
    (old / META_FILE).write_text(json.dumps(data), encoding="utf-8")
    result = Classifier.load(old).predict(images[0])
    assert result.prediction_set is None and result.set_size is None
    with pytest.raises(ValueError, match=r"this model has none fitted.*dermalens conformal"):
        Classifier.load(old, coverage=0.9)
    with pytest.raises(ValueError, match=r"coverage 0.93 was not fitted.*fitted: 0.80, 0.85, 0.90"):
        Classifier.load(sets_artifact, coverage=0.93)


def test_an_ensemble_has_no_set(sets_artifact: Path, tiny_artifact: Path, images: list[Path]) -> None:
    result = Classifier.load([sets_artifact, tiny_artifact]).predict(images[0], compare=True)
    assert result.prediction_set is None
    own = result.members[0]  # type: ignore[index]
    assert own.prediction_set and own.prediction_set[0] == own.prediction


def test_written_columns_are_typed() -> None:
    columns = dict(output_columns(["nv", "mel"]))
    assert (
        columns["prediction_set"] is str and columns["set_size"] is int and columns["set_coverage"] is float
    )
