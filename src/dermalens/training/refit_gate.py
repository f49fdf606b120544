"""Refit the out-of-distribution gate of an existing artifact, in place or into a copy.

Why: the gate is fitted on the embeddings of the training images and thresholded on
validation images. A clinic whose camera differs from HAM10000's can refit it on its own
images, so that its lesions are not refused, without retraining the network; and an
artifact built before the gate scored mid-level features gets them by re-exporting its
ONNX graph (which then carries the ``level_features`` output) and refitting.
Calibration, threshold, metrics and everything else in the artifact stay as they were.

An ensemble artifact keeps its members and its ensemble spec: the primary's gate is refitted (the
one its default gate rule "first" reads), the primary's graph re-exported from the same weights
(the same outputs, so the decision fitted on the members' average still holds), hashes rewritten.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dermalens.artifact.meta import ONNX_FILE, OOD_FILE, WEIGHTS_FILE, ArtifactMeta
from dermalens.artifact.ood import OodGate
from dermalens.artifact.store import ensemble_owner, ensemble_words, load_meta
from dermalens.artifact.write import put_file, remove_file, save_gate, writable_copy, write_meta
from dermalens.data.readers import load_dataset
from dermalens.data.records import Record
from dermalens.data.splits import Split
from dermalens.evaluation.outputs import collect_outputs
from dermalens.inference.engine import Engine
from dermalens.inference.member import Member
from dermalens.models.export import export_onnx
from dermalens.models.factory import build_from_meta
from dermalens.models.ood_fit import fit_gate

log = logging.getLogger(__name__)


def _split_records(
    sources: Sequence[tuple[str | Path, str | Path]], classes: list[str]
) -> dict[str, list[Record]]:
    """The train and val records of each (dataset, split file) whose label is one of the model's
    classes, pooled over the datasets."""
    chosen: dict[str, list[Record]] = {"train": [], "val": []}
    for data, split_file in sources:
        dataset, split = load_dataset(data, verify=False), Split.load(split_file)
        for name in chosen:
            part = [r for r in dataset.subset(split.ids(name)).records if r.label in classes]
            if not part:
                raise ValueError(
                    f"{split_file}: no {name} images of {data} with one of the classes {classes}"
                )
            chosen[name] += part
    return chosen


def _target(artifact: str | Path | None, out: str | Path | None) -> tuple[Path, ArtifactMeta, Path]:
    """The artifact, its metadata and where the refit goes; an ensemble said in one line, a member
    folder without weights refused, and a member never changed in place (its ensemble pins it)."""
    folder, meta = load_meta(artifact, verify=False)  # the engine verifies the copy, once
    if meta.ensemble is not None:
        log.warning(
            "%s; refit-gate refits its primary's OOD gate (what gate rule %r reads%s); members and the "
            "ensemble's decision are kept",
            ensemble_words(folder, meta),
            meta.ensemble.gate,
            ", with the members' own gates" if meta.ensemble.gate == "max" else "",
        )
    owner = ensemble_owner(folder)
    if owner is not None and out is None:
        raise ValueError(
            f"{folder} is a member of the ensemble {owner}, which pins its files; refit a copy (--out), "
            "then rebuild the ensemble with `dermalens artifact ensemble`"
        )
    if not meta.training.get("quantized") and not (folder / WEIGHTS_FILE).is_file():
        raise ValueError(
            f"{folder}: no {WEIGHTS_FILE} (an ensemble's member folders are copied without it); refit-gate "
            "re-exports the graph from the weights: pass the artifact the member was built from"
        )
    return folder, meta, writable_copy(folder, out)


def refit_gate(
    artifact: str | Path | None,
    sources: Sequence[tuple[str | Path, str | Path]],
    *,
    quantile: float = 0.99,
    out: str | Path | None = None,
    progress: bool = False,
) -> tuple[Path, OodGate]:
    """Re-export `artifact`'s ONNX graph from its weights (not for INT8 artifacts, whose graph is
    kept), refit its gate on the train images of `sources` ((dataset, split file) pairs: a model
    trained on several datasets is refitted on all of them) with each source's threshold on its
    val images, and write both, into `out` (a new copy) or in place."""
    folder, meta, target = _target(artifact, out)
    if not meta.training.get("quantized"):  # an INT8 graph is kept: its gate is fitted on its own outputs
        model = build_from_meta(meta, folder / WEIGHTS_FILE)
        put_file(target, ONNX_FILE, lambda path: export_onnx(model, path, meta.preprocessing.input_size))
    remove_file(target, OOD_FILE)  # the old gate may not read the new outputs
    write_meta(target, meta)  # new hashes: the engine verifies the artifact it opens
    parts = _split_records(sources, meta.classes)
    engine = Engine([Member.open(target)])  # the primary alone, an ensemble's too: its gate is fitted
    train = collect_outputs(engine, parts["train"], progress=progress)
    val = collect_outputs(engine, parts["val"], progress=progress)
    if train.features is None or val.features is None:
        raise ValueError(f"{target}: the network gives no pooled features to fit a gate on")
    label_of = {r.image_id: meta.classes.index(r.label) for part in parts.values() for r in part}
    labels = np.asarray([label_of[i] for i in train.image_ids])
    source_of = {r.image_id: r.source for r in parts["val"]}
    gate = fit_gate(
        train.features,
        labels,
        val.features,
        quantile,
        train.level_features,
        val.level_features,
        np.asarray([source_of[i] for i in val.image_ids]),
        np.asarray([label_of[i] for i in val.image_ids]),
    )
    save_gate(target, meta, gate)
    write_meta(target, meta)
    return target, gate
