"""What one lane of `engine.Engine` makes of one chunk of inputs, and the process-wide BLAS setting
the lanes need: the engine's plain parts, kept apart so that its loop reads on one screen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dermalens.core.decode import ImageDecodeError


def one_blas_thread() -> None:
    """Numpy's BLAS (the OOD gate's products) on one thread, for the whole process: its worker
    threads busy-wait after each product and took the cores from the lanes (and, with one lane per
    process, from the other processes). Measured on 2 cores, 200 600×450 JPEGs in one call: 155
    images/s with OpenBLAS's own threads, 251 with one; `serve --workers 2`: 95 requests/s, 193."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


@dataclass
class Prepared:
    """One decoded input: each member's canonical view, and the image's full upright size."""

    views: list[np.ndarray]
    size: tuple[int, int]


@dataclass
class Scored:
    """What one lane made of one chunk: each input decoded (or its error), each member's outputs
    on the readable ones, and their CAM views."""

    prepared: list[Prepared | ImageDecodeError]
    parts: list[dict[str, Any]]
    cams: list[list[np.ndarray]]
