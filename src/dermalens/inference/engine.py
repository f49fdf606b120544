"""The one engine: the only code path from images to calibrated probabilities, gate scores,
embeddings and heatmaps.

    decode (once per image) → each member's canonical view (its own preprocessing) → normalise →
    TTA views → runtime → temperature softmax → mean over views and members → OOD gate → CAM

The Python API (`Classifier`), the CLI, the server and every evaluation command (evaluate,
compare, calibrate, refit-gate, quantize) call `Engine.run`; none has a loop of its own. An
artifact is opened and verified once (`Engine.load`); a command that needs a model twice is
handed the loaded engine. Every member of an ensemble reads the image with its *own*
preprocessing (input size, working size, colour constancy), so models trained differently can be
averaged. Nothing here imports torch, evaluation or training.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dermalens.artifact.meta import OOD_FILE, ArtifactMeta
from dermalens.artifact.ood import OodGate
from dermalens.artifact.store import load_meta
from dermalens.core.decode import ImageDecodeError, ImageInput, decode_with_size
from dermalens.core.dicom import with_dicom_tags
from dermalens.core.metadata import PatientMetadata
from dermalens.core.preprocess import Preprocessing, canonical, normalize
from dermalens.inference.combined import Combined, Outputs, check_classes, combine, conformal_for
from dermalens.inference.results import Prediction
from dermalens.inference.runtime import create_runtime
from dermalens.inference.tta import tta_views, undo_view
from dermalens.models.ood import colour_score

ArtifactPath = str | os.PathLike[str] | None
#: Images run through the network per runtime call.
BATCH_SIZE = 32


@dataclass
class Member:
    """One opened, verified artifact of a (possibly one-member) ensemble."""

    folder: Path
    meta: ArtifactMeta
    runtime: Any
    gate: OodGate | None

    @classmethod
    def open(
        cls, artifact: ArtifactPath, runtime: str = "onnx", threads: int | None = None, verify: bool = True
    ) -> Member:
        folder, meta = load_meta(artifact, verify=verify)
        gate = OodGate.load(folder / OOD_FILE) if (folder / OOD_FILE).is_file() else None
        return cls(folder, meta, create_runtime(folder, meta, runtime, threads), gate)

    def infer(self, batch: np.ndarray, patients: Sequence[PatientMetadata]) -> dict[str, np.ndarray]:
        """Runtime outputs for a normalised batch, in runtime-sized pieces."""
        encoding = self.meta.encoding
        vectors = encoding.encode(patients) if encoding else None
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(batch), BATCH_SIZE):
            stop = start + BATCH_SIZE
            result = self.runtime.run(batch[start:stop], None if vectors is None else vectors[start:stop])
            for key, value in result.items():
                parts.setdefault(key, []).append(np.asarray(value))
        return {key: np.concatenate(values) for key, values in parts.items()}


@dataclass
class EngineRun:
    """What `Engine.run` returns for a list of inputs."""

    #: Per member, in member order.
    members: list[Outputs]
    combined: Combined
    #: Input index of each combined row.
    rows: list[int]
    #: (input index, error) of inputs that could not be decoded.
    errors: list[tuple[int, ImageDecodeError]]
    #: Per combined row: the first member's canonical image (what the model saw), when kept.
    canonical: list[np.ndarray] = field(default_factory=list)
    #: Per combined row: the first member's CAM of the top class, [h, w] at its input size, or None.
    cams: list[np.ndarray | None] = field(default_factory=list)
    #: Per combined row: the image's full upright (width, height), from its one decode.
    sizes: list[tuple[int, int]] = field(default_factory=list)
    #: The coverage of the prediction sets asked for (None: each artifact's own).
    coverage: float | None = None
    #: Per input: the patient data the models read (given values, unknown ones filled from DICOM tags).
    patients: list[PatientMetadata] = field(default_factory=list)

    def member_results(self, threshold: float | None = None) -> list[list[Prediction]]:
        """Each member's own results on the combined rows (its own temperature, threshold, gate and
        prediction sets; `threshold` overrides every member's)."""
        return [combine([out], self.coverage).results(threshold, out.meta.name) for out in self.members]


