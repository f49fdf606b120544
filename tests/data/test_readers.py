import logging

import numpy as np
import pytest

from conftest import lesion_like, save_image
from dermalens.data.readers import DatasetError, detect_format, load_dataset


def _ham(tmp_path, corrupt=False):
    rows = ["lesion_id,image_id,dx,dx_type,age,sex,localization"]
    for i, dx in enumerate(["nv", "mel", "bkl", "nv"]):
        part = "HAM10000_images_part_1" if i < 2 else "HAM10000_images_part_2"
        save_image(tmp_path / part / f"ISIC_{i:07d}.jpg", lesion_like(i, (60, 45)))
        rows.append(f"HAM_{i // 2},ISIC_{i:07d},{dx},histo,{40 + i if i else ''},male,back")
    rows.append("HAM_9,ISIC_0000099,nv,histo,50,female,face")  # listed, no file
    if corrupt:
        (tmp_path / "HAM10000_images_part_2" / "ISIC_0000003.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    (tmp_path / "HAM10000_metadata.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_ham10000_reader_finds_images_in_both_parts(tmp_path, caplog):
    root = _ham(tmp_path)
    assert detect_format(root) == "ham10000"
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(root)
    assert len(ds) == 4
    assert ds.missing == ["ISIC_0000099"]
    assert "ISIC_0000099" in caplog.text
    first = ds.records[0]
    assert first.group == "HAM_0" and first.age is None and first.sex == "male" and first.site == "back"
    assert ds.counts() == {"bkl": 1, "mel": 1, "nv": 2}
    assert ds.binary_counts() == {"benign": 3, "malignant": 1}


def test_unreadable_image_is_reported_not_fatal_and_strict_raises(tmp_path):
    root = _ham(tmp_path, corrupt=True)
    ds = load_dataset(root)
    assert [i for i, _ in ds.unreadable] == ["ISIC_0000003"]
    assert len(ds) == 3
    with pytest.raises(DatasetError, match="cannot be decoded"):
        load_dataset(root, strict=True)


def test_isic_groundtruth_with_metadata_and_missing(tmp_path):
    folder = tmp_path / "ISIC2018_Task3_Test_Images"
    for i in range(3):
        save_image(folder / f"ISIC_{i:07d}.jpg", lesion_like(i))
    (tmp_path / "ISIC2018_Task3_Test_GroundTruth.csv").write_text(
        "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\n"
        "ISIC_0000000,1.0,0.0,0.0,0.0,0.0,0.0,0.0\n"
        "ISIC_0000001,0.0,0.0,0.0,0.0,0.0,0.0,1.0\n"
        "ISIC_0000002,0.0,0.0,0.0,1.0,0.0,0.0,0.0\n"
        "ISIC_0000003,0.0,1.0,0.0,0.0,0.0,0.0,0.0\n"
    )
    (tmp_path / "ISIC2018_Task3_Test_Metadata.csv").write_text(
        "image,age_approx,anatom_site_general,lesion_id,sex\nISIC_0000000,55,head/neck,L1,female\n"
    )
    assert detect_format(tmp_path) == "isic"
    ds = load_dataset(tmp_path)
    assert [r.label for r in ds.records] == ["mel", "vasc", "akiec"]
    assert ds.missing == ["ISIC_0000003"]
    assert ds.records[0].group == "L1" and ds.records[0].age == 55 and ds.records[0].sex == "female"
    assert ds.records[1].group == "ISIC_0000001"


def test_folder_per_class_with_aliases_and_bmp(tmp_path):
    for cls, n in (("benign", 3), ("malignant", 2), ("MM", 1), ("SK", 1), ("notes", 1)):
        for i in range(n):
            save_image(tmp_path / cls / f"img{i}.bmp", lesion_like(i), "BMP")
    ds = load_dataset(tmp_path)
    assert ds.format == "folder"
    assert ds.counts() == {"benign": 3, "bkl": 1, "malignant": 2, "mel": 1}
    assert len({r.group for r in ds.records}) == 7


def test_generic_csv(tmp_path):
    save_image(tmp_path / "a.png", lesion_like(1), "PNG")
    save_image(tmp_path / "b.jpg", lesion_like(2))
    (tmp_path / "labels.csv").write_text(
        "path,label,group,age,sex,site\na.png,melanoma,p1,70,M,back\nb.jpg,nv,p1,,F,\n"
    )
    ds = load_dataset(tmp_path / "labels.csv")
    assert ds.format == "csv"
    assert [(r.label, r.group, r.age, r.sex) for r in ds.records] == [
        ("mel", "p1", 70.0, "male"),
        ("nv", "p1", None, "female"),
    ]


def test_unknown_layout_and_unknown_format_errors(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DatasetError, match="layout not recognised"):
        load_dataset(tmp_path)
    with pytest.raises(DatasetError, match="valid formats"):
        load_dataset(tmp_path, format="dicom")


def test_unknown_label_in_csv_is_clear(tmp_path):
    save_image(tmp_path / "a.png", np.zeros((20, 20, 3), np.uint8), "PNG")
    (tmp_path / "labels.csv").write_text("path,label\na.png,freckle\n")
    with pytest.raises(ValueError, match="unknown label 'freckle'"):
        load_dataset(tmp_path)
