"""Teachers' soft labels for distillation (Hinton et al. 2015; learning without forgetting, Li &
Hoiem 2016), from one teacher or the average of several.

Why offline: a teacher runs once over the clean training images of its sources, through the
inference engine with its own preprocessing, instead of once per augmented draw; the augmented
copies of an image then learn towards the teacher's view of the clean image (the "consistency"
reading of distillation).

Why a shared, resumable cache: a strong teacher is slow on this CPU (the peer's Xception runs at
about 10 images/s: half an hour over every training image). Its raw logits are cached once per
(teacher, image) in part files under `distill.cache_dir`, written chunk by chunk, so a killed
job resumes where it stopped and every run, at any temperature or teacher mix, reuses them.
`dermalens distill-cache --config C` fills the cache ahead of training, in the background.

An ensemble artifact as a teacher teaches what it serves: its members' calibrated probabilities
averaged (`Engine`), cached as their logarithms (softmax at temperature 1 gives them back) under a
key of its own that changes with any member (`teacher_key`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from dermalens.artifact.meta import META_FILE, ArtifactMeta
from dermalens.artifact.store import load_meta
from dermalens.core.hashing import file_sha256
from dermalens.data.records import Record
from dermalens.inference.probabilities import softmax
from dermalens.training.config import DistillConfig

log = logging.getLogger(__name__)
#: Images per cache part file: a kill loses at most this much teacher time.
CHUNK = 256


def soft_labels(
    distill: DistillConfig, records: Sequence[Record], classes: list[str], cache_root: Path
) -> np.ndarray | None:
    """[N, C] teacher probabilities at the distillation temperature, in `classes` order, for the
    records of `distill.sources`: per image, the mean of the probabilities of the teachers that label
    its source (`distill.teacher_sources`), weighted by `distill.teacher_weights`; zero rows for the
    others and for unreadable files. None when nothing is distilled."""
    teachers = distill.teachers
    if not teachers:
        return None
    chosen = [r for r in records if r.source in distill.sources]
    if not chosen:
        raise ValueError(
            f"distill.sources {distill.sources} match none of the training images "
            f"(their sources: {sorted({r.source for r in records})})"
        )
    weights = distill.weights_for(len(teachers))
    mixed: dict[str, np.ndarray] = {}
    totals: dict[str, float] = {}
    for teacher, weight, sources in zip(teachers, weights, distill.sources_for(len(teachers)), strict=True):
        mine = [r for r in chosen if r.source in sources]
        for image_id, row in teacher_logits(teacher, mine, classes, cache_root).items():
            probs = softmax(row[None], distill.temperature)[0] * weight
            mixed[image_id] = mixed[image_id] + probs if image_id in mixed else probs
            totals[image_id] = totals.get(image_id, 0.0) + weight
    out = np.zeros((len(records), len(classes)), dtype=np.float32)
    for k, record in enumerate(records):
        if totals.get(record.image_id, 0.0) > 0:
            out[k] = mixed[record.image_id] / totals[record.image_id]
    log.info(
        "soft labels of %d teacher(s) for %d of %d training images", len(teachers), len(mixed), len(records)
    )
    return out


def teacher_logits(
    teacher: str | os.PathLike[str],
    records: Sequence[Record],
    classes: list[str],
    cache_root: Path,
    on_chunk: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """The teacher's raw logits (temperature 1, `classes` order) per image id, computed only for
    images the cache does not hold yet, `CHUNK` at a time, each chunk saved before the next."""
    where, meta = load_meta(teacher, verify=False)
    missing_classes = set(classes) - set(meta.classes)
    if missing_classes:
        raise ValueError(f"teacher {teacher}: has no class {sorted(missing_classes)} of the student")
    order = [meta.classes.index(c) for c in classes]
    folder = cache_root / teacher_key(where, meta)
    folder.mkdir(parents=True, exist_ok=True)
    cached = _read_parts(folder)
    todo = [r for r in records if r.image_id not in cached]
    if todo:
        log.info("teacher %s: %d images cached, %d to compute", meta.name, len(cached), len(todo))
        _compute(teacher, todo, folder, cached, on_chunk)
    wanted = {r.image_id for r in records}
    return {i: v[order] for i, v in cached.items() if i in wanted}


def teacher_key(folder: Path, meta: ArtifactMeta) -> str:
    """A teacher's cache folder name: one network's `model_id` (its graph's hash: raw logits need no
    more); an ensemble's adds its artifact.json's hash, which pins every member and the primary's
    temperature (its cached averages of calibrated probabilities depend on them all)."""
    if meta.ensemble is None:
        return meta.model_id
    return f"{meta.model_id}-ensemble-{file_sha256(folder / META_FILE)[:8]}"


def _compute(
    teacher: str | os.PathLike[str],
    todo: Sequence[Record],
    folder: Path,
    cached: dict[str, np.ndarray],
    on_chunk: Callable[[int, int], None] | None,
) -> None:
    from dermalens.evaluation.outputs import collect
    from dermalens.inference.engine import Engine

    engine = Engine.load(teacher)
    start_part = len(list(folder.glob("part-*.npz")))
    for k, start in enumerate(range(0, len(todo), CHUNK)):
        run = collect(engine, todo[start : start + CHUNK])
        if engine.ensemble is None:  # one network: its raw logits, any temperature applies later
            ids, logits = list(run.members[0].image_ids), run.members[0].logits[0]
        else:  # an ensemble: what it serves, the average of its members' calibrated probabilities
            ids, logits = list(run.combined.image_ids), np.log(np.maximum(run.combined.probs, 1e-12))
        logits = logits.astype(np.float32)
        tmp = folder / f".part-{start_part + k:05d}.npz"
        np.savez(tmp, ids=np.asarray(ids), logits=logits)
        tmp.replace(folder / f"part-{start_part + k:05d}.npz")  # atomic: a kill leaves no half part
        cached.update(zip(ids, logits, strict=True))
        if on_chunk is not None:
            on_chunk(min(start + CHUNK, len(todo)), len(todo))


def _read_parts(folder: Path) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    for path in sorted(folder.glob("part-*.npz")):
        with np.load(path) as part:
            found.update(zip(part["ids"].tolist(), part["logits"], strict=True))
    return found
