"""ISIC 2019 and Derm7pt readers, sources, and multi-source splits (real shared data where present)."""

import pytest

from conftest import lesion_like, save_image
from dermalens.core.taxonomy import HAM_FOLD, to_ham
from dermalens.data.derm7pt import derm7pt_label
from dermalens.data.readers import detect_format, find_image, isic_source, load_dataset
from dermalens.data.splits import split_dataset, stratum


def test_isic_source_from_lesion_id():
    assert isic_source("BCN_0000123") == "bcn"
    assert isic_source("MSK4_0011") == "msk"
    assert isic_source("HAM_0000001") == "ham10000"
    assert isic_source("") == "isic-archive"


def test_find_image_with_either_downsampled_spelling(tmp_path):
    images = {"ISIC_1_downsampled": tmp_path / "a.jpg", "ISIC_2": tmp_path / "b.jpg"}
    assert find_image(images, "ISIC_1") == tmp_path / "a.jpg"
    assert find_image(images, "ISIC_2_downsampled") == tmp_path / "b.jpg"
    assert find_image(images, "ISIC_3") is None


def test_scc_folds_to_akiec_once():
    assert HAM_FOLD == {"scc": "akiec"}
    assert to_ham("scc") == "akiec" and to_ham("mel") == "mel" and to_ham("unk") is None


@pytest.mark.parametrize(
    "diagnosis,code",
    [
        ("clark nevus", "nv"),
        ("reed or spitz nevus", "nv"),
        ("melanoma (in situ)", "mel"),
        ("melanoma (more than 1.5 mm)", "mel"),
        ("melanoma metastasis", "mel"),
        ("seborrheic keratosis", "bkl"),
        ("lentigo", "bkl"),
        ("basal cell carcinoma", "bcc"),
        ("vascular lesion", "vasc"),
        ("dermatofibroma", "df"),
        ("melanosis", None),
        ("miscellaneous", None),
    ],
)
def test_derm7pt_mapping(diagnosis, code):
    assert derm7pt_label(diagnosis) == code


def test_derm7pt_reader_matches_folders_case_insensitively(tmp_path):
    save_image(tmp_path / "images" / "FCL" / "Fcl001.jpg", lesion_like(0))
    save_image(tmp_path / "images" / "NEL" / "Nel002.jpg", lesion_like(1))
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "meta.csv").write_text(
        "diagnosis,streaks,derm\n"
        "clark nevus,absent,FCl/Fcl001.jpg\n"
        "basal cell carcinoma,absent,NEL/Nel002.jpg\n"
        "melanosis,absent,NEL/Nel003.jpg\n"
        "melanoma,present,NEL/Nel404.jpg\n"
    )
    assert detect_format(tmp_path) == "derm7pt"
    ds = load_dataset(tmp_path)
    assert [(r.image_id, r.label, r.source) for r in ds.records] == [
        ("Fcl001", "nv", "derm7pt"),
        ("Nel002", "bcc", "derm7pt"),
    ]
    assert ds.missing == ["NEL/Nel404.jpg"]
    assert [i for i, _ in ds.skipped] == ["Nel003"]


@pytest.mark.realdata
def test_isic2019_counts_match_the_readme(isic2019):
    ds = load_dataset(isic2019, verify=False)
    assert ds.format == "isic" and len(ds) == 15_284 and len(ds.missing) == 32
    by_source = ds.source_counts()
    assert sum(by_source["bcn"].values()) == 12_381
    assert by_source["bcn"] == {
        "akiec": 705,
        "bcc": 2809,
        "bkl": 1138,
        "df": 124,
        "mel": 2857,
        "nv": 4206,
        "scc": 431,
        "vasc": 111,
    }
    assert by_source["msk"] == {"bkl": 189, "mel": 215, "nv": 415}
    assert by_source["isic-archive"] == {"bkl": 198, "mel": 337, "nv": 1549}
    assert sum(r.image_id.endswith("_downsampled") for r in ds.records) == 2074


@pytest.mark.realdata
def test_derm7pt_counts(derm7pt):
    ds = load_dataset(derm7pt, verify=False)
    assert len(ds) == 987 and len(ds.skipped) == 24 and not ds.missing
    assert ds.counts() == {"bcc": 42, "bkl": 69, "df": 20, "mel": 252, "nv": 575, "vasc": 29}


@pytest.mark.realdata
def test_committed_isic2019_split_is_grouped_and_stratified_by_source(isic2019):
    from collections import Counter

    from dermalens.data.splits import Split

    ds = load_dataset(isic2019, verify=False)
    split = Split.load("configs/splits/isic2019-seed0.json")
    assert set(split.assignments) == {r.image_id for r in ds.records}
    split.check_no_leak()
    lesions: dict[str, set[str]] = {}
    for r in ds.records:
        lesions.setdefault(r.group, set()).add(split.assignments[r.image_id])
    assert all(len(parts) == 1 for parts in lesions.values())  # lesion_id never in two splits
    for source in ("bcn", "msk", "isic-archive"):
        shares = Counter(split.assignments[r.image_id] for r in ds.records if r.source == source)
        assert 0.10 < shares["val"] / sum(shares.values()) < 0.19, (source, shares)


def test_split_stratifies_by_source_and_label(tmp_path):
    from dermalens.data.records import Dataset, Record

    records = [
        Record(tmp_path / f"{s}{i}.jpg", "mel" if i % 3 == 0 else "nv", f"{s}-L{i // 2}", f"{s}{i}", source=s)
        for s in ("a", "b")
        for i in range(140)
    ]
    split = split_dataset(Dataset("csv", tmp_path, records), seed=1)
    split.check_no_leak()
    for source in ("a", "b"):
        test = [r for r in records if r.source == source and split.assignments[r.image_id] == "test"]
        assert 12 <= len(test) <= 30
        assert any(r.label == "mel" for r in test)
    assert stratum(records[0]) == "a:mel"
