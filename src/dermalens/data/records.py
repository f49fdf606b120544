"""The one record every dataset reader yields, and the result of reading a dataset."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dermalens.core.metadata import PatientMetadata, parse_sex
from dermalens.core.taxonomy import binary_label, is_dx_code

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Record:
    """One labelled image, whatever the layout on disk.

    `label` is a dx code (``mel``...) or a binary-only label (``benign``/``malignant``).
    `group` is the lesion (or patient) id used to keep every photo of one lesion in
    one split; it falls back to the image id when the source has none.
    Metadata fields are ``None`` when unknown: they are never imputed here.
    """

    path: Path
    label: str
    group: str
    image_id: str
    age: float | None = None
    sex: str | None = None
    site: str | None = None
    #: Where the image comes from (``ham10000``, ``bcn``, ``msk``, ``isic-archive``, ``derm7pt``, or
    #: the reader's format for a user's folder): splits stratify by it and evaluation reports by it.
    source: str = ""

    @property
    def binary(self) -> str:
        """'benign' or 'malignant'."""
        return binary_label(self.label)

    @property
    def patient(self) -> PatientMetadata:
        """Age, sex and body-site group for metadata-fusion models; unparseable values are unknown.

        ``dx_type`` is deliberately never read: it reveals how the label was obtained."""
        return PatientMetadata.lenient(self.age, self.sex, self.site)

    @property
    def has_dx(self) -> bool:
        """True when the label is a diagnosis, not only benign/malignant."""
        return is_dx_code(self.label)


@dataclass
class Dataset:
    """Records read from one source, plus what could not be read (never silently dropped)."""

    format: str
    root: Path
    records: list[Record]
    missing: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    #: Rows left out on purpose, with the reason (e.g. a diagnosis with no 7-class label).
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        counts = dict(sorted(Counter(r.label for r in self.records).items()))
        return (
            f"Dataset(format={self.format!r}, root='{self.root}', n={len(self.records)}, "
            f"groups={len({r.group for r in self.records})}, counts={counts}, "
            f"missing={len(self.missing)}, unreadable={len(self.unreadable)}, skipped={len(self.skipped)})"
        )

    def counts(self) -> dict[str, int]:
        """Images per label."""
        return dict(sorted(Counter(r.label for r in self.records).items()))

    def source_counts(self) -> dict[str, dict[str, int]]:
        """Images per label within each source."""
        out: dict[str, Counter[str]] = {}
        for r in self.records:
            out.setdefault(r.source, Counter())[r.label] += 1
        return {s: dict(sorted(c.items())) for s, c in sorted(out.items())}

    def binary_counts(self) -> dict[str, int]:
        """Images per benign/malignant."""
        return dict(sorted(Counter(r.binary for r in self.records).items()))

    def subset(self, image_ids: set[str]) -> Dataset:
        """A dataset with only the given image ids (e.g. one split)."""
        kept = [r for r in self.records if r.image_id in image_ids]
        return Dataset(
            self.format, self.root, kept, list(self.missing), list(self.unreadable), list(self.skipped)
        )


def normalize_sex(value: object) -> str | None:
    """'male'/'female', or None for unknown/empty (kept explicit, never guessed): the spellings of
    `inference.metadata.parse_sex`, the one sex parser, with anything it rejects read as unknown."""
    try:
        return parse_sex(value)
    except ValueError:
        return None


def normalize_site(value: object) -> str | None:
    """Lower-case anatomical site with spaces, or None when unknown/empty."""
    text = " ".join(str(value).strip().lower().replace("_", " ").split()) if value is not None else ""
    return None if text in ("", "unknown", "nan", "none") else text


def normalize_age(value: object) -> float | None:
    """Age in years as float, or None when empty or not a number."""
    try:
        age = float(str(value).strip())
    except ValueError:
        return None
    return None if age != age or age < 0 else age  # NaN check without numpy
