"""The predictor: `Classifier.load()` → `predict(...)`, for one model or an ensemble.

A thin layer over the one engine (`inference.engine`): it turns the engine's combined outputs
into typed `Prediction`s (decision, refusal, heatmap). Everything comes from the artifacts
(classes, malignant set, preprocessing, temperature, threshold, OOD gate); nothing is
re-declared here. The default runtime is ONNX Runtime, so this module works with the light
`serve` install (no torch).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import overload

import numpy as np
from PIL import Image

from dermalens.artifact.meta import ArtifactMeta
from dermalens.core.decode import ImageDecodeError, ImageInput
from dermalens.core.formats import Sniffed
from dermalens.core.metadata import MetadataInput, PatientMetadata, per_image
from dermalens.inference.engine import Engine, Member
from dermalens.inference.results import Prediction, PredictionError


def _source_name(item: ImageInput) -> str:
    if isinstance(item, str | os.PathLike):
        return str(item)
    return "bytes" if isinstance(item, Sniffed) else type(item).__name__


def _normalise_cam(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    cam = np.maximum(cam, 0)
    peak = float(cam.max())
    cam = cam / peak if peak > 0 else cam
    resized = Image.fromarray(cam.astype(np.float32), mode="F").resize(size, Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized), 0, 1).astype(np.float32)


class Classifier:
    """Predicts malignancy, diagnosis, heatmap and OOD flag for dermoscopy images."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        *,
        runtime: str = "onnx",
        tta: int = 1,
        threads: int | None = None,
        verify: bool = True,
        coverage: float | None = None,
    ) -> Classifier:
        """Load an artifact (None = the bundled model; an ensemble artifact opens as its members)
        or, given several paths, an ensemble of them (`Engine.load`).
        `coverage` (e.g. 0.95) chooses the prediction sets' coverage among those the artifact has."""
        engine = Engine.load(
            path, runtime=runtime, tta=tta, threads=threads, verify=verify, coverage=coverage
        )
        return cls(engine)

    @property
    def members(self) -> list[Member]:
        return self.engine.members

    @property
    def tta(self) -> int:
        return self.engine.tta

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
        """Operating threshold: an ensemble artifact's own, else the mean of the members' (`Engine.threshold`)."""
        return self.engine.threshold

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
        compare: bool = ...,
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
        compare: bool = ...,
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
        compare: bool = False,
    ) -> Prediction | list[Prediction | PredictionError]:
        """Predict one input (raises `ImageDecodeError` if unreadable) or a list (errors kept in place).

        Inputs: a path, bytes, a PIL image or an H×W×3 array. `tta` (1-8) overrides the
        loaded count; `threshold` overrides the artifact's operating threshold.
        `metadata`: patient data as ``{"age": 63, "sex": "male", "site": "back"}`` or a
        `PatientMetadata` (one for all images, or a list parallel to `images`); any field
        may be missing. Models without a metadata branch ignore it; models with one read
        missing fields as explicitly unknown. Invalid values raise `ValueError`.
        `compare`: also give each ensemble member's own result (`Prediction.members`).
        """
        many = isinstance(images, list)
        items: list[ImageInput] = images if isinstance(images, list) else [images]
        patients = per_image(metadata, len(items))
        if many:
            return self._predict_many(items, heatmap, threshold, tta, keep_image, patients, compare)
        result = self._predict_many(items, heatmap, threshold, tta, keep_image, patients, compare)[0]
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
        compare: bool = False,
    ) -> list[Prediction | PredictionError]:
        run = self.engine.run(images, patients, tta=tta, heatmap=heatmap, keep_canonical=keep_image)
        results: list[Prediction | PredictionError | None] = [None] * len(images)
        for index, error in run.errors:
            results[index] = PredictionError(_source_name(images[index]), error.detail(), error.kind)
        ensemble = run.combined.results(threshold, "ensemble" if len(self.members) > 1 else self.meta.name)
        members = run.member_results(threshold) if compare else []
        size = self.meta.preprocessing.input_size
        for j, index in enumerate(run.rows):
            cam = run.cams[j] if heatmap else None
            results[index] = ensemble[j].placed(
                filename=_source_name(images[index]),
                metadata=run.patients[index] if self.uses_metadata else None,
                size=run.sizes[j],
                heatmap=None if cam is None else _normalise_cam(cam, size),
                image=run.canonical[j] if keep_image else None,
                members=[own[j] for own in members] if compare else None,
            )
        return [r for r in results if r is not None]
