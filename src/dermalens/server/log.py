"""The prediction log: one row per predicted image, in SQLite (the default) or PostgreSQL.

Why SQLAlchemy Core: one table definition and one set of queries serve both the embedded
SQLite file of a single server and a PostgreSQL server shared by several server processes
or hosts. Each request's rows are written in one transaction, so a request is logged
completely or not at all; a write that fails raises `LogUnavailable`, and the API answers
503 rather than report a prediction as logged that is not. The pool re-checks connections
before use, so the server recovers by itself when the database comes back.

Why a version table: a log outlives the program that writes it. The schema carries its
version; a log of another version is refused with a clear message, and upgrading it is an
explicit step (`dermalens migrate-log`), never a side effect of starting a server.
"""

from __future__ import annotations

import json
import time
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from dermalens.core.metadata import METADATA_FIELDS


@dataclass
class LogRow:
    """What is logged for one image: the one row definition. The table, the INSERT, the history
    columns (JSON and CSV) and `schemas.HistoryRow` are all derived from these fields."""

    request_id: str
    model_id: str
    model_version: str
    filename: str
    sha256: str
    size_bytes: int
    width: int | None
    height: int | None
    #: The model's top class (kept for analysis also when the decision is "refused").
    prediction: str
    decision: str
    p_malignant: float
    ood: bool
    ood_score: float | None
    label: str | None
    correct: bool | None
    #: The image's full JSON result (no heatmap; with the patient "metadata" the model read).
    results: dict[str, Any]
    image_path: str | None = None
    #: The prediction set ("nv|mel", most probable first) and its size; None when refused or not fitted.
    prediction_set: str | None = None
    set_size: int | None = None


#: The schema this code reads and writes; `MIGRATIONS` brings older logs up to it.
SCHEMA_VERSION = 2
_SQL_TYPES: dict[type, Callable[[], sa.types.TypeEngine[Any]]] = {
    str: sa.Text,
    int: sa.Integer,
    float: sa.Float,
    bool: sa.Boolean,
    dict: sa.Text,  # JSON text: the same in SQLite and PostgreSQL, and in logs written before
}
#: Fields stored but not shown as history columns (the JSON result; where the image was stored).
_HIDDEN = ("results", "image_path")


def _field_types() -> list[tuple[str, type, bool]]:
    """(name, Python type, optional) of each `LogRow` field, from its annotations."""
    hints = typing.get_type_hints(LogRow)
    out = []
    for f in fields(LogRow):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = type(None) in typing.get_args(hint)
        base = typing.get_origin(args[0] if optional else hint) or (args[0] if optional else hint)
        out.append((f.name, base, optional))
    return out


_METADATA = sa.MetaData()
#: The table, as `LogRow` says (`created` is ISO 8601 UTC text, which sorts as time does).
PREDICTIONS = sa.Table(
    "predictions",
    _METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created", sa.Text, nullable=False, index=True),
    *(sa.Column(name, _SQL_TYPES[kind](), nullable=optional) for name, kind, optional in _field_types()),
    sa.Index("predictions_request", "request_id"),
    sqlite_autoincrement=True,  # ids are never reused, so export chunks by id stay exact
)
VERSION_TABLE = sa.Table("dermalens_schema", _METADATA, sa.Column("version", sa.Integer, nullable=False))

#: Columns a history view shows and exports, in order.
COLUMNS: tuple[str, ...] = ("id", "created", *(n for n, _, _ in _field_types() if n not in _HIDDEN))
#: Patient metadata columns of the CSV export (read from each row's JSON result; no column of their own,
#: so logs written before metadata existed need no migration).
METADATA_COLUMNS = METADATA_FIELDS
_STORED = tuple(f.name for f in fields(LogRow))


def _stamp_legacy(conn: Connection) -> None:
    """0 → 1: logs from before the version table have exactly schema 1; only the stamp is missing."""


def _add_sets(conn: Connection) -> None:
    """1 → 2: the prediction set's columns (rows logged before them have none: NULL); a column
    already there is left as it is."""
    present = {c["name"] for c in sa.inspect(conn).get_columns(PREDICTIONS.name)}
    for name in ("prediction_set", "set_size"):
        if name in present:
            continue
        column = PREDICTIONS.c[name]
        conn.execute(
            sa.text(f"ALTER TABLE predictions ADD COLUMN {name} {column.type.compile(conn.dialect)}")
        )


#: version → the step that upgrades a log of that version to the next one.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {0: _stamp_legacy, 1: _add_sets}


