"""Which CSV column means what, for every table layout dermalens reads: dataset facts kept as data.

HAM10000 calls the diagnosis ``dx`` and the body site ``localization``; ISIC calls the image
``image``, the age ``age_approx`` and gives the diagnosis as one-hot class columns; Derm7pt's
image path is ``derm``; a user's manifest may say ``file`` or ``filename``. `LAYOUTS` records
these names (as MedMNIST keeps its datasets' facts in one table) and `read_table` is the one CSV
reader: the header picks the layout, and every row comes back keyed by field (`FIELDS`), whatever
the file calls it. A header that fits none of the layouts asked for is a `TableError` listing the
column names each accepts. Adding a dataset is a row in `LAYOUTS`, not a new reader.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dermalens.core.taxonomy import ALL_CODES, UnknownLabelError, normalize_label

#: What a column can mean. ``path`` is a file path (relative to the table), ``image_id`` a name
#: or stem to find the image by, ``group`` the lesion (or patient) id.
FIELDS = ("path", "image_id", "label", "group", "age", "sex", "site", "source")

_AGE = ("age", "age_approx")
_SITE = ("site", "localization", "anatom_site_general", "anatom_site_general_challenge")


class TableError(ValueError):
    """A CSV that cannot be read as any of the layouts asked for, or a row that breaks its layout."""


@dataclass(frozen=True)
class Layout:
    """One table layout: for each field, the column names that carry it (lower case; in a row the
    first non-empty one wins, so ISIC's ``lesion_id`` falls back to ``patient_id``)."""

    name: str
    description: str
    columns: Mapping[str, tuple[str, ...]]
    #: Fields that must have a column for a header to be this layout.
    required: tuple[str, ...]
    #: At least one of these fields must have a column too (an ISIC metadata file has some of them).
    any_of: tuple[str, ...] = ()
    #: The label is the one class column set to 1 (ISIC ground truth: ``MEL,NV,BCC,...``).
    one_hot: bool = False

    def match(self, header: Sequence[str]) -> dict[str, tuple[str, ...]] | None:
        """{field: the header's columns for it} when `header` is this layout, else None."""
        lower: dict[str, list[str]] = {}
        for name in header:
            lower.setdefault(name.strip().lower(), []).append(name)
        found = {f: tuple(c for n in names for c in lower.get(n, ())) for f, names in self.columns.items()}
        found = {f: cols for f, cols in found.items() if cols}
        if not set(self.required) <= set(found) or (self.any_of and not set(self.any_of) & set(found)):
            return None
        if self.one_hot:
            classes = class_columns(header)
            if len(classes) < 2:
                return None
            found["label"] = tuple(classes)
        return found

    def accepted(self) -> str:
        """The column names this layout accepts, for error messages."""
        parts = []
        for name, names in self.columns.items():
            need = "" if name in self.required else "optional "
            parts.append(f"{need}{name} column ({', '.join(names)})")
        if self.one_hot:
            parts.append("one-hot class columns (MEL, NV, BCC, AKIEC/AK, BKL, DF, VASC, ...)")
        if self.any_of:
            parts.append(f"at least one of {', '.join(self.any_of)}")
        return f"{self.description}: " + "; ".join(parts)


#: Every layout dermalens reads, by name. Readers ask for the layouts that make sense to them.
LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout(
            "ham10000",
            "HAM10000 metadata",
            {
                "image_id": ("image_id",),
                "label": ("dx",),
                "group": ("lesion_id",),
                "age": ("age",),
                "sex": ("sex",),
                "site": ("localization",),
            },
            required=("image_id", "label", "group"),
        ),
        Layout("isic", "ISIC ground truth", {"image_id": ("image",)}, required=("image_id",), one_hot=True),
        Layout(
            "isic-metadata",
            "ISIC metadata",
            {
                "image_id": ("image",),
                "group": ("lesion_id", "patient_id"),
                "age": ("age_approx",),
                "sex": ("sex",),
                "site": ("anatom_site_general", "anatom_site_general_challenge"),
            },
            required=("image_id",),
            any_of=("age", "sex", "site"),
        ),
        Layout(
            "derm7pt",
            "Derm7pt meta/meta.csv",
            {"path": ("derm",), "label": ("diagnosis",)},
            required=("path", "label"),
        ),
        Layout(
            "csv",
            "a path,label CSV",
            {f: (f,) for f in ("path", "label", "group", "age", "sex", "site", "source")},
            required=("path", "label"),
        ),
        Layout(
            "manifest",
            "a prediction manifest",
            {
                "path": ("path", "file", "filename", "image_path"),
                "label": ("label", "dx", "diagnosis"),
                "age": _AGE,
                "sex": ("sex",),
                "site": _SITE,
            },
            required=("path",),
        ),
        Layout(
            "metadata",
            "a patient-data CSV (predict --metadata)",
            {
                "image_id": ("image_id", "file", "image", "path", "filename"),
                "age": _AGE,
                "sex": ("sex",),
                "site": _SITE,
            },
            required=("image_id",),
        ),
    )
}


