"""Training datasets: images cached at input size, seeded per-sample augmentation, balancing.

Why a cache: HAM10000 at 192×144 is ~0.8 GB of uint8, decoded once instead of
every epoch (decoding dominated CPU epochs). Why per-sample seeds: each sample's
augmentation is drawn from a generator seeded by (run seed, epoch, index), so an
epoch is identical whether it runs in one process, in several workers, after a
resume, or in DDP — which is what makes `--resume` reproduce an uninterrupted run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from dermalens.core.decode import decode_image
from dermalens.core.metadata import METADATA_FIELDS, MetadataEncoding, PatientMetadata
from dermalens.core.preprocess import Preprocessing, color_correct, normalize, resize_to_input
from dermalens.data.records import Record
from dermalens.training.augment import augment
from dermalens.training.config import AugmentConfig, BalanceConfig


def cache_images(records: Sequence[Record], spec: Preprocessing, progress: bool = False) -> np.ndarray:
    """Decode and resize every record to the input size (before colour constancy): [N,H,W,3] uint8."""
    from tqdm import tqdm

    width, height = spec.input_size
    out = np.empty((len(records), height, width, 3), dtype=np.uint8)
    for i, record in enumerate(tqdm(records, desc="caching images", disable=not progress, unit="img")):
        out[i] = resize_to_input(decode_image(record.path, min_size=spec.decode_floor), spec)
    return out


#: One training sample: image [3,H,W], metadata vector ([0] when unused), target, and the teacher's
#: soft labels ([C]; all zero where the sample has none, [0] when the run distils nothing).
Item = tuple[torch.Tensor, torch.Tensor, int, torch.Tensor]


class LesionDataset(TorchDataset[Item]):
    """Cached images + metadata vectors + integer targets (+ a teacher's soft labels); augmentation
    seeded per (seed, epoch, index).

    The metadata vector is empty ([0]) for image-only models. With augmentation on, each metadata
    field is hidden with `metadata_dropout`.
    """

    def __init__(
        self,
        images: np.ndarray,
        targets: Sequence[int],
        spec: Preprocessing,
        augment_cfg: AugmentConfig | None = None,
        seed: int = 0,
        *,
        metadata: Sequence[PatientMetadata] | None = None,
        encoding: MetadataEncoding | None = None,
        metadata_dropout: float = 0.0,
        soft_targets: np.ndarray | None = None,
    ) -> None:
        self.images = images
        self.targets = list(targets)
        self.spec = spec
        self.augment_cfg = augment_cfg
        self.seed = seed
        self.epoch = 0
        if (metadata is None) != (encoding is None):
            raise ValueError("metadata and its encoding go together")
        self.metadata = list(metadata) if metadata is not None else None
        self.encoding = encoding
        self.metadata_dropout = metadata_dropout
        if soft_targets is not None and len(soft_targets) != len(self.targets):
            raise ValueError(f"{len(soft_targets)} soft-label rows for {len(self.targets)} images")
        self.soft = None if soft_targets is None else torch.from_numpy(soft_targets.astype(np.float32))

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> Item:
        rgb = self.images[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        if self.augment_cfg is not None:
            rgb = augment(rgb, self.augment_cfg, rng)
        chw = normalize(color_correct(rgb, self.spec), self.spec)
        soft = self.soft[index] if self.soft is not None else torch.zeros(0)
        return torch.from_numpy(chw), self._metadata(index, rng), self.targets[index], soft

    def _metadata(self, index: int, rng: np.random.Generator) -> torch.Tensor:
        if self.metadata is None or self.encoding is None:
            return torch.zeros(0)
        item = self.metadata[index]
        if self.augment_cfg is not None and self.metadata_dropout:
            item = item.masked((rng.random(len(METADATA_FIELDS)) < self.metadata_dropout).tolist())
        return torch.from_numpy(self.encoding.encode_one(item))


def class_weights(targets: Sequence[int], n_classes: int, power: float) -> np.ndarray:
    """Per-class weights ∝ (1/frequency)^power, normalised to mean 1 over the samples."""
    counts = Counter(targets)
    weights = np.array([(1.0 / counts[c]) ** power if counts.get(c) else 0.0 for c in range(n_classes)])
    weights /= weights[np.asarray(targets)].mean()
    weights[weights == 0] = 1.0  # absent classes: neutral (they only appear through label smoothing)
    return weights


def source_weights(sources: Sequence[str], power: float) -> np.ndarray:
    """Per-sample weights ∝ (1 / images of the sample's source) ** power."""
    counts = Counter(sources)
    return np.array([(1.0 / counts[s]) ** power for s in sources])


def class_by_source_weights(targets: Sequence[int], sources: Sequence[str]) -> np.ndarray:
    """Per-sample weights that give every source the pooled class mix, over the classes it has:
    weight(s, c) = pooled share of c / share of c within s. A source's total weight is unchanged
    (its size), so source balancing still decides how often each source is seen."""
    pooled = Counter(targets)
    within = Counter(zip(sources, targets, strict=True))
    size = Counter(sources)
    factor: dict[tuple[str, int], float] = {}
    for source in size:
        present = [c for c in pooled if within[(source, c)]]
        total = sum(pooled[c] for c in present)
        for c in present:
            factor[(source, c)] = (pooled[c] / total) / (within[(source, c)] / size[source])
    return np.array([factor[(s, t)] for s, t in zip(sources, targets, strict=True)])


def epoch_order(
    targets: Sequence[int],
    n_classes: int,
    balance: BalanceConfig,
    seed: int,
    epoch: int,
    sources: Sequence[str] | None = None,
) -> list[int]:
    """The sample indices of one epoch (seeded): shuffled, weighted-sampled or undersampled.

    With ``balance.source_power`` or ``balance.class_by_source`` (and `sources`), or with the
    ``sampler`` method, samples are drawn with replacement, each weighted by its class (sampler),
    its class within its source and its source; an epoch then has ``balance.epoch_size`` samples
    (0: as many as there are)."""
    rng = np.random.default_rng((seed, epoch, 7))
    labels = np.asarray(targets)
    by_source = bool(balance.source_power or balance.class_by_source) and sources is not None
    if balance.method == "sampler" or by_source:
        weights = np.ones(len(labels))
        if balance.method == "sampler":
            weights *= class_weights(targets, n_classes, balance.power)[labels]
        if by_source and sources is not None:
            weights *= source_weights(sources, balance.source_power)
            if balance.class_by_source:
                weights *= class_by_source_weights(targets, sources)
        size = balance.epoch_size or len(labels)
        return rng.choice(len(labels), size=size, replace=True, p=weights / weights.sum()).tolist()
    if balance.method == "undersample":
        counts = Counter(targets)
        majority = max(counts, key=lambda c: counts[c])
        others = int(sum(n for c, n in counts.items() if c != majority))
        keep_major = rng.permutation(np.nonzero(labels == majority)[0])[: max(others, 1)]
        chosen = np.concatenate([np.nonzero(labels != majority)[0], keep_major])
        return rng.permutation(chosen).tolist()
    return rng.permutation(len(labels)).tolist()
