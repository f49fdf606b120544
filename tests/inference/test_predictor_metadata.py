"""The predictor, CLI and evaluation with a metadata-fusion model (real ONNX Runtime sessions)."""

import csv

import numpy as np
import pytest

from conftest import lesion_like, save_image
from dermalens import Classifier
from dermalens.cli import main
from dermalens.data.records import Record
from dermalens.evaluation.outputs import collect_outputs
from dermalens.inference.results import PatientData


@pytest.fixture(scope="module")
def fusion(tiny_fusion_artifact):
    return Classifier.load(tiny_fusion_artifact)


def test_metadata_changes_the_prediction_and_is_reported(fusion):
    image = lesion_like(3)
    plain = fusion.predict(image)
    told = fusion.predict(image, metadata={"age": 85, "sex": "male", "site": "face"})
    assert fusion.uses_metadata
    assert plain.metadata == PatientData()  # nothing given: explicitly unknown
    assert told.metadata == PatientData(age=85.0, sex="male", site="head/neck")
    assert told.model_dump(mode="json")["metadata"] == {"age": 85.0, "sex": "male", "site": "head/neck"}
    assert abs(told.p_malignant - plain.p_malignant) > 1e-4
    assert sum(told.probabilities.values()) == pytest.approx(1.0)


def test_metadata_per_image_in_a_list(fusion):
    images = [lesion_like(1), lesion_like(1)]
    results = fusion.predict(images, metadata=[{"age": 20}, {"age": 90}])
    assert results[0].p_malignant != results[1].p_malignant
    same = fusion.predict(images, metadata={"age": 20})  # one value for all
    assert same[0].p_malignant == pytest.approx(same[1].p_malignant)
    assert same[0].p_malignant == pytest.approx(results[0].p_malignant)
    with pytest.raises(ValueError, match="2 images"):
        fusion.predict(images, metadata=[{"age": 20}])
    with pytest.raises(ValueError, match="not a number"):
        fusion.predict(images[0], metadata={"age": "eighty"})


def test_image_only_model_ignores_metadata(tiny_artifact):
    clf = Classifier.load(tiny_artifact)
    a = clf.predict(lesion_like(2))
    b = clf.predict(lesion_like(2), metadata={"age": 70, "site": "back"})
    assert not clf.uses_metadata and b.metadata is None and b.model_dump(mode="json")["metadata"] is None
    assert a.p_malignant == pytest.approx(b.p_malignant)


def test_ensemble_of_image_only_and_fusion_models(tiny_artifact, tiny_fusion_artifact):
    both = Classifier.load([tiny_artifact, tiny_fusion_artifact])
    meta = {"age": 60, "sex": "female"}
    p = both.predict(lesion_like(4), metadata=meta).p_malignant
    parts = [
        Classifier.load(a).predict(lesion_like(4), metadata=meta).p_malignant
        for a in (tiny_artifact, tiny_fusion_artifact)
    ]
    assert p == pytest.approx(np.mean(parts), abs=1e-6)


def test_evaluation_outputs_feed_record_metadata(tiny_fusion_artifact, fusion, tmp_path):
    """collect_outputs reads age/sex/site from the records, as the predictor does from its argument."""
    records = [
        Record(
            save_image(tmp_path / f"{i}.png", lesion_like(i), "PNG"), "nv", f"g{i}", f"i{i}", age, sex, site
        )
        for i, (age, sex, site) in enumerate(
            [(30.0, "male", "back"), (None, None, None), (75.0, "female", "face")]
        )
    ]
    outputs = collect_outputs(tiny_fusion_artifact, records)
    probs = outputs.probabilities()
    for row, record in zip(probs, records, strict=True):
        pred = fusion.predict(record.path, metadata=record.patient)
        assert pred.p_malignant == pytest.approx(row[fusion.meta.malignant_indices].sum(), abs=1e-5)


def test_cli_reads_a_metadata_csv(tiny_fusion_artifact, tmp_path, capsys):
    folder = tmp_path / "photos"
    for name in ("ISIC_1.jpg", "ISIC_2.jpg", "other.jpg"):
        save_image(folder / name, lesion_like(len(name)))
    table = tmp_path / "meta.csv"  # HAM10000's column names
    table.write_text(
        "lesion_id,image_id,dx,dx_type,age,sex,localization\nL1,ISIC_1,nv,histo,45.0,male,back\nL2,ISIC_2,mel,histo,,unknown,unknown\n"
    )
    out = tmp_path / "out.csv"
    code = main(
        [
            "predict",
            str(folder),
            "--model",
            str(tiny_fusion_artifact),
            "--metadata",
            str(table),
            "--sex",
            "female",
            "--csv",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    rows = {r["file"].rsplit("/", 1)[-1]: r for r in csv.DictReader(out.read_text("utf-8-sig").splitlines())}
    assert (rows["ISIC_1.jpg"]["age"], rows["ISIC_1.jpg"]["sex"], rows["ISIC_1.jpg"]["site"]) == (
        "45.0",
        "male",
        "torso",
    )
    assert (rows["ISIC_2.jpg"]["age"], rows["ISIC_2.jpg"]["site"]) == ("", "")
    assert rows["other.jpg"]["sex"] == "female"  # no row: the command-line values
    assert "1 of 3 images have no row" in capsys.readouterr().err


def test_cli_bad_metadata_is_a_clear_error(tiny_fusion_artifact, tmp_path, capsys):
    save_image(tmp_path / "a.jpg", lesion_like(1))
    table = tmp_path / "meta.csv"
    table.write_text("image_id,age\na,200\n")
    assert (
        main(
            [
                "predict",
                str(tmp_path / "a.jpg"),
                "--model",
                str(tiny_fusion_artifact),
                "--metadata",
                str(table),
            ]
        )
        == 2
    )
    assert "line 2" in capsys.readouterr().err
    assert (
        main(["predict", str(tmp_path / "a.jpg"), "--model", str(tiny_fusion_artifact), "--site", "moon"])
        == 2
    )
    assert "unknown body site" in capsys.readouterr().err
