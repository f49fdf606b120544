"""What an evaluation reads and what it produced: the records to score (one split of any dataset
layout) and the run (records, combined outputs, figures, output folder) that `compare` and the
report reuse."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dermalens.core.taxonomy import to_ham
from dermalens.data.records import Record
from dermalens.inference.combined import Combined

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


@dataclass
class EvalData:
    """The records to score, and those listed but not found (counted as skipped)."""

    records: list[Record]
    missing: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalRun:
    """Everything one evaluation produced (`compare` and the report reuse it)."""

    records: list[Record]  # aligned with the rows of `combined`
    combined: Combined
    metrics: dict[str, Any]
    out_dir: Path


def load_eval_data(
    data_path: PathLike,
    split_file: PathLike | None = None,
    split_name: str = "test",
    data_format: str | None = None,
) -> EvalData:
    """Read a dataset (any layout) and keep one split; decoding is checked later, once, by inference."""
    from dermalens.data.readers import load_dataset
    from dermalens.data.splits import Split

    dataset = load_dataset(data_path, data_format, verify=False)
    info: dict[str, Any] = {"path": str(data_path), "format": dataset.format}
    missing = list(dataset.missing)
    records = list(dataset.records)
    if split_file is not None:
        split = Split.load(Path(split_file))
        ids = split.ids(split_name)
        if not ids:
            raise ValueError(f"{split_file}: split {split_name!r} is empty or absent; names: {split.names()}")
        records = [r for r in records if r.image_id in ids]
        missing = [m for m in missing if m in ids]
        unknown = len(ids) - len(records) - len(missing)
        if unknown:
            log.warning("%d image ids of split %r are not in %s", unknown, split_name, data_path)
        info.update(split_file=str(split_file), split_name=split_name, split_ids_not_in_data=unknown)
    if not records:
        where = f" in split {split_name!r}" if split_file else ""
        raise ValueError(f"{data_path}: no images to evaluate{where}")
    return EvalData(records, missing, info)


def model_label(label: str, classes: Sequence[str]) -> str:
    """A record's label in the model's terms: itself, or its 7-class fold (SCC → akiec,
    `taxonomy.HAM_FOLD`) for a model without that class; the benign/malignant truth is unchanged."""
    if label in classes:
        return label
    return to_ham(label) or label


def label_targets(labels: Sequence[str], classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(rows whose label the model can name, their class indices): labels in the model's terms
    (`model_label`: SCC → akiec); a label it cannot name (e.g. melanosis) is left out."""
    mapped = [model_label(label, classes) for label in labels]
    keep = np.asarray([m in classes for m in mapped], dtype=bool)
    return keep, np.asarray([classes.index(m) for m, k in zip(mapped, keep, strict=True) if k], dtype=int)
