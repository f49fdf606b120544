"""Training datasets: images cached at input size, seeded per-sample augmentation, balancing.

Why a cache: HAM10000 at 192×144 is ~0.8 GB of uint8, decoded once instead of
every epoch (decoding dominated CPU epochs). Why per-sample seeds: each sample's
augmentation is drawn from a generator seeded by (run seed, epoch, index), so an
epoch is identical whether it runs in one process, in several workers, after a
resume, or in DDP — which is what makes `--resume` reproduce an uninterrupted run.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageEnhance
from torch.utils.data import Dataset as TorchDataset

from dermalens.data.records import Record
from dermalens.inference.decode import decode_image
from dermalens.inference.metadata import METADATA_FIELDS, MetadataEncoding, PatientMetadata
from dermalens.inference.preprocess import Preprocessing, color_correct, normalize, resize_to_input
from dermalens.training.config import AugmentConfig, BalanceConfig


def cache_images(records: Sequence[Record], spec: Preprocessing, progress: bool = False) -> np.ndarray:
    """Decode and resize every record to the input size (before colour constancy): [N,H,W,3] uint8."""
    from tqdm import tqdm

    width, height = spec.input_size
    out = np.empty((len(records), height, width, 3), dtype=np.uint8)
    for i, record in enumerate(tqdm(records, desc="caching images", disable=not progress, unit="img")):
        out[i] = resize_to_input(decode_image(record.path, min_size=spec.input_size), spec)
    return out


def augment(rgb: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Colour first (camera/light differences), so that colour constancy then sees them as at test
    time; geometry after (zoom, rotation, flips). Returns an array of the same size."""
    height, width = rgb.shape[:2]
    image = Image.fromarray(rgb)
    if cfg.color_cast and rng.random() < cfg.color_cast:
        gains = rng.uniform(0.8, 1.2, 3)
        image = Image.fromarray(np.clip(np.asarray(image) * gains, 0, 255).astype(np.uint8))
    for enhancer, amount in (
        (ImageEnhance.Brightness, cfg.brightness),
        (ImageEnhance.Contrast, cfg.contrast),
        (ImageEnhance.Color, cfg.saturation),
    ):
        if amount:
            image = enhancer(image).enhance(rng.uniform(1 - amount, 1 + amount))
    if cfg.hue:
        hsv = np.asarray(image.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(int) + int(rng.uniform(-cfg.hue, cfg.hue) * 255)) % 256
        image = Image.fromarray(hsv, "HSV").convert("RGB")
    if cfg.rotate:
        # Rotate a reflected canvas so that corners are filled with lesion surroundings, not black.
        angle = float(rng.uniform(-cfg.rotate, cfg.rotate))
        image = image.rotate(
            angle,
            resample=Image.Resampling.BILINEAR,
            expand=False,
            fillcolor=tuple(int(c) for c in np.asarray(image).reshape(-1, 3).mean(0)),
        )
    if cfg.scale[0] < 1.0:
        area = rng.uniform(*cfg.scale) * width * height
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3))) * width / height
        crop_w = min(width, round(math.sqrt(area * ratio)))
        crop_h = min(height, round(math.sqrt(area / ratio)))
        left = int(rng.integers(0, width - crop_w + 1))
        top = int(rng.integers(0, height - crop_h + 1))
        image = image.resize(
            (width, height), Image.Resampling.BILINEAR, box=(left, top, left + crop_w, top + crop_h)
        )
    array = np.asarray(image)
    if cfg.hflip and rng.random() < 0.5:
        array = array[:, ::-1]
    if cfg.vflip and rng.random() < 0.5:
        array = array[::-1]
    return np.ascontiguousarray(array)


class LesionDataset(TorchDataset[tuple[torch.Tensor, torch.Tensor, int]]):
    """Cached images + metadata vectors + integer targets; augmentation seeded per (seed, epoch, index).

    Items are ``(image, metadata, target)``; the metadata vector is empty ([0]) for image-only
    models. With augmentation on, each metadata field is hidden with `metadata_dropout`.
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

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        rgb = self.images[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        if self.augment_cfg is not None:
            rgb = augment(rgb, self.augment_cfg, rng)
        chw = normalize(color_correct(rgb, self.spec), self.spec)
        return torch.from_numpy(chw), self._metadata(index, rng), self.targets[index]

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


def epoch_order(
    targets: Sequence[int], n_classes: int, balance: BalanceConfig, seed: int, epoch: int
) -> list[int]:
    """The sample indices of one epoch (seeded): shuffled, weighted-sampled or undersampled."""
    rng = np.random.default_rng((seed, epoch, 7))
    labels = np.asarray(targets)
    if balance.method == "sampler":
        weights = class_weights(targets, n_classes, balance.power)[labels]
        return rng.choice(len(labels), size=len(labels), replace=True, p=weights / weights.sum()).tolist()
    if balance.method == "undersample":
        counts = Counter(targets)
        majority = max(counts, key=lambda c: counts[c])
        others = int(sum(n for c, n in counts.items() if c != majority))
        keep_major = rng.permutation(np.nonzero(labels == majority)[0])[: max(others, 1)]
        chosen = np.concatenate([np.nonzero(labels != majority)[0], keep_major])
        return rng.permutation(chosen).tolist()
    return rng.permutation(len(labels)).tolist()
