"""Raw outputs of a model or an ensemble on dataset records, through the one engine.

Evaluation, calibration and refit-gate need the *raw* logits per TTA view (to fit a
temperature, to re-apply another one, to compare models on identical inputs); the engine
(`inference.engine`) returns them beside the combined probabilities, so this module only maps
records to the engine's inputs (paths, patient metadata, ids) and logs what could not be read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dermalens.artifact.meta import ArtifactMeta
from dermalens.artifact.store import load_meta
from dermalens.artifact.write import writable_copy
from dermalens.data.records import Record
from dermalens.inference.combined import Combined, Outputs, combine
from dermalens.inference.engine import ArtifactPath, Engine, EngineRun

log = logging.getLogger(__name__)

__all__ = ["ArtifactPath", "Combined", "Outputs", "collect", "collect_outputs", "combine"]


def collect(engine: Engine, records: Sequence[Record], tta: int = 1, *, progress: bool = False) -> EngineRun:
    """Run an already loaded engine (one model or an ensemble) on `records`; unreadable images are
    listed in each member's `failed` and logged, never fatal."""
    from tqdm import tqdm

    with tqdm(total=len(records), desc=engine.meta.name, unit="img", disable=not progress) as bar:

        def advance(count: int) -> None:
            bar.update(count)

        run = engine.run(
            [r.path for r in records],
            [r.patient for r in records],
            tta=tta,
            ids=[r.image_id for r in records],
            on_done=advance,
        )
    for image_id, reason in run.members[0].failed:
        log.warning("%s: cannot be read (%s); skipped", image_id, reason)
    return run


def collect_outputs(
    artifact: ArtifactPath | Engine,
    records: Sequence[Record],
    tta: int = 1,
    *,
    progress: bool = False,
) -> Outputs:
    """One artifact's outputs on `records` (an artifact path, None = bundled, or a loaded engine)."""
    engine = artifact if isinstance(artifact, Engine) else Engine.load(artifact)
    return collect(engine, records, tta, progress=progress).members[0]


@dataclass
class Pooled:
    """Calibrated probabilities of one model on several datasets' splits, pooled, with each row's
    label (dx code), source and lesion, and a description of what was read (for the card)."""

    probs: np.ndarray
    labels: list[str]
    sources: list[str]
    groups: list[str]
    text: str


def pooled_probabilities(
    engine: Engine,
    datasets: Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    split_name: str = "val",
    *,
    progress: bool = False,
) -> Pooled:
    """The `split_name` split of every (dataset, split file) pair through a loaded engine (one
    model, or an ensemble's combined probabilities): what the validation-fitted parts of an
    artifact (decision rule, prediction sets) are fitted on."""
    from dermalens.evaluation.run import load_eval_data

    probs, labels, sources, groups, names = [], [], [], [], []
    for data_path, split_file in datasets:
        data = load_eval_data(data_path, split_file, split_name)
        combined = collect(engine, data.records, progress=progress).combined
        by_id = {r.image_id: r for r in data.records}
        probs.append(combined.probs)
        labels += [by_id[i].label for i in combined.image_ids]
        sources += [by_id[i].source for i in combined.image_ids]
        groups += [by_id[i].group for i in combined.image_ids]
        names.append(f"{Path(split_file).name} ({len(combined.image_ids)} images)")
    text = f"split {split_name!r} of " + " + ".join(names)
    return Pooled(np.concatenate(probs), labels, sources, groups, text)


def refit_target(model: ArtifactPath, out: str | os.PathLike[str] | None) -> Path:
    """The artifact a single-model refit writes into: `model` itself, or its copy at `out`. An
    ensemble artifact is refused: its decision is fitted on its members' combined output by
    `dermalens artifact ensemble`, and a member's refit would make it stale."""
    folder, meta = load_meta(model, verify=False)  # only where it is: the engine verifies it, once
    if meta.ensemble is not None:
        raise ValueError(
            f"{folder} is an ensemble artifact; refit its members, then rebuild it with "
            "`dermalens artifact ensemble` (which fits its threshold, decision rule and sets)"
        )
    return writable_copy(folder, out)


def refit_on_splits(
    model: ArtifactPath,
    datasets: Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    fit: Callable[[Path, Pooled, ArtifactMeta], ArtifactMeta],
    *,
    split_name: str = "val",
    out: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> tuple[Path, ArtifactMeta]:
    """Open an artifact (in place, or a copy at `out`), pool its probabilities on the `split_name`
    split of every (dataset, split file) pair, and let `fit` store what it fits from them."""
    folder = refit_target(model, out)
    engine = Engine.load(folder)
    pooled = pooled_probabilities(engine, datasets, split_name, progress=progress)
    return folder, fit(folder, pooled, engine.meta)
