"""The column-alias table: every known layout is recognised, on the real files where they exist, and a
header that fits none is an error listing the accepted column names."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SHARED_DATA
from dermalens.core.columns import LAYOUTS, TableError, csv_header, read_table, recognise

DATASET_LAYOUTS = ("ham10000", "isic", "derm7pt", "csv")


def _real(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"{path} not found (the shared data beside the repository)")
    return path


@pytest.mark.parametrize(
    ("relative", "asked", "layout"),
    [
        ("ham10000/HAM10000_metadata.csv", DATASET_LAYOUTS, "ham10000"),
        ("isic2019/ISIC_2019_Training_GroundTruth.csv", DATASET_LAYOUTS, "isic"),
        ("isic2019/ISIC_2019_Training_Metadata.csv", ("isic-metadata",), "isic-metadata"),
        ("derm7pt/meta/meta.csv", DATASET_LAYOUTS, "derm7pt"),
        ("ham10000/HAM10000_metadata.csv", ("metadata",), "metadata"),  # `predict --metadata`
        ("isic2019/ISIC_2019_Training_Metadata.csv", ("metadata",), "metadata"),
    ],
)
def test_the_real_datasets_are_recognised(relative, asked, layout):
    assert read_table(_real(relative), asked).layout.name == layout


def test_the_real_tables_come_back_keyed_by_field():
    ham = next(read_table(_real("ham10000/HAM10000_metadata.csv"), ("ham10000",)).rows())[1]
    assert set(ham) == {"image_id", "label", "group", "age", "sex", "site"}
    assert ham["group"].startswith("HAM_") and ham["image_id"].startswith("ISIC_")
    line, isic = next(read_table(_real("isic2019/ISIC_2019_Training_GroundTruth.csv"), ("isic",)).rows())
    assert line == 2 and isic["image_id"] == "ISIC_0000000" and isic["label"] == "NV"  # its one-hot column
    derm = next(read_table(_real("derm7pt/meta/meta.csv"), ("derm7pt",)).rows())[1]
    assert derm["path"].lower().endswith(".jpg") and derm["label"]


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_layout_is_recognised_by_its_own_column_names(name):
    """Parametrised over the table itself: a header of each required field's first alias (and
    one-hot class columns where the layout has them) is that layout; so is any other alias."""
    layout = LAYOUTS[name]
    fields = (*layout.required, *layout.any_of[:1])
    for pick in (0, -1):
        header = [layout.columns[f][pick] for f in fields]
        if layout.one_hot:
            header += ["MEL", "NV", "BCC"]
        found, columns = recognise([h.upper() for h in header], (name,))  # case does not matter
        assert found is layout and set(fields) <= set(columns)


def test_a_plain_path_label_csv_and_a_manifest(tmp_path):
    plain = tmp_path / "labels.csv"
    plain.write_text("path,label,group\na.png,mel,L1\n")
    assert read_table(plain, DATASET_LAYOUTS).layout.name == "csv"
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("File,DX,Age_Approx,Localization\nx/a.png,bcc,55,back\n")
    rows = list(read_table(manifest, ("manifest",)).rows())
    assert rows == [(2, {"path": "x/a.png", "label": "bcc", "age": "55", "site": "back"})]


def test_the_first_non_empty_alias_wins(tmp_path):
    """ISIC metadata: ``lesion_id`` when the row has one, else ``patient_id``."""
    table = tmp_path / "meta.csv"
    table.write_text("image,age_approx,lesion_id,patient_id\nI1,40,L1,P1\nI2,45,,P2\n")
    rows = [row for _, row in read_table(table, ("isic-metadata",)).rows()]
    assert [r["group"] for r in rows] == ["L1", "P2"]


def test_an_unknown_layout_lists_the_accepted_column_names(tmp_path):
    table = tmp_path / "odd.csv"
    table.write_text("picture,verdict\na.png,mel\n")
    with pytest.raises(TableError) as caught:
        read_table(table, DATASET_LAYOUTS)
    message = str(caught.value)
    assert str(table) in message and "picture, verdict" in message
    for name in DATASET_LAYOUTS:
        layout = LAYOUTS[name]
        assert layout.description in message
        assert all(column in message for names in layout.columns.values() for column in names)
    assert "one-hot class columns" in message


def test_a_one_hot_row_with_two_classes_names_its_line(tmp_path):
    table = tmp_path / "gt.csv"
    table.write_text("image,MEL,NV,BCC\nI1,1,0,0\nI2,1,1,0\n")
    rows = read_table(table, ("isic",)).rows()
    assert next(rows)[1]["label"] == "MEL"
    with pytest.raises(TableError, match=r"line 3: image 'I2': expected exactly one class column set"):
        next(rows)


def test_headers_are_read_with_or_without_a_byte_order_mark(tmp_path):
    table = tmp_path / "bom.csv"
    table.write_bytes("\ufeffpath, label\na.png,nv\n".encode())
    assert csv_header(table) == ["path", "label"]
    assert read_table(table, ("csv",)).layout.name == "csv"
