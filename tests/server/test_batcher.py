"""The request batcher on its own, with a stand-in classifier: queued jobs holding pixel arrays,
jobs with different options interleaved, and a failing batch that must not stop the worker."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np

from dermalens.server.batcher import InferenceService, Options

PLAIN = Options(tta=1, heatmap=False, threshold=None)
HEATMAP = Options(tta=1, heatmap=True, threshold=None)


class _Gate:
    """Answers each image with its mean value; the first call waits until released, so that later
    requests pile up in the queue meanwhile."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def predict(self, images: list[np.ndarray], **_: Any) -> list[float]:
        self.calls.append(len(images))
        if len(self.calls) == 1:
            self.entered.set()
            self.release.wait(10)
        return [float(image.mean()) for image in images]


def pixels(value: int) -> np.ndarray:
    return np.full((4, 4, 3), value, np.uint8)


async def _pile_up(service: InferenceService, gate: _Gate, queued: list[tuple[int, Options]]) -> list[Any]:
    """Start one request, queue `queued` behind it while it runs, then let everything finish."""
    first = asyncio.create_task(service.predict([pixels(0)], PLAIN))
    while not gate.entered.is_set():
        await asyncio.sleep(0.01)
    later = [asyncio.create_task(service.predict([pixels(v)], o)) for v, o in queued]
    while len(service._queue) < len(queued):
        await asyncio.sleep(0.01)
    gate.release.set()
    return list(await asyncio.wait_for(asyncio.gather(first, *later), timeout=20))


def test_jobs_with_pixel_arrays_and_mixed_options_are_all_answered() -> None:
    """Regression: taking a batch compared queued jobs by value, i.e. their pixel arrays, which
    raised inside the worker and left every later request waiting forever."""
    gate = _Gate()

    async def main() -> list[Any]:
        service = InferenceService(gate, max_batch=16)  # type: ignore[arg-type]
        await service.start()
        try:
            return await _pile_up(service, gate, [(1, HEATMAP), (2, PLAIN), (3, HEATMAP), (4, PLAIN)])
        finally:
            await service.stop()

    assert asyncio.run(main()) == [[0.0], [1.0], [2.0], [3.0], [4.0]]
    assert gate.calls == [1, 2, 2]  # the two heatmap requests share a batch, then the two plain ones


def test_a_failing_batch_fails_its_requests_and_the_worker_keeps_serving() -> None:
    gate = _Gate()
    gate.entered.set()
    gate.release.set()

    async def main() -> tuple[BaseException | None, list[float]]:
        service = InferenceService(gate)  # type: ignore[arg-type]
        original = service._run

        async def broken_once(batch: Any) -> None:
            service._run = original  # type: ignore[method-assign]
            raise RuntimeError("bug outside the predictor")

        service._run = broken_once  # type: ignore[method-assign]
        await service.start()
        try:
            failed = await asyncio.gather(service.predict([pixels(5)], PLAIN), return_exceptions=True)
            after = await asyncio.wait_for(service.predict([pixels(6)], PLAIN), timeout=20)
        finally:
            await service.stop()
        return (failed[0] if isinstance(failed[0], BaseException) else None), after

    error, after = asyncio.run(main())
    assert isinstance(error, RuntimeError) and "bug outside the predictor" in str(error)
    assert after == [6.0]
