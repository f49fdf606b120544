"""The prediction log on its own, on SQLite and on a real PostgreSQL: concurrent writers lose nothing,
a failed write leaves nothing, the schema version is checked, and a database that goes away is
reported (`LogUnavailable`) and recovered from."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from dermalens.server.log import (
    SCHEMA_VERSION,
    HistoryFilter,
    LogRow,
    LogSchemaError,
    LogUnavailable,
    PredictionLog,
    Purge,
    log_url,
    migrate,
)

from .postgres import Postgres


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


def test_concurrent_writers_lose_no_rows(log_target: str | Path) -> None:
    log = PredictionLog(log_target)
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
    other = PredictionLog(log_target)  # committed: visible to another connection (another server)
    ids = {r["request_id"] for r in other.iter_all(chunk=97)}
    assert len(ids) == threads * per_thread and other.count() == threads * per_thread * 2
    other.close()


def test_concurrent_writes_share_transactions_and_a_bad_one_fails_alone(log_target: str | Path) -> None:
    """Group commit (`server.group_commit`): requests waiting at the same time are committed
    together, each returns only once its rows are in, and a request whose rows break a constraint
    fails alone, with the database's own error, while those grouped with it are logged."""
    log = PredictionLog(log_target)
    commits = []
    sa.event.listen(log._engine, "commit", lambda conn: commits.append(1))
    errors: dict[int, Exception] = {}
    start = threading.Barrier(24)

    def write(t: int) -> None:
        start.wait()
        for i in range(10):
            bad = t == 5 and i == 3
            try:
                log.write([row(f"r{t}-{i}", t * 100 + i, **({"sha256": None} if bad else {}))])
            except sa.exc.IntegrityError as err:
                errors[t * 100 + i] = err

    workers = [threading.Thread(target=write, args=(t,)) for t in range(24)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert list(errors) == [503]
    assert log.count() == 24 * 10 - 1
    assert len(commits) < 24 * 10  # fewer transactions than requests
    log.close()


def test_a_failed_write_is_rolled_back(log_target: str | Path) -> None:
    log = PredictionLog(log_target)
    log.write([row("ok", 1)])
    with pytest.raises(sa.exc.IntegrityError):
        log.write([row("bad", 2), row("bad", 3, sha256=None)])  # the second row breaks NOT NULL
    assert [r["request_id"] for r in log.query()] == ["ok"]
    log.write([row("after", 4)])  # the connection is usable afterwards
    assert log.count() == 2
    log.close()


def test_filters_and_export_order(log_target: str | Path) -> None:
    log = PredictionLog(log_target)
    log.write([row("a", i) for i in range(30)])
    assert log.count(HistoryFilter(decision="malignant")) == 15
    assert log.count(HistoryFilter(ood=True)) == 10
    assert log.count(HistoryFilter(q="f1")) == 11  # f1, f10..f19
    assert log.count(HistoryFilter(q="F1_MEL")) == 1  # case-insensitive on both databases
    assert log.count(HistoryFilter(q="%")) == 0  # LIKE wildcards are literal
    everything = list(log.iter_all(chunk=7))
    assert [r["id"] for r in everything] == list(range(30, 0, -1))
    assert everything[-1]["ood"] is True and everything[-1]["correct"] is False  # typed, not 0/1
    assert everything[0]["metadata"] is None and everything[0]["image_stored"] is False
    log.close()


def test_a_log_of_another_schema_version_is_refused_until_migrated(log_target: str | Path) -> None:
    PredictionLog(log_target).close()
    engine = sa.create_engine(log_url(log_target))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE dermalens_schema SET version = :v"), {"v": SCHEMA_VERSION + 1})
    with pytest.raises(LogSchemaError, match="newer dermalens"):
        PredictionLog(log_target)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE dermalens_schema"))  # as logs were before versioning
    engine.dispose()
    with pytest.raises(LogSchemaError, match=r"schema version 0.*dermalens migrate-log"):
        PredictionLog(log_target)
    assert migrate(log_target) == (0, SCHEMA_VERSION)
    assert migrate(log_target) == (SCHEMA_VERSION, SCHEMA_VERSION)
    log = PredictionLog(log_target)
    log.write([row("after-migration", 1)])
    assert log.count() == 1
    log.close()


def test_a_sqlite_log_written_before_versioning_keeps_its_rows(tmp_path: Path) -> None:
    """A log as dermalens wrote it before the version table (its own CREATE TABLE, sqlite3)."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE predictions (id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL,"
            " request_id TEXT NOT NULL, model_id TEXT NOT NULL, model_version TEXT NOT NULL,"
            " filename TEXT NOT NULL, sha256 TEXT NOT NULL, size_bytes INTEGER NOT NULL, width INTEGER,"
            " height INTEGER, prediction TEXT NOT NULL, decision TEXT NOT NULL, p_malignant REAL NOT NULL,"
            " ood INTEGER NOT NULL, ood_score REAL, label TEXT, correct INTEGER, results TEXT NOT NULL,"
            " image_path TEXT)"
        )
        db.execute(
            "INSERT INTO predictions (created, request_id, model_id, model_version, filename, sha256,"
            " size_bytes, prediction, decision, p_malignant, ood, results)"
            " VALUES ('2026-01-01T00:00:00.000+00:00', 'old', 'm', '1', 'a.jpg', 'ab', 3, 'nv', 'benign',"
            " 0.1, 1, '{}')"
        )
    with pytest.raises(LogSchemaError, match="migrate-log"):
        PredictionLog(path)
    assert migrate(path) == (0, SCHEMA_VERSION)
    log = PredictionLog(path)
    (old,) = log.query()
    assert old["request_id"] == "old" and old["ood"] is True and old["correct"] is None
    # 1 → 2 added the prediction set's columns: empty for old rows, written for new ones.
    assert old["prediction_set"] is None and old["set_size"] is None
    log.write([row("new", 1, prediction_set="mel|nv", set_size=2)])
    assert log.query()[0]["prediction_set"] == "mel|nv" and log.query()[0]["set_size"] == 2
    log.close()


def test_unsupported_databases_are_named() -> None:
    with pytest.raises(ValueError, match=r"unsupported log database 'mysql'.*postgresql://"):
        log_url("mysql://u@h/db")
    assert log_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert log_url(Path("x.db")).get_backend_name() == "sqlite"


def test_a_database_that_goes_away_is_reported_and_recovered_from(postgres: Postgres) -> None:
    log = PredictionLog(postgres.database())
    log.write([row("before", 1)])
    postgres.stop()
    try:
        with pytest.raises(LogUnavailable, match="cannot be written"):
            log.write([row("during", 2)])
        with pytest.raises(LogUnavailable, match="cannot be read"):
            log.count()
    finally:
        postgres.start()
    log.write([row("after", 3)])  # the pool reconnects by itself
    assert [r["request_id"] for r in log.query()] == ["after", "before"]
    log.close()


def test_a_log_of_the_previous_version_gains_users_when_opened(log_target: str | Path) -> None:
    """A schema-1 log (no `user` column, no tokens table), as the previous dermalens left it, is
    upgraded in place when a server opens it (the step only adds): its rows stay, without a user."""
    log = PredictionLog(log_target)
    log.write([row("old", 1)])
    log.close()
    engine = sa.create_engine(log_url(log_target))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX predictions_user"))
        conn.execute(sa.text('ALTER TABLE predictions DROP COLUMN "user"'))
        conn.execute(sa.text("DROP TABLE tokens"))
        conn.execute(sa.text("UPDATE dermalens_schema SET version = 1"))
    log = PredictionLog(log_target)
    log.write([row("new", 2, user="alice")])
    assert {r["request_id"]: r["user"] for r in log.query()} == {"old": None, "new": "alice"}
    assert log.count(HistoryFilter(user="alice")) == 1
    log.close()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version FROM dermalens_schema")).scalar_one() == SCHEMA_VERSION
        assert conn.execute(sa.text("SELECT count(*) FROM tokens")).scalar_one() == 0
    engine.dispose()
    assert migrate(log_target) == (SCHEMA_VERSION, SCHEMA_VERSION)


def test_purge_removes_exactly_the_rows_asked_for(log_target: str | Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    shared, own = images / "shared.jpg", images / "own.jpg"
    shared.write_bytes(b"a")
    own.write_bytes(b"b")
    log = PredictionLog(log_target)
    log.write(
        [row("r1", 1, user="alice", image_path=str(own)), row("r1", 2, user="alice", image_path=str(shared))]
    )
    log.write([row("r2", 3, user="bob", image_path=str(shared)), row("r3", 4, user="bob")])
    engine = sa.create_engine(log_url(log_target))
    with engine.begin() as conn:  # one row logged long ago
        conn.execute(
            sa.text(
                "UPDATE predictions SET created = '2020-01-01T00:00:00.000+00:00' WHERE request_id = 'r3'"
            )
        )
    engine.dispose()
    with pytest.raises(ValueError, match="say which rows"):
        log.purge(Purge())
    assert log.purge(Purge(before=datetime(2021, 1, 1, tzinfo=UTC))) == (1, 0)
    assert log.purge(Purge(request_id="nothing-like-it")) == (0, 0)
    assert log.purge(Purge(request_id="r1")) == (2, 1)  # own.jpg goes; shared.jpg is still bob's
    assert not own.exists() and shared.exists()
    assert [r["request_id"] for r in log.query()] == ["r2"]
    assert log.purge(Purge(user="bob")) == (1, 1)
    assert log.count() == 0 and not shared.exists()
    log.close()