def history_types() -> dict[str, tuple[type, bool]]:
    """(Python type, optional) of each history column, for `schemas.HistoryRow`."""
    types = {"id": (int, False), "created": (str, False)}
    types.update({n: (k, o) for n, k, o in _field_types() if n not in _HIDDEN})
    return types


class LogUnavailable(RuntimeError):
    """The log cannot be read or written now (database down, disk full, locked too long)."""


#: Driver errors that mean the database is not there now (rather than a bug in a query).
_DOWN = (sa.exc.OperationalError, sa.exc.InterfaceError)


class LogSchemaError(RuntimeError):
    """The log's schema version is not the one this program reads; nothing was changed."""


@dataclass(frozen=True)
class HistoryFilter:
    """History query: free text (file name, diagnosis, label, request id), decision, OOD flag."""

    q: str = ""
    decision: str | None = None
    ood: bool | None = None

    def clauses(self) -> list[sa.ColumnElement[bool]]:
        """Case-insensitive text match (ILIKE in PostgreSQL, lower() LIKE in SQLite); wildcards literal."""
        c = PREDICTIONS.c
        out: list[sa.ColumnElement[bool]] = []
        if self.q:
            like = "%" + self.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            names = ("filename", "prediction", "label", "request_id", "sha256")
            out.append(sa.or_(*(c[n].ilike(like, escape="\\") for n in names)))
        if self.decision:
            out.append(c.decision == self.decision)
        if self.ood is not None:
            out.append(c.ood == self.ood)
        return out


def log_url(target: str | Path) -> URL:
    """A SQLAlchemy URL from a file path (SQLite) or a URL; ``postgresql://`` gets the psycopg driver."""
    if isinstance(target, Path) or "://" not in str(target):
        return URL.create("sqlite", database=str(Path(target).expanduser()))
    url = make_url(str(target))
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(
            f"unsupported log database {url.drivername!r}; use a SQLite path or postgresql://..."
        )
    return url


def describe(target: str | Path | URL) -> str:
    """The log's URL without its password, for messages and the start-up line."""
    return (target if isinstance(target, URL) else log_url(target)).render_as_string(hide_password=True)


def _engine(url: URL) -> sa.Engine:
    if url.get_backend_name() == "sqlite":
        if url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:  # WAL: readers (the sqlite3 shell) never block writers
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=8, connect_args={"connect_timeout": 5})


def _version(conn: Connection) -> int | None:
    """The log's schema version; 0 for a log from before versioning; None for an empty database."""
    tables = set(sa.inspect(conn).get_table_names())
    if VERSION_TABLE.name in tables:
        return int(conn.execute(sa.select(sa.func.max(VERSION_TABLE.c.version))).scalar_one() or 0)
    return 0 if PREDICTIONS.name in tables else None


def _create(conn: Connection) -> None:
    """The current schema, stamped with its version, in an empty database."""
    _METADATA.create_all(conn)
    conn.execute(VERSION_TABLE.insert().values(version=SCHEMA_VERSION))


def _retrying(step: Callable[[], Any], attempts: int = 5) -> Any:
    """Run `step`, again after a moment if it fails: workers starting together on an empty database
    race to create the schema, and every one but the first then finds it made."""
    for attempt in range(attempts):
        try:
            return step()
        except SQLAlchemyError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