class Engine:
    """Opened ensemble members and a default TTA count; `run` is the only inference loop."""

    def __init__(self, members: list[Member], tta: int = 1, coverage: float | None = None) -> None:
        if not members:
            raise ValueError("an engine needs at least one model")
        check_classes([m.meta for m in members])
        conformal_for([m.meta for m in members], coverage)  # a coverage the model lacks: said at once
        self.members = members
        self.tta = tta
        #: The prediction sets' coverage (None: the artifact's own; `ConformalSets.quantile`).
        self.coverage = coverage

    @classmethod
    def load(
        cls,
        path: ArtifactPath | Sequence[ArtifactPath] = None,
        *,
        runtime: str = "onnx",
        tta: int = 1,
        threads: int | None = None,
        verify: bool = True,
        coverage: float | None = None,
    ) -> Engine:
        """Open and verify each artifact once (None = the bundled model; several = an ensemble)."""
        paths: list[ArtifactPath] = list(path) if isinstance(path, list | tuple) else [path]  # type: ignore[list-item]
        return cls([Member.open(p, runtime, threads, verify) for p in paths], tta, coverage)

    @property
    def meta(self) -> ArtifactMeta:
        return self.members[0].meta

    def decode_size(self) -> tuple[int, int]:
        """JPEG draft-mode floor: never decode below any member's input (or working) size."""
        sizes = [m.meta.preprocessing.decode_floor for m in self.members]
        return max(s[0] for s in sizes), max(s[1] for s in sizes)

    def run(
        self,
        images: Sequence[ImageInput],
        patients: Sequence[PatientMetadata] | None = None,
        *,
        tta: int | None = None,
        heatmap: bool = False,
        keep_canonical: bool = False,
        ids: Sequence[str] | None = None,
        workers: int | None = None,
        on_done: Callable[[int], None] | None = None,
    ) -> EngineRun:
        """Every member's outputs, combined, for `images` (an unreadable input is listed, not fatal).

        Inputs are processed in chunks of `CHUNK` (memory stays bounded for a whole test split).
        `ids` names the inputs in `Outputs.image_ids` (default: their index); `on_done` is told
        how many inputs each chunk held (progress bars)."""
        views_n = tta or self.tta
        patients = list(patients) if patients is not None else [PatientMetadata()] * len(images)
        if any(m.meta.metadata_inputs for m in self.members):  # a DICOM file says age, sex and site
            patients = [with_dicom_tags(image, p) for image, p in zip(images, patients, strict=True)]
        gathered = _Gathered([[] for _ in self.members])
        for start in range(0, len(images), CHUNK):
            chunk = range(start, min(start + CHUNK, len(images)))
            prepared = _prepare_many([images[k] for k in chunk], self.specs, self.decode_size(), workers)
            self._run_chunk(list(chunk), prepared, patients, views_n, heatmap, keep_canonical, gathered)
            if on_done is not None:
                on_done(len(chunk))
        names = [str(i) for i in range(len(images))] if ids is None else list(ids)
        run = gathered.run(self.members, names, views_n, heatmap, self.coverage)
        run.patients = patients
        return run

    @property
    def specs(self) -> list[Preprocessing]:
        return [m.meta.preprocessing for m in self.members]

    def _run_chunk(
        self,
        chunk: list[int],
        prepared: list[_Prepared | ImageDecodeError],
        patients: Sequence[PatientMetadata],
        views_n: int,
        heatmap: bool,
        keep_canonical: bool,
        gathered: _Gathered,
    ) -> None:
        """Every member on one chunk's readable images; what they give is added to `gathered`."""
        good = [(k, p) for k, p in zip(chunk, prepared, strict=True) if isinstance(p, _Prepared)]
        gathered.errors += [
            (k, p) for k, p in zip(chunk, prepared, strict=True) if isinstance(p, ImageDecodeError)
        ]
        chunk_cams: list[list[np.ndarray]] = [[] for _ in good]
        for m, member in enumerate(self.members):
            views = [p.views[m] for _, p in good]
            maps = chunk_cams if heatmap and m == 0 else None
            gathered.parts[m].append(
                self._infer_member(member, views, [patients[k] for k, _ in good], views_n, maps)
            )
        if keep_canonical:
            gathered.kept += [p.views[0] for _, p in good]
        gathered.rows += [k for k, _ in good]
        gathered.sizes += [p.size for _, p in good]
        gathered.cam_views += chunk_cams

    def network_inputs(self, images: Sequence[ImageInput], member: int = 0) -> Iterator[np.ndarray]:
        """What `member`'s network is fed for each image (3×H×W float32, first TTA view), decoded
        and preprocessed exactly as `run` does: e.g. INT8 calibration data. Unreadable images are
        skipped."""
        spec = self.members[member].meta.preprocessing
        for start in range(0, len(images), CHUNK):
            for prepared in _prepare_many(images[start : start + CHUNK], [spec], spec.input_size, None):
                if not isinstance(prepared, ImageDecodeError):
                    yield normalize(prepared.views[0], spec)

    @staticmethod
    def _infer_member(
        member: Member,
        canon: list[np.ndarray],
        patients: list[PatientMetadata],
        views_n: int,
        cam_views: list[list[np.ndarray]] | None,
    ) -> dict[str, Any]:
        """One member on one chunk of canonical images: logits per view, first-view features, gate score."""
        spec = member.meta.preprocessing
        logits = np.zeros((views_n, len(canon), len(member.meta.classes)), np.float32)
        result: dict[str, Any] = {"logits": logits, "ood": np.zeros(len(canon))}
        if not canon:
            return result
        views = [tta_views(normalize(c, spec), views_n) for c in canon]
        for v in range(views_n):
            out = member.infer(np.stack([x[v] for x in views]), patients)
            logits[v] = out["logits"]
            if v == 0:
                result["features"] = out.get("features")
                result["level_features"] = out.get("level_features")
                if member.gate is not None and out.get("features") is not None:
                    colours = [colour_score(c) for c in canon]
                    result["ood"] = member.gate.score(out["features"], colours, out.get("level_features"))
            if cam_views is not None and "cam" in out:
                for j in range(len(canon)):
                    cam_views[j].append(undo_view(out["cam"][j], v))
        return result


