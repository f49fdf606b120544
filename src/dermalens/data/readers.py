"""Dataset readers: HAM10000, ISIC ground-truth CSVs, folder-per-class trees and generic CSVs.

All of them yield `Record`s, so the rest of dermalens never cares about the layout on
disk. `load_dataset` detects the layout (or takes `format=`), reports images that are
missing or cannot be decoded (a warning listing them; an error with ``strict=True``),
and never crashes on one bad file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from dermalens.core.columns import TableError, fits, read_table
from dermalens.core.decode import IMAGE_SUFFIXES
from dermalens.core.record import patient_fields
from dermalens.core.taxonomy import UnknownLabelError, normalize_label
from dermalens.data.derm7pt import is_derm7pt, read_derm7pt
from dermalens.data.records import Dataset, Record

log = logging.getLogger(__name__)

FORMATS = ("ham10000", "isic", "derm7pt", "folder", "csv")
HAM_METADATA = "HAM10000_metadata.csv"
#: The table layouts (`core.columns.LAYOUTS`) a dataset CSV may have, in the order they are tried.
TABLE_FORMATS = ("ham10000", "isic", "derm7pt", "csv")


class DatasetError(TableError):
    """A dataset that cannot be read as asked (wrong layout, bad CSV, strict-mode failures)."""


def index_images(root: Path) -> dict[str, Path]:
    """Map image stem (e.g. ``ISIC_0024306``) to its path, for every image below `root`.

    Why a walk: HAM10000's official release splits images over two folders and
    users rearrange them; finding images by id wherever they are is robust.
    """
    found: dict[str, Path] = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            stem, suffix = os.path.splitext(name)
            if suffix.lower() in IMAGE_SUFFIXES and stem not in found:
                found[stem] = Path(folder) / name
    return found


def read_ham10000(root: Path) -> Dataset:
    """HAM10000: ``HAM10000_metadata.csv`` plus images found by ``image_id`` below `root`."""
    meta = root / HAM_METADATA if root.is_dir() else root
    root = meta.parent
    images = index_images(root)
    records, missing = [], []
    for _line, row in read_table(meta, ("ham10000",)).rows():
        image_id = row["image_id"]
        if image_id not in images:
            missing.append(image_id)
            continue
        records.append(
            Record(
                path=images[image_id],
                label=normalize_label(row["label"]),
                group=row.get("group") or image_id,
                image_id=image_id,
                source="ham10000",
                **patient_fields(row, strict=False),
            )
        )
    return Dataset("ham10000", root, records, missing)


def isic_source(lesion_id: str) -> str:
    """The contributing clinic of an ISIC 2019 image, read from its ``lesion_id``.

    ``BCN_…`` is Hospital Clínic Barcelona (BCN20000), ``MSK…`` Memorial Sloan Kettering (ISIC
    2017), ``HAM_…`` HAM10000; images without a lesion id come from the older ISIC archive."""
    prefix = lesion_id.split("_", 1)[0].upper()
    if prefix == "BCN":
        return "bcn"
    if prefix.startswith("MSK"):
        return "msk"
    if prefix == "HAM":
        return "ham10000"
    return "isic-archive" if not lesion_id else prefix.lower()


def find_image(images: dict[str, Path], image_id: str) -> Path | None:
    """The file of `image_id`, also when only one side says ``_downsampled`` (ISIC archive names)."""
    suffix = "_downsampled"
    return images.get(image_id) or images.get(image_id + suffix) or images.get(image_id.removesuffix(suffix))


def read_isic(path: Path) -> Dataset:
    """ISIC 2018 Task 3 / 2019 style: ``image`` + one-hot class columns, images beside the CSV.

    An optional metadata CSV in the same folder (``age_approx``, ``sex``,
    ``anatom_site_general``, ``lesion_id``/``patient_id``) is joined by image id. Listed images
    without a file (ISIC 2019 has 32 such AK rows) are reported in `missing`, not fatal.
    """
    if path.is_dir():
        candidates = sorted(p for p in path.glob("*.csv") if fits(p, ("isic",)))
        if not candidates:
            raise DatasetError(f"no ISIC ground-truth CSV (image + one-hot class columns) in {path}")
        path = candidates[0]
    root = path.parent
    meta: dict[str, dict[str, str]] = {}
    for other in sorted(root.glob("*.csv")):
        if other != path and fits(other, ("isic-metadata",)):
            meta.update({row["image_id"]: row for _, row in read_table(other, ("isic-metadata",)).rows()})
    images = index_images(root)
    records, missing = [], []
    for _line, row in read_table(path, ("isic",)).rows():
        image_id = row["image_id"]
        image = find_image(images, image_id)
        if image is None:
            missing.append(image_id)
            continue
        extra = meta.get(image_id, {})
        records.append(
            Record(
                path=image,
                label=normalize_label(row["label"]),
                group=extra.get("group") or image_id,
                image_id=image_id,
                source=isic_source(extra.get("group", "")),
                **patient_fields(extra, strict=False),
            )
        )
    return Dataset("isic", root, records, missing)


def _class_dirs(root: Path) -> list[tuple[Path, str]]:
    found = []
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            found.append((child, normalize_label(child.name)))
        except UnknownLabelError:
            continue
    return found


def read_folder(root: Path) -> Dataset:
    """Folder per class: ``root/<class>/*.jpg`` with class names through the taxonomy aliases."""
    dirs = _class_dirs(root)
    if not dirs:
        raise DatasetError(
            f"{root}: no sub-folder is named after a class; expected e.g. benign/, malignant/, mel/, nv/, MM/, SK/"
        )
    unknown = [p.name for p in root.iterdir() if p.is_dir() and p not in {d for d, _ in dirs}]
    if unknown:
        log.warning("ignoring folders that name no known class: %s", ", ".join(sorted(unknown)))
    records = []
    for folder, label in dirs:
        for path in sorted(index_images(folder).values()):
            rel = path.relative_to(root).with_suffix("").as_posix()
            records.append(Record(path=path, label=label, group=rel, image_id=rel, source="folder"))
    return Dataset("folder", root, records)


def read_generic_csv(path: Path) -> Dataset:
    """Generic CSV with columns ``path,label[,group][,age,sex,site][,source]``; paths relative to the CSV."""
    if path.is_dir():
        candidates = sorted(p for p in path.glob("*.csv") if fits(p, ("csv",)))
        if not candidates:
            raise DatasetError(f"no CSV with columns path,label in {path}")
        path = candidates[0]
    root = path.parent
    records, missing = [], []
    for _line, row in read_table(path, ("csv",)).rows():
        image = Path(row["path"])
        image = image if image.is_absolute() else root / image
        image_id = row["path"]
        if not image.is_file():
            missing.append(image_id)
            continue
        records.append(
            Record(
                path=image,
                label=normalize_label(row["label"]),
                group=row.get("group") or image_id,
                image_id=image_id,
                source=row.get("source") or "csv",
                **patient_fields(row, strict=False),
            )
        )
    return Dataset("csv", root, records, missing)


READERS: dict[str, Callable[[Path], Dataset]] = {
    "ham10000": read_ham10000,
    "isic": read_isic,
    "derm7pt": read_derm7pt,
    "folder": read_folder,
    "csv": read_generic_csv,
}


def detect_format(path: Path) -> str:
    """Guess the layout of `path` (a folder or a CSV file); raise naming what was expected."""
    if path.is_file():
        if path.name == HAM_METADATA:
            return "ham10000"
        try:
            return read_table(path, TABLE_FORMATS).layout.name
        except TableError as err:
            raise DatasetError(f"CSV columns not recognised: {err}") from None
    if not path.is_dir():
        raise DatasetError(f"{path}: no such file or folder")
    if (path / HAM_METADATA).is_file():
        return "ham10000"
    if is_derm7pt(path):
        return "derm7pt"
    csvs = sorted(path.glob("*.csv"))
    if any(fits(p, ("isic",)) for p in csvs):
        return "isic"
    if any(fits(p, ("csv",)) for p in csvs):
        return "csv"
    if _class_dirs(path):
        return "folder"
    raise DatasetError(f"{path}: layout not recognised; expected {FORMAT_HELP}")


FORMAT_HELP = (
    "one of: HAM10000 (HAM10000_metadata.csv + images), ISIC ground-truth CSV (image + one-hot "
    "MEL,NV,BCC,... columns), Derm7pt (meta/meta.csv + images/), a folder per class (benign/, malignant/, mel/, ...), or a CSV with "
    "columns path,label[,group][,age,sex,site]"
)


def check_images(
    paths: Iterable[tuple[str, Path]], progress: bool = False
) -> tuple[set[str], list[tuple[str, str]]]:
    """Decode every image cheaply (JPEG draft mode); return readable ids and (id, reason) failures."""
    from tqdm import tqdm

    from dermalens.core.decode import ImageDecodeError, probe_image

    ok: set[str] = set()
    bad: list[tuple[str, str]] = []
    items = list(paths)
    for image_id, path in tqdm(items, desc="checking images", disable=not progress, unit="img"):
        try:
            probe_image(path)
            ok.add(image_id)
        except ImageDecodeError as err:
            bad.append((image_id, str(err)))
    return ok, bad


def load_dataset(
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    strict: bool = False,
    verify: bool = True,
    progress: bool = False,
) -> Dataset:
    """Read a dataset in any supported layout.

    Missing images and (with `verify`) images that fail to decode are removed from
    `records`, listed in `missing`/`unreadable`, and logged as a warning with their
    ids; with `strict` they raise `DatasetError` instead.
    """
    root = Path(path).expanduser()
    fmt = format or detect_format(root)
    if fmt not in READERS:
        raise DatasetError(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    dataset = READERS[fmt](root)
    if verify:
        ok, dataset.unreadable = check_images(((r.image_id, r.path) for r in dataset.records), progress)
        dataset.records = [r for r in dataset.records if r.image_id in ok]
    problems = []
    if dataset.missing:
        problems.append(f"{len(dataset.missing)} image(s) listed but not found: {_preview(dataset.missing)}")
    if dataset.unreadable:
        ids = [f"{i} ({why})" for i, why in dataset.unreadable]
        problems.append(f"{len(dataset.unreadable)} image(s) cannot be decoded: {_preview(ids)}")
    if dataset.skipped:
        log.info(
            "%s: %d row(s) left out: %s",
            root,
            len(dataset.skipped),
            _preview([f"{i} ({why})" for i, why in dataset.skipped], 3),
        )
    if problems and strict:
        raise DatasetError(f"{root}: " + "; ".join(problems))
    for problem in problems:
        log.warning("%s: %s (skipped)", root, problem)
    return dataset


def _preview(items: list[str], limit: int = 20) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")
