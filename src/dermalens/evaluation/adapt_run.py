"""`adapt` end to end: the clinic's images through the one engine, the lesion-grouped cross-validation
of `evaluation.adapt`, and a new artifact that says on its card what was adapted."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from dermalens.artifact.store import load_meta
from dermalens.artifact.write import writable_copy, write_meta
from dermalens.evaluation.adapt import MIN_IMAGES, Clinic, adapted_meta, cross_validate
from dermalens.evaluation.outputs import collect
from dermalens.evaluation.run import label_targets, load_eval_data
from dermalens.inference.engine import Engine

log = logging.getLogger(__name__)
PathLike = str | os.PathLike[str]


def read_clinic(
    engine: Engine, data_path: PathLike, split_file: PathLike | None, split_name: str, progress: bool
) -> tuple[Clinic, str]:
    """The clinic's labelled images as served (log-probabilities, targets, lesions, refusals)."""
    data = load_eval_data(data_path, split_file, split_name)
    run = collect(engine, data.records, progress=progress)
    by_id = {r.image_id: r for r in data.records}
    records = [by_id[i] for i in run.combined.image_ids]
    keep, targets = label_targets([r.label for r in records], engine.meta.classes)
    groups = np.asarray([f"{r.source}:{r.group}" for r in records], dtype=object)[keep]
    logp = np.log(np.maximum(run.combined.probs[keep], 1e-12))
    where = f"{Path(data_path).name}" + (
        f", split {split_name!r} of {Path(split_file).name}" if split_file else ""
    )
    return Clinic(logp, targets, groups, run.combined.ood[keep]), where


def adapt(
    model: PathLike | None,
    data_path: PathLike,
    out: PathLike,
    *,
    split_file: PathLike | None = None,
    split_name: str = "train",
    folds: int = 5,
    n_boot: int = 200,
    progress: bool = False,
) -> dict[str, Any]:
    """Write an adapted copy of `model` at `out` (never over an existing folder); return the report.
    Too few labelled images: the copy is the model unchanged, and the report says why."""
    if Path(out).exists():
        raise ValueError(f"{out} exists; choose a new folder for the adapted model")
    if folds < 2:
        raise ValueError(f"--folds {folds}; valid: 2 or more")
    folder, _ = load_meta(model, verify=False)
    engine = Engine.load(folder)
    meta = engine.meta
    clinic, source = read_clinic(engine, data_path, split_file, split_name, progress)
    if len(clinic.targets) < max(MIN_IMAGES, 4 * folds):
        report: dict[str, Any] = {
            "n": len(clinic.targets),
            "kept": [],
            "note": f"{len(clinic.targets)} labelled images the model can name: adaptation needs at least "
            f"{max(MIN_IMAGES, 4 * folds)}; nothing was changed",
        }
        meta.metrics["adaptation"] = {"source": source, **report}
    else:
        report = cross_validate(meta, clinic, folds, n_boot)
        meta = adapted_meta(meta, clinic, report, source)
    target = writable_copy(folder, out)
    write_meta(target, meta)
    log.info("adapted %s → %s: %s", folder, target, ", ".join(report["kept"]) or "nothing")
    return report