def class_columns(header: Sequence[str]) -> list[str]:
    """The one-hot diagnosis columns of a header (``MEL``, ``NV``, ``AK``, ``SCC``, ``UNK``...)."""
    found = []
    for name in header:
        try:
            if normalize_label(name) in ALL_CODES and not name.strip().isdigit():
                found.append(name)
        except UnknownLabelError:
            continue
    return found


def csv_header(path: Path) -> list[str]:
    """The stripped column names of a CSV (UTF-8, with or without a BOM); [] for an empty file."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return [h.strip() for h in next(csv.reader(handle), [])]


def recognise(header: Sequence[str], names: Sequence[str]) -> tuple[Layout, dict[str, tuple[str, ...]]]:
    """The first of the layouts `names` that `header` fits, with its columns; a `TableError`
    listing what each accepts when none fits."""
    for name in names:
        columns = LAYOUTS[name].match(header)
        if columns is not None:
            return LAYOUTS[name], columns
    accepted = " | ".join(LAYOUTS[n].accepted() for n in names)
    raise TableError(f"columns {', '.join(header) or '(none)'} fit no known layout; accepted: {accepted}")


@dataclass
class Table:
    """A CSV read as one layout: `rows` yields ``(line number, {field: value})``, lazily, so a
    manifest of millions of rows is never held in memory."""

    path: Path
    layout: Layout
    columns: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        with open(self.path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            reader.fieldnames = [h.strip() for h in reader.fieldnames or []]
            for line, raw in enumerate(reader, start=2):
                yield line, self._row(raw, line)

    def _row(self, raw: dict[str, str | None], line: int) -> dict[str, str]:
        row = {f: next((v for c in cols if (v := row_value(raw, c))), "") for f, cols in self.columns.items()}
        if self.layout.one_hot:
            hot = [c for c in self.columns["label"] if row_value(raw, c) not in ("", "0", "0.0", "0.00")]
            if len(hot) != 1:
                raise TableError(
                    f"{self.path} line {line}: image {row.get('image_id')!r}: expected exactly one "
                    f"class column set, got {hot}"
                )
            row["label"] = hot[0]
        return row


def row_value(raw: Mapping[str, str | None], column: str) -> str:
    return (raw.get(column) or "").strip()


def read_table(path: Path, layouts: Sequence[str]) -> Table:
    """`path` read as the first of `layouts` its header fits (a `TableError` naming the file and
    the accepted columns when none does)."""
    try:
        layout, columns = recognise(csv_header(path), layouts)
    except TableError as err:
        raise TableError(f"{path}: {err}") from None
    return Table(path, layout, columns)


def fits(path: Path, layouts: Sequence[str]) -> bool:
    """True when the CSV at `path` is one of `layouts` (detection: no error, just yes or no)."""
    header = csv_header(path)
    return any(LAYOUTS[n].match(header) is not None for n in layouts)
