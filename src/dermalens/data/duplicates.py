"""Duplicate check: exact (content SHA-256) and near (perceptual hash) duplicate images.

Why both: byte-identical files are cheap to find, but the same photo re-encoded,
resized or filed under another lesion id only shows up in a perceptual hash.
lesion_id alone misses those (HAM10000 has one such pair), so the splitter merges
near-duplicates into one group.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dermalens.core.hashing import file_sha256

#: Hamming distance (of 64 bits) at or below which two perceptual hashes make a *candidate* pair.
NEAR_DISTANCE = 6
#: Correlation of z-scored grayscale thumbnails that confirms a candidate as near-identical.
#: Measured on HAM10000: the re-filed copy with another colour cast (ISIC_0025226 ~ ISIC_0030074)
#: scores 0.998, the most similar *different* lesions ≤ 0.968; pHash alone (≤ 4) finds ~300
#: false pairs between different lesions, because dermoscopy images share their low frequencies.
NEAR_CORRELATION = 0.99
_THUMB = (64, 48)


@dataclass(frozen=True)
class DuplicatePair:
    a: str
    b: str
    kind: str  # "exact" or "near"
    distance: int


@dataclass
class DuplicateReport:
    pairs: list[DuplicatePair] = field(default_factory=list)

    def exact(self) -> list[DuplicatePair]:
        return [p for p in self.pairs if p.kind == "exact"]

    def near(self) -> list[DuplicatePair]:
        return [p for p in self.pairs if p.kind == "near"]

    def links(self) -> list[tuple[str, str]]:
        """All pairs as (a, b), for `splits.merged_groups`."""
        return [(p.a, p.b) for p in self.pairs]

    def across(self, side: Mapping[str, str]) -> list[DuplicatePair]:
        """Pairs whose images fall on different sides (splits or datasets) of `side` (id → name)."""
        return [p for p in self.pairs if p.a in side and p.b in side and side[p.a] != side[p.b]]


def perceptual_hash(path: Path) -> tuple[int, np.ndarray]:
    """64-bit pHash (imagehash's DCT hash) and a z-scored grayscale thumbnail of the image."""
    import imagehash
    from PIL import Image

    with Image.open(path) as image:
        image.draft("L", (128, 128))
        gray = image.convert("L")
        bits = imagehash.phash(gray).hash.flatten()
        thumb = np.asarray(gray.resize(_THUMB, Image.Resampling.BILINEAR), dtype=np.float32).ravel()
    thumb = (thumb - thumb.mean()) / (thumb.std() + 1e-6)
    return int("".join("1" if b else "0" for b in bits), 2), thumb


def _popcount(values: np.ndarray) -> np.ndarray:
    return (
        np.bitwise_count(values)
        if hasattr(np, "bitwise_count")
        else np.array([bin(int(v)).count("1") for v in values.ravel()]).reshape(values.shape)
    )


def find_duplicates(
    images: Mapping[str, Path], *, near_distance: int = NEAR_DISTANCE, progress: bool = False
) -> DuplicateReport:
    """All exact and near-duplicate pairs among `images` (id → path)."""
    ids = sorted(images)
    by_sha: dict[str, list[str]] = defaultdict(list)
    hashes = np.zeros(len(ids), dtype=np.uint64)
    thumbs = np.zeros((len(ids), _THUMB[0] * _THUMB[1]), dtype=np.float32)
    for n, image_id in enumerate(tqdm(ids, desc="hashing images", disable=not progress, unit="img")):
        by_sha[file_sha256(images[image_id])].append(image_id)
        phash, thumbs[n] = perceptual_hash(images[image_id])
        hashes[n] = np.uint64(phash)
    report = DuplicateReport()
    exact = set()
    for same in by_sha.values():
        for i, a in enumerate(same):
            for b in same[i + 1 :]:
                report.pairs.append(DuplicatePair(a, b, "exact", 0))
                exact.add((a, b))
    for i in range(len(ids) - 1):
        distances = _popcount(hashes[i] ^ hashes[i + 1 :])
        for j in np.nonzero(distances <= near_distance)[0]:
            a, b = ids[i], ids[i + 1 + int(j)]
            correlation = float(np.mean(thumbs[i] * thumbs[i + 1 + int(j)]))
            if (a, b) not in exact and correlation >= NEAR_CORRELATION:
                report.pairs.append(DuplicatePair(a, b, "near", int(distances[j])))
    return report
