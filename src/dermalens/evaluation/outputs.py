"""Raw network outputs for a list of records: the one place where evaluation runs a model.

Why not `Classifier.predict`: evaluation and calibration need the *raw* logits (to fit a
temperature, to re-apply another one, to compare models on identical inputs) and must
also run the classical baseline, which has no ONNX file. Both kinds are opened through
`open_runtime`, which returns an object with the same ``run(batch) -> {"logits",
"features", "cam"}`` contract as `dermalens.inference.runtime`. `probabilities`
then combines views and ensemble members exactly as the predictor does (mean of
temperature-scaled softmaxes, p_malignant = sum over the malignant classes, OOD score
= max over members of the first view's gate score); a test checks the parity.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dermalens.data.records import Record
from dermalens.inference.decode import ImageDecodeError
from dermalens.inference.ood import OodGate, colour_score
from dermalens.inference.predictor import softmax
from dermalens.inference.preprocess import load_canonical_many, normalize
from dermalens.inference.tta import tta_views
from dermalens.models.artifact import OOD_FILE, ArtifactMeta, load_meta

log = logging.getLogger(__name__)

ArtifactPath = str | os.PathLike[str] | None
#: Images decoded and run per chunk: bounds memory (HAM10000's test split at once is ~350 MB).
CHUNK = 64


@dataclass
class Outputs:
    """One artifact's outputs on the records that could be read (in record order)."""

    folder: Path
    meta: ArtifactMeta
    image_ids: list[str]
    #: [V, N, C]: one slice of raw logits per TTA view (V = 1 without TTA).
    logits: np.ndarray
    #: [N, D] pooled embedding of the first view (what the OOD gate scores), or None.
    features: np.ndarray | None
    #: [N] OOD score of the artifact's gate (0 where it has none); > 1 means out of distribution.
    ood_score: np.ndarray
    #: (image id, reason) for records that failed to decode here.
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: [N, Dl] pooled mid-level features of the first view (the gate's second input), or None.
    level_features: np.ndarray | None = None

    def probabilities(self, temperature: float | None = None) -> np.ndarray:
        """[N, C] mean over views of softmax(logits / T); T defaults to the artifact's."""
        t = self.meta.temperature if temperature is None else temperature
        return np.mean([softmax(view, t) for view in self.logits], axis=0)


def open_runtime(folder: Path, meta: ArtifactMeta, threads: int | None = None) -> Any:
    """A runtime for either artifact kind: the classical baseline, or a network (ONNX Runtime)."""
    from dermalens.evaluation.baseline import BaselineRuntime, is_baseline

    if is_baseline(meta):
        return BaselineRuntime(folder, meta)
    from dermalens.inference.runtime import create_runtime

    return create_runtime(folder, meta, "onnx", threads)


def collect_outputs(
    artifact: ArtifactPath,
    records: Sequence[Record],
    tta: int = 1,
    *,
    batch_size: int = 32,
    threads: int | None = None,
    progress: bool = False,
) -> Outputs:
    """Run one artifact (None = the bundled model) on `records`; unreadable images are listed, not fatal."""
    from tqdm import tqdm

    folder, meta = load_meta(artifact)
    runtime = open_runtime(folder, meta, threads)
    encoding = meta.encoding  # patient metadata from the records, for fusion models
    gate = OodGate.load(folder / OOD_FILE) if (folder / OOD_FILE).is_file() else None
    ids: list[str] = []
    failed: list[tuple[str, str]] = []
    views: list[list[np.ndarray]] = [[] for _ in range(tta)]
    features: list[np.ndarray] = []
    levels: list[np.ndarray] = []
    colour: list[float] = []
    bar = tqdm(total=len(records), desc=f"{meta.name}", unit="img", disable=not progress)
    for start in range(0, len(records), CHUNK):
        chunk = records[start : start + CHUNK]
        inputs, patients = [], []
        loaded = load_canonical_many([r.path for r in chunk], meta.preprocessing)
        for record, canon in zip(chunk, loaded, strict=True):
            if isinstance(canon, ImageDecodeError):
                failed.append((record.image_id, str(canon)))
                continue
            ids.append(record.image_id)
            inputs.append(normalize(canon, meta.preprocessing))
            patients.append(record.patient)
            colour.append(colour_score(canon))
        bar.update(len(chunk))
        if not inputs:
            continue
        all_views = [tta_views(x, tta) for x in inputs]
        vectors = encoding.encode(patients) if encoding else None
        for view in range(tta):
            batch = np.stack([v[view] for v in all_views])
            for b in range(0, len(batch), batch_size):
                extra = None if vectors is None else vectors[b : b + batch_size]
                out = runtime.run(batch[b : b + batch_size], extra)
                views[view].append(np.asarray(out["logits"], dtype=np.float32))
                if view == 0 and "features" in out:
                    features.append(np.asarray(out["features"], dtype=np.float32))
                if view == 0 and "level_features" in out:
                    levels.append(np.asarray(out["level_features"], dtype=np.float32))
    bar.close()
    for image_id, reason in failed:
        log.warning("%s: cannot be read (%s); skipped", image_id, reason)
    n_classes = len(meta.classes)
    logits = np.stack([np.concatenate(v) if v else np.zeros((0, n_classes), np.float32) for v in views])
    feats = np.concatenate(features) if features else None
    level = np.concatenate(levels) if levels else None
    ood = np.zeros(len(ids))
    if gate is not None and feats is not None and len(feats):
        ood = gate.score(feats, colour, level)
    return Outputs(folder, meta, ids, logits, feats, np.asarray(ood, dtype=np.float64), failed, level)


@dataclass
class Combined:
    """Predictions of one model or an ensemble, combined as the predictor combines them."""

    image_ids: list[str]
    classes: list[str]
    malignant: list[str]
    probs: np.ndarray  # [N, C], calibrated
    p_malignant: np.ndarray  # [N]
    ood_score: np.ndarray  # [N]
    threshold: float  # the members' mean operating threshold (as `Classifier.threshold`)

    @property
    def prediction(self) -> list[str]:
        return [self.classes[i] for i in self.probs.argmax(axis=1)]

    @property
    def ood(self) -> np.ndarray:
        return self.ood_score > 1.0


def combine(members: Sequence[Outputs]) -> Combined:
    """Average calibrated probabilities over members (on the images every member could read)."""
    first = members[0]
    for other in members[1:]:
        if other.meta.classes != first.meta.classes:
            raise ValueError(
                f"ensemble members disagree on classes: {other.meta.classes} vs {first.meta.classes}"
            )
    common = set(first.image_ids).intersection(*(m.image_ids for m in members[1:]))
    ids = [i for i in first.image_ids if i in common]
    probs = np.zeros((len(ids), len(first.meta.classes)))
    ood = np.zeros(len(ids))
    for member in members:
        index = {image_id: k for k, image_id in enumerate(member.image_ids)}
        rows = [index[i] for i in ids]
        probs += member.probabilities()[rows]
        ood = np.maximum(ood, member.ood_score[rows])
    probs /= len(members)
    mal = first.meta.malignant_indices
    return Combined(
        image_ids=ids,
        classes=list(first.meta.classes),
        malignant=list(first.meta.malignant),
        probs=probs,
        p_malignant=probs[:, mal].sum(axis=1),
        ood_score=ood,
        threshold=float(np.mean([m.meta.threshold for m in members])),
    )
