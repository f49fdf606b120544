import pytest

from dermalens.core.taxonomy import (
    DX_CODES,
    MALIGNANT,
    UnknownLabelError,
    binary_label,
    is_malignant,
    normalize_label,
)


def test_seven_ham_classes_and_malignant_set():
    assert DX_CODES == ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
    assert {"mel", "bcc", "akiec", "scc"} == MALIGNANT


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("MEL", "mel"),
        ("mm", "mel"),
        ("Melanoma", "mel"),
        ("NV", "nv"),
        ("nevus", "nv"),
        ("Naevus", "nv"),
        ("common nevus", "nv"),
        ("Atypical_Nevus", "nv"),
        ("BCC", "bcc"),
        ("AK", "akiec"),
        ("AKIEC", "akiec"),
        ("actinic keratosis", "akiec"),
        ("Bowen", "akiec"),
        ("Bowen病", "akiec"),
        ("SK", "bkl"),
        ("BKL", "bkl"),
        ("seborrheic-keratosis", "bkl"),
        ("DF", "df"),
        ("VASC", "vasc"),
        ("SCC", "scc"),
        ("UNK", "unk"),
        ("benign", "benign"),
        ("0", "benign"),
        ("Malignant", "malignant"),
        (1, "malignant"),
        ("1.0", "malignant"),
    ],
)
def test_aliases(raw, code):
    assert normalize_label(raw) == code


def test_unknown_label_names_valid_ones():
    with pytest.raises(UnknownLabelError, match=r"valid labels.*melanoma"):
        normalize_label("freckle")


def test_binary_mapping():
    assert binary_label("MM") == "malignant"
    assert binary_label("sk") == "benign"
    assert is_malignant("scc") and not is_malignant("vasc")