@dataclass
class _Gathered:
    """What `Engine.run` collects chunk by chunk, and the `EngineRun` it makes at the end."""

    parts: list[list[dict[str, Any]]]
    rows: list[int] = field(default_factory=list)
    errors: list[tuple[int, ImageDecodeError]] = field(default_factory=list)
    kept: list[np.ndarray] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    cam_views: list[list[np.ndarray]] = field(default_factory=list)

    def run(
        self, members: Sequence[Member], names: list[str], views_n: int, heatmap: bool, coverage: float | None
    ) -> EngineRun:
        failed = [(names[k], str(err)) for k, err in self.errors]
        outputs = [
            _merge(member, part, [names[k] for k in self.rows], failed, views_n)
            for member, part in zip(members, self.parts, strict=True)
        ]
        combined = combine(outputs, coverage)
        cams: list[np.ndarray | None] = [None] * len(self.rows)
        if heatmap:  # each view's CAM of the class the ensemble chose, averaged over the views
            top = combined.top
            cams = [
                np.mean([v[top[j]] for v in maps], axis=0) if maps else None
                for j, maps in enumerate(self.cam_views)
            ]
        return EngineRun(outputs, combined, self.rows, self.errors, self.kept, cams, self.sizes, coverage)


#: Inputs decoded and run per chunk: bounds memory (HAM10000's test split at once is ~350 MB).
CHUNK = 64


def _merge(
    member: Member, parts: list[dict[str, Any]], names: list[str], failed: list[tuple[str, str]], views_n: int
) -> Outputs:
    def cat(key: str, axis: int = 0) -> np.ndarray | None:
        values = [p[key] for p in parts if p.get(key) is not None and len(p[key])]
        return np.concatenate(values, axis=axis).astype(np.float32) if values else None

    logits = cat("logits", axis=1)
    if logits is None:
        logits = np.zeros((views_n, 0, len(member.meta.classes)), np.float32)
    ood = np.concatenate([np.asarray(p["ood"], np.float64) for p in parts]) if parts else np.zeros(0)
    return Outputs(
        member.folder, member.meta, names, logits, cat("features"), ood, list(failed), cat("level_features")
    )


@dataclass
class _Prepared:
    """One decoded input: each member's canonical view, and the image's full upright size."""

    views: list[np.ndarray]
    size: tuple[int, int]


def _prepare_many(
    sources: Sequence[ImageInput],
    specs: Sequence[Preprocessing],
    min_size: tuple[int, int],
    workers: int | None,
) -> list[_Prepared | ImageDecodeError]:
    """Decode each input once (JPEG draft mode, never below `min_size`) and make each member's
    canonical view of it, in threads: PIL decodes and resizes without holding the GIL, so they
    overlap on a multi-core CPU. An unreadable input yields its error in place."""
    from concurrent.futures import ThreadPoolExecutor

    def one(source: ImageInput) -> _Prepared | ImageDecodeError:
        try:
            rgb, size = decode_with_size(source, min_size=min_size)
        except ImageDecodeError as err:
            return err
        return _Prepared([canonical(rgb, spec) for spec in specs], size)

    count = min(len(sources), workers or os.cpu_count() or 1)
    if count < 2:
        return [one(source) for source in sources]
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, sources))
