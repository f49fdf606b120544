"""Data for a training stage: read the dataset, make or reuse the lesion-grouped split, map targets."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dermalens.artifact.meta import META_FILE, WEIGHTS_FILE
from dermalens.artifact.store import ensemble_owner, ensemble_words, load_meta
from dermalens.core.metadata import MetadataEncoding
from dermalens.core.preprocess import Preprocessing
from dermalens.core.taxonomy import BINARY_LABELS, DX_CODES, MALIGNANT, MALIGNANT_LABEL, to_ham
from dermalens.data.readers import load_dataset
from dermalens.data.records import Dataset, Record
from dermalens.data.splits import Split, split_dataset
from dermalens.training.config import DataConfig, SourceConfig, StageConfig, TrainConfig

log = logging.getLogger(__name__)


def targets_for(head: str) -> tuple[list[str], list[str]]:
    """(class order, malignant classes) for a head: taken from the taxonomy, never re-listed.

    A hierarchical head has the 7 diagnoses too (its branches are the malignant set)."""
    if head == "binary":
        return list(BINARY_LABELS), [MALIGNANT_LABEL]
    return list(DX_CODES), sorted(MALIGNANT & set(DX_CODES))


def stage_preprocessing(config: TrainConfig, stage: StageConfig) -> Preprocessing:
    """The run's preprocessing at this stage's input size (progressive resizing)."""
    if stage.input_size is None:
        return config.preprocessing
    width, height = stage.input_size
    return dataclasses.replace(config.preprocessing, input_size=(int(width), int(height)))


def metadata_encoding(config: TrainConfig) -> MetadataEncoding | None:
    """The metadata vector layout this run trains with (None = image only)."""
    return MetadataEncoding() if config.model.metadata else None


def network_for(config: TrainConfig, classes: list[str], malignant: list[str], *, init: bool) -> Any:
    """The run's network; `init` loads pretrained/checkpoint weights (False: shapes only)."""
    from dermalens.models.factory import create_model

    encoding = metadata_encoding(config)
    return create_model(
        config.model.architecture,
        pretrained=config.model.pretrained and init,
        num_classes=len(classes),
        drop_rate=config.model.drop_rate,
        checkpoint=checkpoint_file(config.model.checkpoint) if init else None,
        metadata_dim=encoding.dim if encoding else 0,
        hierarchical=config.model.head == "hierarchical",
        malignant=[classes.index(c) for c in malignant],
        metadata_branch="linear" if config.model.fusion == "late" else "mlp",
    )


def checkpoint_file(checkpoint: str | None) -> str | None:
    """`model.checkpoint`, checked to be a weights file before minutes of data loading are spent.
    An ensemble artifact's weights.pt is its primary network's (said in one line: the run starts
    from that network, not from the ensemble); its member folders hold none (`copy_member`)."""
    if checkpoint is None:
        return None
    path = Path(checkpoint)
    folder = path.parent
    if path.is_file() and (folder / META_FILE).is_file():
        _, meta = load_meta(folder, verify=False)
        if meta.ensemble is not None:
            log.warning("%s; model.checkpoint starts from its primary network", ensemble_words(folder, meta))
    if not path.is_file():
        member = path.name == WEIGHTS_FILE and ensemble_owner(folder) is not None
        why = f" (an ensemble's member folders are copied without {WEIGHTS_FILE})" if member else ""
        raise ValueError(
            f"model.checkpoint {checkpoint}: not a file{why}; valid: a PyTorch state dict, such as "
            f"an artifact's {WEIGHTS_FILE} (an ensemble artifact's own {WEIGHTS_FILE} is its primary network)"
        )
    return checkpoint


@dataclass
class StageData:
    dataset: Dataset
    split: Split
    train: list[Record]
    val: list[Record]
    train_targets: list[int]
    val_targets: list[int]

    @property
    def train_sources(self) -> list[str]:
        return [r.source for r in self.train]


def _target(record: Record, classes: list[str]) -> int | None:
    if record.label in classes:
        return classes.index(record.label)
    if classes == list(BINARY_LABELS):
        return classes.index(record.binary)
    folded = to_ham(record.label)  # SCC trains a 7-class head as akiec (taxonomy.HAM_FOLD)
    if folded is not None and folded in classes:
        return classes.index(folded)
    return None  # a binary-only label cannot train a 7-class head


