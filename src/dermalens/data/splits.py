"""Leakage-free splits: stratified by source and label, grouped by lesion, seeded, saved to a file.

Why grouped: HAM10000 has 2,545 extra photos of lesions already in the set; a split by
image puts the same lesion in train and test and inflates the score. Near-duplicate
images with *different* lesion ids (found by `duplicates.py`) are merged into one group
first, so they land in the same split too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dermalens.data.records import Dataset, Record

SPLIT_NAMES = ("train", "val", "test")


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        self.parent.setdefault(item, item)
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def merged_groups(records: list[Record], linked_pairs: Iterable[tuple[str, str]] = ()) -> dict[str, str]:
    """image_id → split group: the lesion id, with groups joined when two of their images are linked."""
    uf = _UnionFind()
    group_of = {r.image_id: r.group for r in records}
    for r in records:
        uf.find(r.group)
    for a, b in linked_pairs:
        if a in group_of and b in group_of:
            uf.union(group_of[a], group_of[b])
    return {image_id: uf.find(group) for image_id, group in group_of.items()}


@dataclass
class Split:
    """Which split each image belongs to; saved as JSON so a run can be reproduced exactly."""

    assignments: dict[str, str]
    seed: int
    fractions: dict[str, float] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)

    def ids(self, name: str) -> set[str]:
        """Image ids of one split (``train``, ``val``, ``test`` or ``fold<k>``)."""
        return {i for i, s in self.assignments.items() if s == name}

    def names(self) -> list[str]:
        return sorted(set(self.assignments.values()))

    def check_no_leak(self) -> None:
        """Raise if any group appears in two splits."""
        seen: dict[str, str] = {}
        for image_id, split in self.assignments.items():
            group = self.groups.get(image_id, image_id)
            if seen.setdefault(group, split) != split:
                raise ValueError(f"group {group!r} is in both {seen[group]!r} and {split!r}")

    def save(self, path: str | Path) -> None:
        payload = {
            "seed": self.seed,
            "fractions": self.fractions,
            "assignments": self.assignments,
            "groups": self.groups,
        }
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, sort_keys=True, separators=(",", ":")) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Split:
        data = json.loads(Path(path).read_text())
        return cls(data["assignments"], data["seed"], data.get("fractions", {}), data.get("groups", {}))


def stratum(record: Record) -> str:
    """What a split keeps in proportion: the source and the label together (``bcn:mel``), so each
    clinic's share of each diagnosis is the same in train, validation and test."""
    return f"{record.source}:{record.label}"


def _stratified_group_folds(
    labels: list[str], groups: list[str], n_splits: int, seed: int
) -> list[np.ndarray]:
    """Index arrays of `n_splits` folds, grouped and stratified (scikit-learn's StratifiedGroupKFold)."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    dummy = np.zeros(len(labels))
    return [test for _train, test in splitter.split(dummy, labels, groups)]


def split_dataset(
    dataset: Dataset,
    *,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    linked_pairs: Iterable[tuple[str, str]] = (),
) -> Split:
    """A train/val/test split by group, stratified by source and label.

    `val` and `test` are approximate fractions: groups are indivisible, so folds of
    size ≈ 1/round(1/fraction) are used (0.15 → 1/7 ≈ 0.143).
    """
    records = dataset.records
    groups = merged_groups(records, linked_pairs)
    assignments = {r.image_id: "train" for r in records}
    remaining = list(range(len(records)))
    for name, fraction in (("test", test), ("val", val / max(1e-9, 1 - test))):
        if fraction <= 0:
            continue
        n_splits = max(2, round(1 / fraction))
        sub = [records[i] for i in remaining]
        folds = _stratified_group_folds(
            [stratum(r) for r in sub], [groups[r.image_id] for r in sub], n_splits, seed
        )
        chosen = {remaining[i] for i in folds[0]}
        for i in chosen:
            assignments[records[i].image_id] = name
        remaining = [i for i in remaining if i not in chosen]
    split = Split(assignments, seed, {"val": val, "test": test}, groups)
    split.check_no_leak()
    return split


def kfold_dataset(
    dataset: Dataset, *, k: int = 5, seed: int = 0, linked_pairs: Iterable[tuple[str, str]] = ()
) -> Split:
    """k grouped, stratified folds named ``fold0`` … ``fold{k-1}``."""
    records = dataset.records
    groups = merged_groups(records, linked_pairs)
    folds = _stratified_group_folds(
        [stratum(r) for r in records], [groups[r.image_id] for r in records], k, seed
    )
    assignments = {records[i].image_id: f"fold{f}" for f, fold in enumerate(folds) for i in fold}
    split = Split(assignments, seed, {"k": float(k)}, groups)
    split.check_no_leak()
    return split
