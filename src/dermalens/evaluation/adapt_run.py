"""`adapt` end to end: the clinic's images through the one engine, the lesion-grouped cross-validation
of `evaluation.adapt`, and a new artifact that says on its card what was adapted.

A re-centred gate is kept only if, fitted on all the clinic's images, it still refuses at least
`evaluation.adapt.MIN_REFUSED` of the images that are not dermoscopy (`evaluation.not_dermoscopy`,
the set `benchmarks/ood_gate.py` measures): refusing fewer of the clinic's lesions must not come
from accepting anything."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from dermalens.artifact.meta import ONNX_FILE, OOD_FILE
from dermalens.artifact.ood import OodGate
from dermalens.artifact.store import ensemble_words, load_meta
from dermalens.artifact.write import primary_copy, put_file, writable_copy, write_meta
from dermalens.evaluation.adapt import MIN_IMAGES, Clinic, Fitted, adapted_meta, cross_validate
from dermalens.evaluation.outputs import collect
from dermalens.evaluation.run import label_targets, load_eval_data
from dermalens.inference.engine import Engine

log = logging.getLogger(__name__)
PathLike = str | os.PathLike[str]


@contextmanager
def one_network(model: PathLike | None) -> Iterator[Path]:
    """The artifact folder adaptation works on: `model` itself, or, where it is an ensemble
    artifact, a single-network copy of its primary (`artifact.write.primary_copy`, removed after).

    Why the primary alone: adaptation refits one network's temperature, threshold, decision rule,
    sets, gate and head; an ensemble's decision is fitted on its members' average and would ignore
    them (issue #33's figures were measured on the bundled primary). The result is one network,
    said in one line here and on its card (`training.from_ensemble`)."""
    folder, meta = load_meta(model, verify=False)
    if meta.ensemble is None:
        yield folder
        return
    log.warning(
        "%s; adapt refits its primary network alone and writes one network, not an ensemble (to keep "
        "an ensemble: adapt each member, then rebuild it with `dermalens artifact ensemble`)",
        ensemble_words(folder, meta),
    )
    with tempfile.TemporaryDirectory(prefix="dermalens-primary-") as work:
        yield primary_copy(folder, Path(work) / "primary")


def colour_floor(
    gate: OodGate | None, features: np.ndarray | None, level: np.ndarray | None, ood: np.ndarray
) -> np.ndarray:
    """Each image's refusal score that the gate's statistics do not set (the colour check): the
    served score where it exceeds the gate's own, else 0."""
    if gate is None or features is None:
        return np.zeros(len(ood))
    return np.where(ood > gate.score(features, None, level) + 1e-6, ood, 0.0)


def read_clinic(
    engine: Engine,
    data_path: PathLike,
    split_file: PathLike | None,
    split_name: str,
    progress: bool,
    head: bool = False,
) -> tuple[Clinic, str]:
    """The clinic's labelled images as served (log-probabilities, targets, lesions, refusals), with
    the features, gate and (`head`) original head of a single model."""
    from dermalens.models.onnx_head import read_head

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
    clinic = Clinic(logp, targets, groups, run.combined.ood[keep])
    clinic.images = np.asarray([r.path for r in records], dtype=object)[keep]
    single = run.members[0]
    if len(engine.members) == 1 and single.features is not None:
        clinic.features = single.features[keep]
        clinic.level = single.level_features[keep] if single.level_features is not None else None
        clinic.gate = engine.members[0].gate
        clinic.floor = colour_floor(clinic.gate, clinic.features, clinic.level, single.ood_score[keep])
        clinic.head = read_head(engine.members[0].folder / ONNX_FILE) if head else None
    elif head:
        raise ValueError("--head needs a single model whose graph gives its pooled features")
    return clinic, where


def refused_share(engine: Engine, gate: OodGate) -> float:
    """The share of the non-dermoscopy images `gate` refuses (in place of the engine's own gate)."""
    from dermalens.evaluation.not_dermoscopy import not_dermoscopy

    out = engine.run(list(not_dermoscopy().values())).members[0]
    if out.features is None:
        return 0.0
    floor = colour_floor(engine.members[0].gate, out.features, out.level_features, out.ood_score)
    return float((np.maximum(gate.score(out.features, None, out.level_features), floor) > 1.0).mean())


def _write(folder: Path, out: PathLike, meta: Any, fitted: Fitted | None) -> Path:
    """The adapted copy: the graph with the new head, the re-centred gate, the new metadata."""
    from dermalens.models.onnx_head import write_head

    target = writable_copy(folder, out)
    if fitted is not None and fitted.head is not None:
        weight, bias = fitted.head
        put_file(target, ONNX_FILE, lambda tmp: write_head(target / ONNX_FILE, weight, bias, out=tmp))
    if fitted is not None and fitted.gate is not None:
        put_file(target, OOD_FILE, fitted.gate.save)
    write_meta(target, meta)
    return target


def adapt(
    model: PathLike | None,
    data_path: PathLike,
    out: PathLike,
    *,
    split_file: PathLike | None = None,
    split_name: str = "train",
    folds: int = 5,
    n_boot: int = 200,
    head: bool = False,
    unlabelled: dict[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Write an adapted copy of `model` at `out` (never over an existing folder); return the report.
    Too few labelled images: the copy is the model unchanged, and the report says why.
    `unlabelled`: the measurement of `--unlabelled` (`model` is then its AdaBN copy where kept), for the card."""
    if Path(out).exists():
        raise ValueError(f"{out} exists; choose a new folder for the adapted model")
    if folds < 2:
        raise ValueError(f"--folds {folds}; valid: 2 or more")
    with one_network(model) as folder:
        engine = Engine.load(folder)
        meta = engine.meta
        clinic, source = read_clinic(engine, data_path, split_file, split_name, progress, head)
        fitted = None
        if len(clinic.targets) < max(MIN_IMAGES, 4 * folds):
            report: dict[str, Any] = {
                "n": len(clinic.targets),
                "kept": [],
                "note": f"{len(clinic.targets)} labelled images the model can name: adaptation needs at least "
                f"{max(MIN_IMAGES, 4 * folds)}; nothing was changed",
            }
            meta.metrics["adaptation"] = {"source": source, **report}
        else:
            report = cross_validate(
                meta, clinic, folds, n_boot, head, lambda gate: refused_share(engine, gate)
            )
            if unlabelled is not None:
                report["unlabelled"] = unlabelled
            meta, fitted = adapted_meta(meta, clinic, report, source)
        target = _write(folder, out, meta, fitted)
        log.info("adapted %s → %s: %s", folder, target, ", ".join(report["kept"]) or "nothing")
        return report