def split_path(config: TrainConfig, data: DataConfig | SourceConfig) -> Path:
    if data.split_file:
        return Path(data.split_file)
    path = Path(data.path)
    name = f"{path.parent.name}-{path.stem}" if path.suffix else path.name  # two sources' labels.csv
    return config.run_dir() / f"split-{name}-seed{config.seed}.json"


class EvaluationOnlyError(ValueError):
    """A dataset whose licence allows evaluation only was given to training."""


def load_sources(config: TrainConfig, data: DataConfig) -> tuple[Dataset, Split]:
    """Every source of `data`, each read and split on its own, joined into one dataset and split.

    Derm7pt (CC BY-NC-ND: evaluation only) is refused here, the one door to training data."""
    datasets: list[Dataset] = []
    splits: list[Split] = []
    for source in data.source_list():
        dataset = load_dataset(source.path, source.format)
        if dataset.format == "derm7pt" or any(r.source == "derm7pt" for r in dataset.records):
            raise EvaluationOnlyError(
                f"{source.path}: Derm7pt is licensed for evaluation only (CC BY-NC-ND); "
                "use it with `dermalens evaluate`, never for training, calibration or the OOD gate"
            )
        datasets.append(dataset)
        splits.append(load_split(dataset, data, split_path(config, source), config.seed))
    if len(datasets) == 1:
        return datasets[0], splits[0]
    ids = [r.image_id for d in datasets for r in d.records]
    if len(ids) != len(set(ids)):
        raise ValueError("two sources share image ids; each image must appear in one source only")
    joined = Dataset(
        "+".join(d.format for d in datasets),
        datasets[0].root,
        [r for d in datasets for r in d.records],
        [m for d in datasets for m in d.missing],
        [u for d in datasets for u in d.unreadable],
        [k for d in datasets for k in d.skipped],
    )
    split = Split(
        {k: v for s in splits for k, v in s.assignments.items()},
        config.seed,
        splits[0].fractions,
        {k: v for s in splits for k, v in s.groups.items()},
    )
    return joined, split


def load_split(dataset: Dataset, data: DataConfig, path: Path, seed: int) -> Split:
    """Reuse the split file when present (reproducibility), else create and save it."""
    if path.is_file():
        split = Split.load(path)
        unknown = {r.image_id for r in dataset.records} - set(split.assignments)
        if unknown:
            raise ValueError(f"{path}: {len(unknown)} images of the dataset are not in this split file")
        return split
    links: list[tuple[str, str]] = []
    if data.dedup:
        from dermalens.data.duplicates import find_duplicates

        links = find_duplicates({r.image_id: r.path for r in dataset.records}).links()
    split = split_dataset(dataset, val=data.val, test=data.test, seed=seed, linked_pairs=links)
    split.save(path)
    log.info("wrote split %s", path)
    return split


def load_stage_data(config: TrainConfig, stage: StageConfig, classes: list[str]) -> StageData:
    seed = config.seed
    data = stage.data or config.data
    dataset, split = load_sources(config, data)
    train_ids, val_ids = split.ids("train"), split.ids("val")
    usable = [(r, _target(r, classes)) for r in dataset.records]
    skipped = sum(t is None for _, t in usable)
    if skipped:
        log.warning("%d records have labels the %d-class head cannot use; skipped", skipped, len(classes))
    train = [(r, t) for r, t in usable if t is not None and r.image_id in train_ids]
    val = [(r, t) for r, t in usable if t is not None and r.image_id in val_ids]
    if data.limit:  # a seeded random subset (smoke tests): the first rows of a CSV are one class
        rng = np.random.default_rng(seed)
        train = [train[i] for i in sorted(rng.permutation(len(train))[: data.limit])]
        val = [val[i] for i in sorted(rng.permutation(len(val))[: max(8, data.limit // 2)])]
    if not train or not val:
        raise ValueError(
            f"{data.path}: the split leaves {len(train)} training and {len(val)} validation images"
        )
    return StageData(
        dataset,
        split,
        [r for r, _ in train],
        [r for r, _ in val],
        [t for _, t in train if t is not None],
        [t for _, t in val if t is not None],
    )
