"""Patient metadata: validation, site groups across HAM10000/ISIC vocabularies, explicit unknowns."""

import numpy as np
import pytest

from dermalens.core.metadata import MetadataEncoding, PatientMetadata
from dermalens.core.taxonomy import SITE_GROUPS, site_group


@pytest.mark.parametrize(
    ("raw", "group"),
    [
        ("back", "torso"),  # HAM10000 localization
        ("posterior torso", "torso"),  # ISIC anatom_site_general
        ("Lower_Extremity", "lower extremity"),
        ("face", "head/neck"),
        ("head/neck", "head/neck"),
        ("acral", "palms/soles"),
        ("palms/soles", "palms/soles"),
        ("oral/genital", "oral/genital"),
        ("unknown", None),
        ("", None),
        (None, None),
    ],
)
def test_site_groups_read_both_vocabularies(raw, group):
    assert site_group(raw) == group


def test_unknown_site_is_an_error_listing_accepted_values():
    with pytest.raises(ValueError, match=r"accepted: .*back.*face"):
        site_group("elbowz")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"age": "old"}, "not a number"),
        ({"age": -3}, "out of range"),
        ({"age": 150}, "out of range"),
        ({"sex": "x"}, "male, female"),
        ({"site": "moon"}, "unknown body site"),
    ],
)
def test_parse_rejects_bad_values_with_what_is_accepted(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PatientMetadata.parse(**kwargs)


def test_parse_normalises_and_keeps_unknown_explicit():
    assert PatientMetadata.parse("63", "F", "Chest") == PatientMetadata(63.0, "female", "torso")
    assert PatientMetadata.parse("", "unknown", None).is_empty
    assert PatientMetadata.coerce({"age": 40}) == PatientMetadata(40.0)
    with pytest.raises(ValueError, match="unknown metadata keys"):
        PatientMetadata.coerce({"dx_type": "histo"})  # never an input: it leaks the label


def test_lenient_turns_unparseable_dataset_values_into_unknown():
    assert PatientMetadata.parse("n/a", "?", "somewhere", strict=False) == PatientMetadata()


def test_encoding_layout_sets_missing_flags_instead_of_imputing():
    encoding = MetadataEncoding()
    assert encoding.dim == 2 + 3 + len(SITE_GROUPS) + 1
    known = encoding.encode_one(PatientMetadata(50.0, "male", "torso"))
    unknown = encoding.encode_one(PatientMetadata())
    site_start = 5
    assert known[:5].tolist() == [0.5, 0.0, 1.0, 0.0, 0.0]
    assert known[site_start + SITE_GROUPS.index("torso")] == 1.0 and known[-1] == 0.0
    assert unknown.tolist() == [0, 1, 0, 0, 1, *[0] * len(SITE_GROUPS), 1]
    batch = encoding.encode([None, {"sex": "f"}, PatientMetadata(age=20.0)])
    assert batch.shape == (3, encoding.dim) and batch.dtype == np.float32
    assert MetadataEncoding.from_dict(encoding.to_dict()) == encoding


def test_every_listed_sex_spelling_is_accepted():
    from dermalens.core.metadata import SEX_SPELLINGS, parse_sex

    assert {parse_sex(text) for text in SEX_SPELLINGS} == {None, "male", "female"}
    assert {parse_sex(text.upper()) for text in SEX_SPELLINGS} == {None, "male", "female"}
