"""The SQLite prediction log on its own: concurrent writers lose nothing, a failed write leaves nothing."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from dermalens.server.log import HistoryFilter, LogRow, PredictionLog


def row(request_id: str, index: int, **changes: object) -> LogRow:
    values: dict = dict(
        request_id=request_id,
        model_id="m-1",
        model_version="1",
        filename=f"f{index}_mel.jpg",
        sha256=f"{index:064x}",
        size_bytes=100 + index,
        width=64,
        height=48,
        prediction="mel",
        decision="malignant" if index % 2 else "benign",
        p_malignant=0.5,
        ood=index % 3 == 0,
        ood_score=0.5,
        label="mel",
        correct=bool(index % 2),
        results={"index": index},
    )
    values.update(changes)
    return LogRow(**values)


def test_concurrent_writers_lose_no_rows(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "log.db")
    threads, per_thread = 16, 40

    def write(t: int) -> None:
        for i in range(per_thread):
            log.write([row(f"r{t}-{i}", t * 1000 + i), row(f"r{t}-{i}", t * 1000 + i + 500)])

    workers = [threading.Thread(target=write, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert log.count() == threads * per_thread * 2
    log.close()
    with sqlite3.connect(tmp_path / "log.db") as db:  # committed: visible to another connection
        assert (
            db.execute("SELECT COUNT(DISTINCT request_id) FROM predictions").fetchone()[0]
            == threads * per_thread
        )


def test_a_failed_write_is_rolled_back(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "log.db")
    log.write([row("ok", 1)])
    with pytest.raises(sqlite3.IntegrityError):
        log.write([row("bad", 2), row("bad", 3, sha256=None)])  # the second row breaks NOT NULL
    assert [r["request_id"] for r in log.query()] == ["ok"]
    log.write([row("after", 4)])  # the connection is usable afterwards
    assert log.count() == 2


def test_filters_and_export_order(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "log.db")
    log.write([row("a", i) for i in range(30)])
    assert log.count(HistoryFilter(decision="malignant")) == 15
    assert log.count(HistoryFilter(ood=True)) == 10
    assert log.count(HistoryFilter(q="f1")) == 11  # f1, f10..f19
    assert log.count(HistoryFilter(q="%")) == 0  # LIKE wildcards are literal
    everything = list(log.iter_all(chunk=7))
    assert [r["id"] for r in everything] == list(range(30, 0, -1))
    assert everything[-1]["ood"] is True and everything[-1]["correct"] is False  # typed, not 0/1
