"""Inference off the event loop, with concurrent requests merged into shared batches.

Why batch across requests: under load, many clients each send one image; the network
runs a batch of 16 images markedly faster per image than 16 single runs, and a fixed
number of workers keeps ONNX Runtime from oversubscribing the CPU cores. A batch never
waits for more work: a worker takes whatever is queued when it becomes free, so a lone
request is not delayed. Only requests with the same options share a batch; patient
metadata (age, sex, site) is per image, so it travels with each image through the batch
and requests with different metadata still share one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio.to_thread

from dermalens.core.decode import ImageInput
from dermalens.core.metadata import PatientMetadata, per_image
from dermalens.inference.predictor import Classifier
from dermalens.inference.results import Prediction, PredictionError

Result = Prediction | PredictionError
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """Prediction options of one request; requests with equal options can share a batch."""

    tta: int
    heatmap: bool
    threshold: float | None
    #: Also return each ensemble member's own result.
    compare: bool = False


@dataclass(eq=False)  # identity: a job holds pixel arrays, which have no truth value to compare
class _Job:
    images: Sequence[ImageInput]
    options: Options
    future: asyncio.Future[list[Result]] = field(repr=False)
    #: One entry per image, parallel to `images`.
    metadata: Sequence[PatientMetadata] = ()


class InferenceService:
    """`await service.predict(images, options, metadata)`; results in input order, errors kept in place."""

    def __init__(self, classifier: Classifier, max_batch: int = 16, workers: int = 1) -> None:
        self.classifier = classifier
        self.max_batch = max_batch
        self.workers = workers
        self._queue: list[_Job] = []
        self._ready: asyncio.Condition | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._ready = asyncio.Condition()
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"inference-{i}") for i in range(self.workers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for job in self._queue:
            if not job.future.done():
                job.future.set_exception(RuntimeError("server is shutting down"))
        self._queue.clear()

    async def predict(
        self,
        images: Sequence[ImageInput],
        options: Options,
        metadata: PatientMetadata | Sequence[PatientMetadata] | None = None,
    ) -> list[Result]:
        """`metadata`: one `PatientMetadata` for every image, one per image, or None (all unknown)."""
        if self._ready is None:
            raise RuntimeError("InferenceService.start() was not awaited")
        patients = per_image(list(metadata) if isinstance(metadata, Sequence) else metadata, len(images))
        job = _Job(images, options, asyncio.get_running_loop().create_future(), patients)
        async with self._ready:
            self._queue.append(job)
            self._ready.notify()
        return await job.future

    def _take_batch(self) -> list[_Job]:
        """The oldest job plus later jobs with the same options, up to `max_batch` images."""
        first, *rest = self._queue
        batch, left, size = [first], [], len(first.images)
        for job in rest:
            if job.options == first.options and size + len(job.images) <= self.max_batch:
                batch.append(job)
                size += len(job.images)
            else:
                left.append(job)
        self._queue = left
        return [job for job in batch if not job.future.done()]  # drop cancelled requests

    async def _worker(self) -> None:
        assert self._ready is not None
        while True:
            async with self._ready:
                await self._ready.wait_for(lambda: bool(self._queue))
                batch = self._take_batch()
            if batch:
                try:
                    await self._run(batch)
                except Exception as err:  # a bug: fail these requests, but never stop serving the rest
                    log.exception("a batch of %d request(s) failed", len(batch))
                    for job in batch:
                        if not job.future.done():
                            job.future.set_exception(err)

    async def _run(self, batch: list[_Job]) -> None:
        images = [image for job in batch for image in job.images]
        patients = [patient for job in batch for patient in job.metadata]
        results = await anyio.to_thread.run_sync(self._predict, images, patients, batch[0].options)
        start = 0
        for job in batch:
            part = results[start : start + len(job.images)]
            start += len(job.images)
            if not job.future.done():
                job.future.set_result(part)

    def _predict(
        self, images: list[ImageInput], patients: list[PatientMetadata], options: Options
    ) -> list[Result]:
        """The predictor's results. It reports unreadable images itself; should it raise instead
        (a decoder bug on some odd file), the batch is redone image by image so that only the
        image that breaks it fails, as unreadable, and requests sharing the batch still succeed."""
        try:
            return self._predict_batch(images, patients, options)
        except Exception:
            log.exception("the predictor raised on a batch of %d image(s); retrying one by one", len(images))
        results: list[Result] = []
        for index, (image, patient) in enumerate(zip(images, patients, strict=True)):
            try:
                results += self._predict_batch([image], [patient], options)
            except Exception as err:
                message = f"cannot read this image ({type(err).__name__}: {err})"
                results.append(PredictionError(f"image {index}", message, "corrupt"))
        return results

    def _predict_batch(
        self, images: list[ImageInput], patients: list[PatientMetadata], options: Options
    ) -> list[Result]:
        return self.classifier.predict(
            list(images),
            heatmap=options.heatmap,
            threshold=options.threshold,
            tta=options.tta,
            metadata=list(patients),
            compare=options.compare,
        )