class PredictionLog:
    """Thread-safe append-only log on SQLite or PostgreSQL; `write` is transactional per call."""

    def __init__(self, target: str | Path) -> None:
        self.url = log_url(target)
        self._engine = _engine(self.url)
        try:
            _retrying(self._prepare)
        except SQLAlchemyError as err:
            self._engine.dispose()
            raise LogUnavailable(f"cannot open the prediction log {self}: {_reason(err)}") from None
        except LogSchemaError:
            self._engine.dispose()
            raise

    def __str__(self) -> str:
        return describe(self.url)

    def _prepare(self) -> None:
        """Create the schema in an empty database; refuse a log of another version."""
        with self._engine.begin() as conn:
            version = _version(conn)
            if version is None:
                _create(conn)
            elif version > SCHEMA_VERSION:
                raise LogSchemaError(
                    f"the prediction log {self} has schema version {version}, written by a newer dermalens; "
                    f"this one reads version {SCHEMA_VERSION}: upgrade dermalens or use another log"
                )
            elif version < SCHEMA_VERSION:
                raise LogSchemaError(
                    f"the prediction log {self} has schema version {version}; this dermalens needs version "
                    f"{SCHEMA_VERSION}. Back it up, then run: dermalens migrate-log --log-url '{self}'"
                )

    def close(self) -> None:
        self._engine.dispose()

    def write(self, rows: Sequence[LogRow]) -> None:
        """Append all `rows` in one transaction (all or none); `LogUnavailable` if the database is not there."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        values = [{"created": now, **{name: _value(r, name) for name in _STORED}} for r in rows]
        try:
            with self._engine.begin() as conn:
                conn.execute(PREDICTIONS.insert(), values)
        except _DOWN as err:
            raise LogUnavailable(f"the prediction log cannot be written ({_reason(err)})") from None

    def ping(self) -> None:
        """`LogUnavailable` unless the database answers now (a one-row query, whatever the log's size)."""
        self._read(lambda conn: conn.execute(sa.select(1)).scalar_one())

    def count(self, where: HistoryFilter | None = None) -> int:
        query = (
            sa.select(sa.func.count()).select_from(PREDICTIONS).where(*(where or HistoryFilter()).clauses())
        )
        return int(self._read(lambda conn: conn.execute(query).scalar_one()))

    def query(
        self,
        where: HistoryFilter | None = None,
        limit: int | None = 100,
        offset: int = 0,
        before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; each row as a dict of `COLUMNS` plus `image_stored` and `metadata` (the
        patient data the model read, from the JSON result; None for image-only models)."""
        c = PREDICTIONS.c
        clauses = (where or HistoryFilter()).clauses()
        if before_id is not None:
            clauses.append(c.id < before_id)
        query = (
            sa.select(*(c[n] for n in COLUMNS), c.image_path.is_not(None).label("image_stored"), c.results)
            .where(*clauses)
            .order_by(c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        rows = self._read(lambda conn: conn.execute(query).mappings().all())
        return [_typed(dict(row)) for row in rows]

    def iter_all(self, where: HistoryFilter | None = None, chunk: int = 1000) -> Iterator[dict[str, Any]]:
        """Every matching row, newest first, in chunks by id: rows logged meanwhile neither
        shift nor repeat the export, and no connection is held while the caller writes."""
        before: int | None = None
        while batch := self.query(where, chunk, 0, before):
            yield from batch
            before = batch[-1]["id"]

    def _read(self, run: Callable[[Connection], Any]) -> Any:
        try:
            with self._engine.connect() as conn:
                return run(conn)
        except _DOWN as err:
            raise LogUnavailable(f"the prediction log cannot be read ({_reason(err)})") from None


def migrate(target: str | Path) -> tuple[int | None, int]:
    """Upgrade the log at `target` to `SCHEMA_VERSION`, one step per version, in one transaction.
    Returns (version before, version after); an empty database (before: None) gets the schema."""
    url = log_url(target)
    engine = _engine(url)
    try:
        return _migrate(engine)
    except _DOWN as err:
        raise LogUnavailable(f"cannot open the prediction log {describe(url)}: {_reason(err)}") from None
    finally:
        engine.dispose()


def _migrate(engine: sa.Engine) -> tuple[int | None, int]:
    """The steps of `migrate`, in one transaction."""
    with engine.begin() as conn:
        before = _version(conn)
        if before is None:
            _create(conn)
            return None, SCHEMA_VERSION
        if before > SCHEMA_VERSION:
            raise LogSchemaError(f"schema version {before} is newer than this dermalens ({SCHEMA_VERSION})")
        for version in range(before, SCHEMA_VERSION):
            MIGRATIONS[version](conn)
        VERSION_TABLE.create(conn, checkfirst=True)
        conn.execute(VERSION_TABLE.delete())
        conn.execute(VERSION_TABLE.insert().values(version=SCHEMA_VERSION))
        return before, SCHEMA_VERSION


def _reason(err: SQLAlchemyError) -> str:
    """The driver's own first line (e.g. 'connection refused'), without SQLAlchemy's SQL dump."""
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _value(row: LogRow, name: str) -> Any:
    value = getattr(row, name)
    return json.dumps(value) if isinstance(value, dict) else value


def _typed(row: dict[str, Any]) -> dict[str, Any]:
    row["ood"] = bool(row["ood"])
    row["correct"] = None if row["correct"] is None else bool(row["correct"])
    row["image_stored"] = bool(row["image_stored"])
    row["metadata"] = _metadata(row.pop("results"))
    return row


def _metadata(results: str | None) -> dict[str, Any] | None:
    """The "metadata" object of a stored JSON result, or None (image-only model, older or odd rows)."""
    try:
        value = json.loads(results or "null")
    except ValueError:
        return None
    metadata = value.get("metadata") if isinstance(value, dict) else None
    return metadata if isinstance(metadata, dict) else None
