"""Derm7pt (Kawahara et al., IEEE JBHI 2019): another clinic's dermoscopy, for evaluation only.

Licence CC BY-NC-ND 4.0: dermalens never trains, calibrates, picks thresholds or fits its
out-of-distribution gate on it (the training config refuses it: `training.prepare`). It is the
project's visible test of how a model does on a clinic and camera it has never seen.

Layout: ``meta/meta.csv`` (``diagnosis`` and ``derm``, the image path below ``images/``) and
``images/``. The CSV's folder names differ in case from the disk (``FCl/`` is ``FCL/``), so
paths are matched case-insensitively.
"""

from __future__ import annotations

import os
from pathlib import Path

from dermalens.core.columns import fits, read_table
from dermalens.core.taxonomy import UnknownLabelError, normalize_label
from dermalens.data.records import Dataset, Record

SOURCE = "derm7pt"
META = Path("meta") / "meta.csv"


def derm7pt_label(diagnosis: str) -> str | None:
    """The 7-class code of a Derm7pt diagnosis, by the mapping its README gives; None for none.

    Nevi of every kind (clark, blue, combined, congenital, dermal, recurrent, reed/spitz) → nv;
    melanoma of every kind (in situ, thickness bands, metastasis) → mel; seborrheic keratosis
    and lentigo → bkl; the rest by their names. Melanosis and "miscellaneous" have no class.
    """
    text = diagnosis.strip().lower()
    if "nevus" in text:
        return "nv"
    if text.startswith("melanoma"):
        return "mel"
    try:
        code = normalize_label(text)
    except UnknownLabelError:
        return None
    return code if code not in ("benign", "malignant") else None


def is_derm7pt(root: Path) -> bool:
    """True for a folder with Derm7pt's ``meta/meta.csv`` (columns diagnosis and derm)."""
    meta = root / META
    return meta.is_file() and fits(meta, ("derm7pt",))


def _case_insensitive_index(images: Path) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for folder, _dirs, files in os.walk(images):
        for name in files:
            path = Path(folder) / name
            index[path.relative_to(images).as_posix().lower()] = path
    return index


def read_derm7pt(root: Path) -> Dataset:
    """Derm7pt's dermoscopic images with their 7-class labels.

    Rows whose diagnosis has no class are listed in `skipped` with the reason (not errors of
    the data, but a user must see that they were left out); rows whose file is absent are
    listed in `missing`."""
    if root.is_file():
        root = root.parent.parent
    index = _case_insensitive_index(root / "images")
    records: list[Record] = []
    missing: list[str] = []
    unlabelled: list[tuple[str, str]] = []
    for _line, row in read_table(root / META, ("derm7pt",)).rows():
        rel = row["path"]
        image_id = Path(rel).stem
        label = derm7pt_label(row["label"])
        if label is None:
            unlabelled.append((image_id, f"diagnosis {row['label']!r} has no 7-class label"))
            continue
        path = index.get(rel.lower())
        if path is None:
            missing.append(rel)
            continue
        records.append(Record(path=path, label=label, group=image_id, image_id=image_id, source=SOURCE))
    return Dataset("derm7pt", root, records, missing, skipped=unlabelled)
