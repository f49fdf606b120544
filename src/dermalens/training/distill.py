"""A teacher's soft labels for learning without forgetting (Li & Hoiem 2016).

Why offline: the teacher (the HAM10000 model) runs once over the clean training images of its
own sources, through the inference engine with its own preprocessing, instead of once per
augmented draw: about 90 s of ONNX Runtime on this CPU against a third more per training step.
The augmented copies of an image then learn towards the teacher's view of the clean image, the
"consistency" reading of distillation. The labels are cached in the run directory, so a resumed
run does not compute them again, and a new run reuses a sibling run's labels (same output folder,
same teacher files, temperature and images: the proxy protocol's variants) instead of spending
minutes on the same teacher pass.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dermalens.data.records import Record
from dermalens.inference.probabilities import softmax
from dermalens.models.artifact import load_meta
from dermalens.training.config import DistillConfig

log = logging.getLogger(__name__)
CACHE = "teacher-soft-labels.npz"


def soft_labels(
    distill: DistillConfig, records: Sequence[Record], classes: list[str], run_dir: Path
) -> np.ndarray | None:
    """[N, C] teacher probabilities at the distillation temperature, in `classes` order, for the
    records of `distill.sources` (zero rows for the others and for unreadable files); None when
    the run distils nothing."""
    if distill.teacher is None:
        return None
    chosen = [r for r in records if r.source in distill.sources]
    if not chosen:
        raise ValueError(
            f"distill.sources {distill.sources} match none of the training images "
            f"(their sources: {sorted({r.source for r in records})})"
        )
    _, teacher = load_meta(distill.teacher, verify=False)
    key = json.dumps([teacher.model_id, distill.temperature, classes, [r.image_id for r in chosen]])
    by_id = _find_cached(run_dir, key)
    if by_id is None:
        by_id = _teacher_probabilities(distill, chosen, classes)
    if _cached(run_dir / CACHE, key) is None:
        ids = sorted(by_id)
        np.savez(run_dir / CACHE, key=key, ids=np.asarray(ids), probs=np.stack([by_id[i] for i in ids]))
    out = np.zeros((len(records), len(classes)), dtype=np.float32)
    for row, record in enumerate(records):
        if record.image_id in by_id:
            out[row] = by_id[record.image_id]
    log.info("teacher soft labels for %d of %d training images", len(by_id), len(records))
    return out


def _find_cached(run_dir: Path, key: str) -> dict[str, np.ndarray] | None:
    """The labels cached for `key` in this run, else in a sibling run of the same output folder."""
    for path in [run_dir / CACHE, *sorted(run_dir.parent.glob(f"*/{CACHE}"))]:
        found = _cached(path, key)
        if found is not None:
            if path.parent != run_dir:
                log.info("teacher soft labels reused from %s", path)
            return found
    return None


def _cached(path: Path, key: str) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    with np.load(path) as stored:
        if str(stored["key"]) != key:
            return None
        return dict(zip(stored["ids"].tolist(), stored["probs"], strict=True))


def _teacher_probabilities(
    distill: DistillConfig, records: Sequence[Record], classes: list[str]
) -> dict[str, np.ndarray]:
    from dermalens.evaluation.outputs import collect_outputs

    outputs = collect_outputs(distill.teacher, records)
    missing = set(classes) - set(outputs.meta.classes)
    if missing:
        raise ValueError(f"teacher {distill.teacher}: has no class {sorted(missing)} of the student")
    order = [outputs.meta.classes.index(c) for c in classes]
    probs = softmax(outputs.logits[0][:, order], distill.temperature).astype(np.float32)
    return dict(zip(outputs.image_ids, probs, strict=True))
