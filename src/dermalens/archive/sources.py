"""What an archive job scores: the images below folders (recursive), or the rows of a manifest CSV
(a `path` column, optional `label`, `age`, `sex` and `site`), one `Record` at a time.

Why streamed: a hospital's ten years of exports is millions of files; the job walks them in a
fixed order (names sorted within each folder) without listing them all in memory. A manifest is
checked whole before any image is scored (`count`), so a bad value on line 80,000 stops the job
before it has spent an hour, with the line and column named.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from dermalens.core.columns import TableError, read_table
from dermalens.core.decode import IMAGE_SUFFIXES
from dermalens.core.record import Record, patient_fields
from dermalens.core.taxonomy import UnknownLabelError, label_from_filename, normalize_label

#: What an archive job scores is the one input record (`core.record.Record`); this name stays
#: for the job and the Ray driver, which speak of items.
Item = Record[str | None]
#: A manifest that cannot be read as one: no path column, or a bad value (line and column named).
ManifestError = TableError


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
    """The manifest's rows as items (its columns: the ``manifest`` layout of `core.columns.LAYOUTS`);
    a bad label or patient value raises `ManifestError` naming the line; patient data is parsed
    strictly, as user input."""
    table = read_table(manifest, ("manifest",))
    for line, row in table.rows():
        if not row["path"]:
            raise ManifestError(f"{manifest} line {line}: empty {table.columns['path'][0]!r}")
        path = Path(row["path"])
        try:
            patient = patient_fields(row, strict=True)
        except ValueError as err:
            raise ManifestError(f"{manifest} line {line}: {err}") from None
        yield Item(
            path if path.is_absolute() else manifest.parent / path,
            _label(row.get("label"), manifest, line),
            **patient,
        )


def _label(raw: str | None, manifest: Path, line: int) -> str | None:
    if not raw:
        return None
    try:
        return normalize_label(raw)
    except UnknownLabelError as err:
        raise ManifestError(f"{manifest} line {line}: label {raw!r}: {err}") from None
