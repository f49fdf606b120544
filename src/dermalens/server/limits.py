"""Per-client limits: requests per minute for each token, predict requests in flight per client.

Both live in each server process's memory (with ``--workers N`` a token may make N times the
rate, spread over the processes). Why a token bucket: a client may burst up to a minute's worth,
then goes at the steady rate; a 429 says when the next request will be accepted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from dermalens.server.errors import ApiError


class RateLimiter:
    """`rate` requests per minute per key, in bursts of at most `rate`; 0 means no limit."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens left, when counted)

    def check(self, key: str) -> None:
        """Count one request of `key`; 429 with Retry-After when its bucket is empty."""
        if not self.rate:
            return
        now = time.monotonic()
        left, then = self._buckets.get(key, (float(self.rate), now))
        left = min(float(self.rate), left + (now - then) * self.rate / 60)
        if left < 1:
            self._buckets[key] = (left, now)
            wait = math.ceil((1 - left) * 60 / self.rate)
            raise ApiError(
                429,
                f"too many requests: at most {self.rate} per minute for each token; try again in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        self._buckets[key] = (left - 1, now)


class UploadSlots:
    """At most `limit` predict requests of one client at a time (the rest answered 429 at once)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._busy: dict[str, int] = {}

    @contextmanager
    def hold(self, key: str | None) -> Iterator[None]:
        """A slot for `key` for the duration (None: a client that is not limited)."""
        if key is None:
            yield
            return
        if self._busy.get(key, 0) >= self.limit:
            raise ApiError(
                429,
                f"too many uploads at once: at most {self.limit} predict requests of one client at a "
                "time; wait for one to finish",
                headers={"Retry-After": "1"},
            )
        self._busy[key] = self._busy.get(key, 0) + 1
        try:
            yield
        finally:
            self._busy[key] -= 1
            if not self._busy[key]:
                del self._busy[key]
