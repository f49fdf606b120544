"""The predictor: `Classifier.load()` → `predict(...)`, for one model or an ensemble.

Everything comes from the artifact (classes, malignant set, preprocessing,
temperature, threshold, OOD gate); nothing is re-declared here. The default runtime
is ONNX Runtime, so this module works with the light `serve` install (no torch).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np
from PIL import Image

from dermalens.inference.decode import ImageDecodeError, ImageInput
from dermalens.inference.metadata import MetadataInput, PatientMetadata, per_image
from dermalens.inference.ood import OodGate, colour_score
from dermalens.inference.preprocess import Preprocessing, load_canonical_many, normalize
from dermalens.inference.results import REFUSED, Prediction, PredictionError
from dermalens.inference.runtime import create_runtime
from dermalens.inference.tta import tta_views, undo_view
from dermalens.models.artifact import OOD_FILE, ArtifactError, ArtifactMeta, load_meta
from dermalens.taxonomy import BENIGN, MALIGNANT_LABEL

BATCH_SIZE = 32


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = logits.astype(np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


@dataclass
class _Member:
    """One model of a (possibly one-member) ensemble."""

    folder: Path
    meta: ArtifactMeta
    runtime: Any
    gate: OodGate | None

    def infer(self, batch: np.ndarray, patients: Sequence[PatientMetadata]) -> dict[str, np.ndarray]:
        encoding = self.meta.encoding
        vectors = encoding.encode(patients) if encoding else None
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(batch), BATCH_SIZE):
            stop = start + BATCH_SIZE
            result = self.runtime.run(batch[start:stop], None if vectors is None else vectors[start:stop])
            for key, value in result.items():
                out[key] = value if key not in out else np.concatenate([out[key], value])
        return out


def _source_name(item: ImageInput) -> str:
    if isinstance(item, str | os.PathLike):
        return str(item)
    return type(item).__name__


def _normalise_cam(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    cam = np.maximum(cam, 0)
    peak = float(cam.max())
    cam = cam / peak if peak > 0 else cam
    resized = Image.fromarray(cam.astype(np.float32), mode="F").resize(size, Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized), 0, 1).astype(np.float32)


class Classifier:
    """Predicts malignancy, diagnosis, heatmap and OOD flag for dermoscopy images."""

    def __init__(self, members: list[_Member], tta: int = 1) -> None:
        classes = members[0].meta.classes
        for member in members[1:]:
            if member.meta.classes != classes:
                raise ArtifactError(
                    f"ensemble members disagree on classes: {member.meta.classes} vs {classes}"
                )
        self.members = members
        self.tta = tta

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        *,
        runtime: str = "onnx",
        tta: int = 1,
        threads: int | None = None,
        verify: bool = True,
    ) -> Classifier:
        """Load an artifact (None = the bundled model) or, given several paths, an ensemble."""
        paths = list(path) if isinstance(path, list | tuple) else [path]
        members = []
        for one in paths:
            folder, meta = load_meta(one, verify=verify)  # type: ignore[arg-type]
            gate = OodGate.load(folder / OOD_FILE) if (folder / OOD_FILE).is_file() else None
            members.append(_Member(folder, meta, create_runtime(folder, meta, runtime, threads), gate))
        return cls(members, tta)

    @property
    def meta(self) -> ArtifactMeta:
        """The first member's metadata (classes are equal across members)."""
        return self.members[0].meta

    @property
    def classes(self) -> list[str]:
        return self.meta.classes

    @property
    def uses_metadata(self) -> bool:
        """True when any member reads patient metadata (age, sex, site)."""
        return any(m.meta.metadata_inputs for m in self.members)

    @property
    def threshold(self) -> float:
        """Operating threshold: the mean of the members' thresholds."""
        return float(np.mean([m.meta.threshold for m in self.members]))

    @overload
    def predict(
        self,
        images: ImageInput,
        *,
        heatmap: bool = ...,
        threshold: float | None = ...,
        tta: int | None = ...,
        keep_image: bool = ...,
        metadata: MetadataInput = ...,
    ) -> Prediction: ...

    @overload
    def predict(
        self,
        images: list[ImageInput],
        *,
        heatmap: bool = ...,
        threshold: float | None = ...,
        tta: int | None = ...,
        keep_image: bool = ...,
        metadata: MetadataInput | Sequence[MetadataInput] = ...,
    ) -> list[Prediction | PredictionError]: ...

    def predict(
        self,
        images: ImageInput | list[ImageInput],
        *,
        heatmap: bool = False,
        threshold: float | None = None,
        tta: int | None = None,
        keep_image: bool = False,
        metadata: MetadataInput | Sequence[MetadataInput] = None,
    ) -> Prediction | list[Prediction | PredictionError]:
        """Predict one input (raises `ImageDecodeError` if unreadable) or a list (errors kept in place).

        Inputs: a path, bytes, a PIL image or an H×W×3 array. `tta` (1-8) overrides the
        loaded count; `threshold` overrides the artifact's operating threshold.
        `metadata`: patient data as ``{"age": 63, "sex": "male", "site": "back"}`` or a
        `PatientMetadata` (one for all images, or a list parallel to `images`); any field
        may be missing. Models without a metadata branch ignore it; models with one read
        missing fields as explicitly unknown. Invalid values raise `ValueError`.
        """
        many = isinstance(images, list)
        items: list[ImageInput] = images if isinstance(images, list) else [images]
        patients = per_image(metadata, len(items))
        if many:
            return self._predict_many(items, heatmap, threshold, tta, keep_image, patients)
        result = self._predict_many(items, heatmap, threshold, tta, keep_image, patients)[0]
        if isinstance(result, PredictionError):
            raise ImageDecodeError(result.error, result.kind)
        return result

    def _predict_many(
        self,
        images: list[ImageInput],
        heatmap: bool,
        threshold: float | None,
        tta: int | None,
        keep_image: bool,
        patients: list[PatientMetadata],
    ) -> list[Prediction | PredictionError]:
        spec = self.meta.preprocessing
        results: list[Prediction | PredictionError | None] = [None] * len(images)
        canon: dict[int, np.ndarray] = {}
        for index, (item, loaded) in enumerate(zip(images, load_canonical_many(images, spec), strict=True)):
            if isinstance(loaded, ImageDecodeError):
                results[index] = PredictionError(_source_name(item), str(loaded), loaded.kind)
            else:
                canon[index] = loaded
        if canon:
            order = list(canon)
            preds = self._run(
                [canon[i] for i in order],
                [patients[i] for i in order],
                spec,
                heatmap,
                threshold,
                tta or self.tta,
            )
            for i, pred in zip(order, preds, strict=True):
                pred.source = _source_name(images[i])
                pred.metadata = patients[i] if self.uses_metadata else None
                pred.image = canon[i] if keep_image else None
                results[i] = pred
        return [r for r in results if r is not None]

    def _run(
        self,
        canon: list[np.ndarray],
        patients: list[PatientMetadata],
        spec: Preprocessing,
        heatmap: bool,
        threshold: float | None,
        tta: int,
    ) -> list[Prediction]:
        n = len(canon)
        probs = np.zeros((n, len(self.classes)))
        ood = np.zeros(n)
        maps: list[list[np.ndarray]] = [[] for _ in range(n)]
        colours = [colour_score(c) for c in canon] if any(m.gate is not None for m in self.members) else []
        for member in self.members:
            views = [tta_views(normalize(c, member.meta.preprocessing), tta) for c in canon]
            for view_index in range(tta):
                batch = np.stack([v[view_index] for v in views])
                out = member.infer(batch, patients)
                probs += softmax(out["logits"], member.meta.temperature)
                if member.gate is not None and view_index == 0:
                    ood = np.maximum(
                        ood, member.gate.score(out["features"], colours, out.get("level_features"))
                    )
                if heatmap and member is self.members[0]:
                    for j in range(n):
                        maps[j].append(undo_view(out["cam"][j], view_index))
        probs /= tta * len(self.members)
        cut = self.threshold if threshold is None else threshold
        malignant = self.meta.malignant_indices
        results = []
        for j in range(n):
            p_mal = float(probs[j, malignant].sum())
            top = int(np.argmax(probs[j]))
            cam = None
            if heatmap and maps[j]:
                cam = _normalise_cam(np.mean([m[top] for m in maps[j]], axis=0), spec.input_size)
            results.append(
                Prediction(
                    probabilities={c: float(p) for c, p in zip(self.classes, probs[j], strict=True)},
                    p_malignant=p_mal,
                    prediction=self.classes[top],
                    decision=REFUSED if ood[j] > 1.0 else (MALIGNANT_LABEL if p_mal >= cut else BENIGN),
                    threshold=cut,
                    ood=bool(ood[j] > 1.0),
                    ood_score=float(ood[j]),
                    heatmap=cam,
                )
            )
        return results
