"""The one input record: patient data read by the one parser, strict for user input and lenient for
public datasets; the same type from a dataset reader and from an archive source."""

from __future__ import annotations

from pathlib import Path

import pytest

from dermalens.archive.sources import Item
from dermalens.core.metadata import PatientMetadata
from dermalens.core.record import Record, patient_fields, with_patient
from dermalens.data.records import Record as DataRecord


def test_one_record_type_for_readers_and_archive_sources():
    assert DataRecord is Record and Item.__origin__ is Record  # type: ignore[attr-defined]
    item = Item(Path("a.jpg"), None)
    assert item.label is None and item.patient.is_empty and not item.has_dx
    with pytest.raises(ValueError, match="no label"):
        _ = item.binary


def test_lenient_keeps_the_datasets_spelling_and_gives_the_models_group():
    fields = patient_fields({"age": "80.0", "sex": "M", "site": "Posterior_Torso"}, strict=False)
    record = Record(Path("a.jpg"), "mel", "L1", "I1", source="isic", **fields)
    assert (record.age, record.sex, record.site) == (80.0, "male", "posterior torso")
    assert record.patient == PatientMetadata(80.0, "male", "torso")
    assert record.binary == "malignant" and record.has_dx


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"age": "two hundred"}, "age 'two hundred' is not a number"),
        ({"age": "130"}, "out of range"),
        ({"sex": "x"}, "accepted: male, female"),
        ({"site": "elbowz"}, "unknown body site 'elbowz'; accepted:"),
    ],
)
def test_strict_says_what_is_wrong_and_lenient_reads_it_as_unknown(row, message):
    with pytest.raises(ValueError, match=message):
        patient_fields(row, strict=True)
    patient = Record(Path("a.jpg"), None, **patient_fields(row, strict=False)).patient
    assert patient == PatientMetadata()


def test_with_patient_replaces_only_the_patient_data():
    record = Record(Path("a.jpg"), "nv", "L1", "I1", source="ham10000")
    given = with_patient(record, PatientMetadata.parse(45, "female", "back"))
    assert given.patient == PatientMetadata(45.0, "female", "torso")
    assert (given.path, given.label, given.group, given.source) == (record.path, "nv", "L1", "ham10000")
