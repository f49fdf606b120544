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
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import Any, TypeVar

import numpy as np

from dermalens.artifact.meta import ArtifactMeta, ConformalSets, EnsembleSpec
from dermalens.core.decode import ImageDecodeError, ImageInput, decode_with_size
from dermalens.core.dicom import with_dicom_tags
from dermalens.core.metadata import PatientMetadata
from dermalens.core.preprocess import Preprocessing, canonical, normalize
from dermalens.inference.chunk import Prepared, Scored, one_blas_thread
from dermalens.inference.combined import (
    Combined,
    Outputs,
    check_classes,
    combine,
    conformal_for,
    fitted_sets,
    operating_rule,
)
from dermalens.inference.member import ArtifactPath, Member
from dermalens.inference.results import Prediction
from dermalens.inference.runtime import OnnxRuntime
from dermalens.inference.tta import tta_views, undo_view
from dermalens.models.ood import colour_score

__all__ = ["ArtifactPath", "Engine", "EngineRun", "Member"]
T = TypeVar("T")


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

    def __init__(
        self,
        members: list[Member],
        tta: int = 1,
        coverage: float | None = None,
        threads: int | None = None,
        ensemble: EnsembleSpec | None = None,
    ) -> None:
        if not members:
            raise ValueError("an engine needs at least one model")
        if ensemble is not None and len(members) != len(ensemble.members) + 1:
            raise ValueError(f"an ensemble of {len(ensemble.members) + 1} networks was given {len(members)}")
        check_classes([m.meta for m in members])
        conformal_for([m.meta for m in members], coverage, ensemble)  # a coverage it lacks: said now
        self.members = members
        #: The spec of the ensemble artifact the members came from (its own decision and gate rule),
        #: or None: one model, or several artifacts combined by the generic rule (`combine`).
        self.ensemble = ensemble
        self.tta = tta
        #: The prediction sets' coverage (None: the artifact's own; `ConformalSets.quantile`).
        self.coverage = coverage
        #: Lanes: chunks of a call scored at the same time, each decoding its images and running the
        #: network single-threaded. ONNX Runtime sessions take concurrent runs; other runtimes
        #: (eager PyTorch, with its own thread pool) get one lane.
        threads = threads or int(os.environ.get("DERMALENS_THREADS", "0")) or (os.cpu_count() or 1)
        parallel = all(isinstance(m.runtime, OnnxRuntime) for m in members)
        self.lanes = threads if parallel else 1
        one_blas_thread()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

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
        """Open and verify each artifact once (None = the bundled model; several = an ensemble).

        `threads`: the CPU threads inference may use (default: every core, or DERMALENS_THREADS).
        They become lanes that each run ONNX Runtime on one thread, not one run on `threads`
        threads: measured on 2 cores (bundled model, batches of 8), one thread does 282 images/s
        and two 413, so a run on two threads spends 1.4× the CPU per image, and one image takes
        3.6 ms on one thread against 3.8 ms on two.

        An ensemble artifact (`ArtifactMeta.ensemble`) opens as its member networks and decides
        with its own threshold, decision rule, prediction sets and gate rule. Given together with
        other artifacts, each contributes all its networks and the whole falls back to the generic
        rule (`combine`: mean threshold and offsets, any gate refuses, no prediction sets): no
        decision was fitted on that mix."""
        paths: list[ArtifactPath] = list(path) if isinstance(path, list | tuple) else [path]  # type: ignore[list-item]
        opened = [Member.open_all(p, runtime, verify) for p in paths]
        members = [member for networks, _ in opened for member in networks]
        ensemble = opened[0][1] if len(opened) == 1 else None
        return cls(members, tta, coverage, threads, ensemble)

    @property
    def meta(self) -> ArtifactMeta:
        """The first (primary) member's metadata: classes, preprocessing of heatmaps, the name."""
        return self.members[0].meta

    @property
    def threshold(self) -> float:
        """The operating threshold every combined result uses by default (`operating_rule`)."""
        return operating_rule([m.meta for m in self.members], self.ensemble)[0]

    @property
    def sets(self) -> ConformalSets | None:
        """The prediction sets that hold for this engine's combined output (`fitted_sets`)."""
        return fitted_sets([m.meta for m in self.members], self.ensemble)

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
        on_done: Callable[[int], None] | None = None,
    ) -> EngineRun:
        """Every member's outputs, combined, for `images` (an unreadable input is listed, not fatal).

        Inputs run in chunks (`chunks`), and the engine's lanes score several chunks at once, each
        decoding its images and running the network (`_in_lanes`): on two cores both stay busy,
        instead of decoding on two threads and then running the network on two, in turns. `ids`
        names the inputs in `Outputs.image_ids` (default: their index); `on_done` is told how many
        inputs each chunk held (progress bars)."""
        views_n = tta or self.tta
        patients = list(patients) if patients is not None else [PatientMetadata()] * len(images)
        if any(m.meta.metadata_inputs for m in self.members):  # a DICOM file says age, sex and site
            patients = [with_dicom_tags(image, p) for image, p in zip(images, patients, strict=True)]
        gathered = _Gathered([[] for _ in self.members])

        chunks = self.chunks(len(images))
        spread = len(chunks) == 1 and self.lanes > 1 and len(self.members) > 1

        def score(chunk: list[int]) -> Scored:
            return self._score_chunk(
                [images[k] for k in chunk], [patients[k] for k in chunk], views_n, heatmap, spread
            )

        for chunk, scored in zip(chunks, self._in_lanes(score, chunks), strict=True):
            gathered.add(chunk, scored, keep_canonical)
            if on_done is not None:
                on_done(len(chunk))
        names = [str(i) for i in range(len(images))] if ids is None else list(ids)
        run = gathered.run(self.members, names, views_n, heatmap, self.coverage, self.ensemble)
        run.patients = patients
        return run

    def chunks(self, n: int) -> list[list[int]]:
        """Input indices in chunks of at most `CHUNK`, and at least one chunk per lane when there
        are enough inputs (a request of 6 images runs as 3 + 3 on two lanes)."""
        size = max(1, min(CHUNK, -(-n // self.lanes)))
        return [list(range(s, min(s + size, n))) for s in range(0, n, size)]

    def _in_lanes(self, work: Callable[[list[int]], T], chunks: list[list[int]]) -> Iterator[T]:
        """`work(chunk)` for each chunk, results in chunk order, up to `lanes` at a time in the
        engine's threads (started once), at most two per lane queued ahead (memory stays bounded).
        One chunk, or one lane, runs here (a lone chunk's other networks go to the idle lanes: `_each`)."""
        if len(chunks) < 2 or self.lanes < 2:
            yield from map(work, chunks)
            return
        pool, pending, ahead = self._lane_pool(), iter(chunks), 2 * self.lanes
        queued: deque[Future[T]] = deque(pool.submit(work, c) for c in islice(pending, ahead))
        while queued:
            result = queued.popleft().result()
            queued.extend(pool.submit(work, c) for c in islice(pending, 1))
            yield result

    def _lane_pool(self) -> ThreadPoolExecutor:
        """The lanes' threads, started on first use."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.lanes, thread_name_prefix="dermalens-lane")
            return self._pool

    def _each(self, calls: Sequence[Callable[[], T]], spread: bool) -> list[T]:
        """Run one chunk's member `calls` in order here, or, with `spread` (a lone chunk: the lanes
        are idle), the first here and the others in the lanes at once: one image then takes its
        slowest network's time, not the sum of all (a lane never waits on a lane: no deadlock)."""
        if not spread:
            return [call() for call in calls]
        futures = [self._lane_pool().submit(call) for call in calls[1:]]
        return [calls[0](), *(future.result() for future in futures)]

    @property
    def specs(self) -> list[Preprocessing]:
        return [m.meta.preprocessing for m in self.members]

    def _prepare(self, source: ImageInput) -> Prepared | ImageDecodeError:
        """Decode an input once (JPEG draft mode, never below any member's size) and make each
        member's canonical view of it; an unreadable input gives its error."""
        try:
            rgb, size = decode_with_size(source, min_size=self.decode_size())
        except ImageDecodeError as err:
            return err
        views: dict[Preprocessing, np.ndarray] = {}  # members with one preprocessing share one view
        for spec in self.specs:
            if spec not in views:
                views[spec] = canonical(rgb, spec)
        return Prepared([views[spec] for spec in self.specs], size)

    def _score_chunk(
        self,
        images: list[ImageInput],
        patients: list[PatientMetadata],
        views_n: int,
        heatmap: bool,
        spread: bool = False,
    ) -> Scored:
        """One chunk, in one lane: decode, then every member on its readable images (`_each`)."""
        prepared = [self._prepare(image) for image in images]
        good = [(j, p) for j, p in enumerate(prepared) if isinstance(p, Prepared)]
        cams: list[list[np.ndarray]] = [[] for _ in good]
        calls = [
            partial(
                self._infer_member,
                member,
                [p.views[m] for _, p in good],
                [patients[j] for j, _ in good],
                views_n,
                cams if heatmap and m == 0 else None,
            )
            for m, member in enumerate(self.members)
        ]
        return Scored(prepared, self._each(calls, spread), cams)

    def network_inputs(self, images: Sequence[ImageInput], member: int = 0) -> Iterator[np.ndarray]:
        """What `member`'s network is fed for each image (3×H×W float32, first TTA view), decoded
        and preprocessed exactly as `run` does: e.g. INT8 calibration data. Unreadable images are
        skipped."""
        spec = self.members[member].meta.preprocessing

        def prepare(chunk: list[int]) -> list[Prepared | ImageDecodeError]:
            return [self._prepare(images[k]) for k in chunk]

        for ready in self._in_lanes(prepare, self.chunks(len(images))):
            yield from (normalize(p.views[member], spec) for p in ready if isinstance(p, Prepared))

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

    def add(self, chunk: list[int], scored: Scored, keep_canonical: bool) -> None:
        """One scored chunk (`chunk`: the input index of each of its images), in input order."""
        for k, p in zip(chunk, scored.prepared, strict=True):
            if isinstance(p, ImageDecodeError):
                self.errors.append((k, p))
            else:
                self.rows.append(k)
                self.sizes.append(p.size)
                if keep_canonical:
                    self.kept.append(p.views[0])
        for m, part in enumerate(scored.parts):
            self.parts[m].append(part)
        self.cam_views += scored.cams

    def run(
        self,
        members: Sequence[Member],
        names: list[str],
        views_n: int,
        heatmap: bool,
        coverage: float | None,
        ensemble: EnsembleSpec | None = None,
    ) -> EngineRun:
        failed = [(names[k], str(err)) for k, err in self.errors]
        outputs = [
            _merge(member, part, [names[k] for k in self.rows], failed, views_n)
            for member, part in zip(members, self.parts, strict=True)
        ]
        combined = combine(outputs, coverage, ensemble)
        cams: list[np.ndarray | None] = [None] * len(self.rows)
        if heatmap:  # each view's CAM of the class the ensemble chose, averaged over the views
            top = combined.top
            cams = [
                np.mean([v[top[j]] for v in maps], axis=0) if maps else None
                for j, maps in enumerate(self.cam_views)
            ]
        return EngineRun(outputs, combined, self.rows, self.errors, self.kept, cams, self.sizes, coverage)


#: Most inputs decoded and run through the network per chunk (one lane's unit of work). Small:
#: ONNX Runtime is as fast per image at 8 as at 32 on this CPU (282 against 245 images/s on one
#: thread), several lanes get work even from a short call, and memory stays bounded.
CHUNK = 8


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
