"""Group commit: the rows of concurrent requests written in one transaction by one thread.

Why: every prediction is logged before its answer is sent, so each request waited for its own
commit, and under load the requests' threads queued on SQLite's write lock (its busy handler
took 6 % of the server's CPU, the log 16 %, under 16 clients; `docs/performance.md`). Here a
request hands its rows to the writer thread and waits for *their* commit, as before; the writer
takes everything that is waiting and commits it together. The guarantee is unchanged: a
request returns only after its rows are committed, or raises what the commit raised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupCommit(Generic[T]):
    """`submit(item)` blocks until `commit([..., item, ...])` has returned (or raises its error).

    `commit` writes a list of items in one transaction. When it fails on a group of several for a
    reason of its own (not `unavailable`: a database that is down fails every item anyway), each
    item is committed alone, so that one bad item does not fail the requests grouped with it."""

    def __init__(self, commit: Callable[[list[T]], None], unavailable: type[Exception]) -> None:
        self._commit = commit
        self._unavailable = unavailable
        self._pending: list[tuple[T, Future[None]]] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, item: T) -> None:
        future: Future[None] = Future()
        with self._wake:
            if self._closed:
                raise RuntimeError("the log is closed")
            self._pending.append((item, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dermalens-log-writer", daemon=True)
                self._thread.start()
            self._wake.notify()
        future.result()

    def close(self) -> None:
        """Commit what is waiting, then stop the writer thread."""
        with self._wake:
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: bool(self._pending) or self._closed)
                group, self._pending = self._pending, []
                if not group and self._closed:
                    return
            self._write(group)

    def _write(self, group: list[tuple[T, Future[None]]]) -> None:
        try:
            self._commit([item for item, _ in group])
        except self._unavailable as err:
            for _, future in group:
                future.set_exception(err)
            return
        except Exception as err:
            if len(group) == 1:
                group[0][1].set_exception(err)
                return
            for item, future in group:  # find the item that breaks the group; the others commit
                self._write([(item, future)])
            return
        for _, future in group:
            future.set_result(None)
