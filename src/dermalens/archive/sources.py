"""What an archive job scores: the images below folders (recursive), or the rows of a manifest CSV
(a `path` column, optional `label`, `age`, `sex` and `site`), one `Item` at a time.

Why streamed: a hospital's ten years of exports is millions of files; the job walks them in a
fixed order (names sorted within each folder) without listing them all in memory. A manifest is
checked whole before any image is scored (`count`), so a bad value on line 80,000 stops the job
before it has spent an hour, with the line and column named.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dermalens.core.decode import IMAGE_SUFFIXES
from dermalens.core.metadata import PatientMetadata
from dermalens.core.taxonomy import UnknownLabelError, label_from_filename, normalize_label

#: Manifest columns: the image path (relative paths are read from the manifest's folder), and
#: the optional truth and patient data, under the names HAM10000/ISIC metadata files use too.
PATH_COLUMNS = ("path", "file", "filename", "image_path")
LABEL_COLUMNS = ("label", "dx", "diagnosis")
FIELD_COLUMNS = {
    "age": ("age", "age_approx"),
    "sex": ("sex",),
    "site": ("site", "localization", "anatom_site_general", "anatom_site_general_challenge"),
}


class ManifestError(ValueError):
    """A manifest that cannot be read as one: no path column, or a bad value (line and column named)."""


@dataclass(frozen=True)
class Item:
    """One image to score: where it is, its label if known, the patient data given with it."""

    path: Path
    label: str | None = None
    patient: PatientMetadata = field(default_factory=PatientMetadata)


def is_manifest(source: Path) -> bool:
    return source.suffix.lower() == ".csv" and source.is_file()


def items(sources: Sequence[Path]) -> Iterator[Item]:
    """Every item of every source in order: a manifest's rows, a folder's images (recursive,
    names sorted), a file as given (a missing one too, so that it is reported, not skipped)."""
    for source in sources:
        if is_manifest(source):
            yield from manifest_items(source)
        elif source.is_dir():
            yield from folder_items(source)
        else:
            yield Item(source, label_from_filename(source.name))


def count(sources: Sequence[Path]) -> int:
    """How many items `items` will yield; reads (and so checks) every manifest row."""
    return sum(1 for _ in items(sources))


def folder_items(root: Path) -> Iterator[Item]:
    """Images below `root` in a fixed order (directories and files sorted by name), walked lazily;
    labels read from file names that carry one (``sample_3_malignant_mel.jpg``)."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                yield Item(Path(folder) / name, label_from_filename(name))


def manifest_items(manifest: Path) -> Iterator[Item]:
    """The manifest's rows as items; a bad label or patient value raises `ManifestError` naming
    the line and column."""
    with open(manifest, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = {h.strip().lower(): h for h in reader.fieldnames or []}
        path_col = _column(header, PATH_COLUMNS)
        if path_col is None:
            raise ManifestError(f"{manifest}: needs a path column, one of {', '.join(PATH_COLUMNS)}")
        label_col = _column(header, LABEL_COLUMNS)
        cols = {f: _column(header, names) for f, names in FIELD_COLUMNS.items()}
        for line, row in enumerate(reader, start=2):
            raw = (row.get(path_col) or "").strip()
            if not raw:
                raise ManifestError(f"{manifest} line {line}: empty {path_col!r}")
            path = Path(raw)
            yield Item(
                path if path.is_absolute() else manifest.parent / path,
                _label(row.get(label_col) if label_col else None, manifest, line),
                _patient(row, cols, manifest, line),
            )


def _column(header: dict[str, str], names: Sequence[str]) -> str | None:
    return next((header[n] for n in names if n in header), None)


def _label(raw: str | None, manifest: Path, line: int) -> str | None:
    text = (raw or "").strip()
    if not text:
        return None
    try:
        return normalize_label(text)
    except UnknownLabelError as err:
        raise ManifestError(f"{manifest} line {line}: label {text!r}: {err}") from None


def _patient(row: dict[str, str], cols: dict[str, str | None], manifest: Path, line: int) -> PatientMetadata:
    try:
        return PatientMetadata.parse(**{f: row.get(c) if c else None for f, c in cols.items()})
    except ValueError as err:
        raise ManifestError(f"{manifest} line {line}: {err}") from None
