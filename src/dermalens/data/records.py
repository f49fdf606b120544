"""The result of reading a dataset: its records (`core.record.Record`, the one input record,
re-exported here for the readers' users) and what could not be read."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dermalens.core.record import Record

__all__ = ["Dataset", "Record"]

log = logging.getLogger(__name__)


@dataclass
class Dataset:
    """Records read from one source, plus what could not be read (never silently dropped)."""

    format: str
    root: Path
    records: list[Record[str]]
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
