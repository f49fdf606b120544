"""The prediction log: one row per predicted image, in SQLite (the default) or PostgreSQL.

Why SQLAlchemy Core: one table definition (`server.tables`) and one set of queries serve both
the embedded SQLite file of a single server and a PostgreSQL server shared by several server
processes or hosts. Each request's rows are written in one transaction, so a request is logged
completely or not at all; a write that fails raises `LogUnavailable`, and the API answers
503 rather than report a prediction as logged that is not. The pool re-checks connections
before use, so the server recovers by itself when the database comes back. Schema versions
and their upgrades: `server.migrations`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from dermalens.inference.results import Prediction, set_cell
from dermalens.server import migrations
from dermalens.server.database import (
    DOWN,
    LogSchemaError,
    LogUnavailable,
    describe,
    engine,
    log_url,
    reason,
    retrying,
)
from dermalens.server.group_commit import GroupCommit
from dermalens.server.migrations import migrate
from dermalens.server.tables import (
    COLUMNS,
    METADATA_COLUMNS,
    PREDICTIONS,
    SCHEMA_VERSION,
    STORED,
    LogRow,
    history_types,
)

#: Names other modules and the tests read from here (the log's public face).
__all__ = [
    "COLUMNS",
    "METADATA_COLUMNS",
    "SCHEMA_VERSION",
    "HistoryFilter",
    "LogRow",
    "LogSchemaError",
    "LogUnavailable",
    "PredictionLog",
    "Purge",
    "describe",
    "history_types",
    "log_row",
    "log_url",
    "migrate",
]


#: Log columns that hold a result field of another name: the model's top class is logged as
#: `prediction` (kept for analysis also when refused), the truth as `label`.
_FROM_RESULT = {"prediction": "top_class", "label": "true_label"}


def log_row(result: Prediction, *, filename: str, **request: Any) -> LogRow:
    """The log's row of one judged result, derived from it alone: each column that is a result field
    is read from it (`_FROM_RESULT` for the renamed ones), the set as one cell ("nv|mel"), `results`
    its JSON form without the heatmap; `request` gives the rest (request_id, model_id,
    model_version, image_path, user). `filename` is what the log keeps of the name (the name itself
    or its keyed hash), in the JSON form too."""
    fields = type(result).model_fields
    own = {n: getattr(result, _FROM_RESULT.get(n, n)) for n in STORED if _FROM_RESULT.get(n, n) in fields}
    json_form = result.model_dump(mode="json", exclude={"heatmap_png"}) | {"filename": filename}
    derived = {"filename": filename, "prediction_set": set_cell(result.prediction_set), "results": json_form}
    return LogRow(**own | derived | request)


@dataclass(frozen=True)
class HistoryFilter:
    """History query: free text (file name, diagnosis, label, request id), decision, OOD flag, and
    whose rows (`user`; None = everyone's, as an admin or a server without tokens sees them)."""

    q: str = ""
    decision: str | None = None
    ood: bool | None = None
    user: str | None = None

    def clauses(self) -> list[sa.ColumnElement[bool]]:
        """Case-insensitive text match (ILIKE in PostgreSQL, lower() LIKE in SQLite); wildcards literal."""
        c = PREDICTIONS.c
        out: list[sa.ColumnElement[bool]] = []
        if self.q:
            like = "%" + self.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            names = ("filename", "prediction", "label", "request_id", "sha256")
            out.append(sa.or_(*(c[n].ilike(like, escape="\\") for n in names)))
        return out + equal(decision=self.decision or None, ood=self.ood, user=self.user)


def equal(**values: object) -> list[sa.ColumnElement[bool]]:
    """``column = value`` for each given value (None: no condition on that column)."""
    return [PREDICTIONS.c[name] == value for name, value in values.items() if value is not None]


class PredictionLog:
    """Thread-safe append-only log on SQLite or PostgreSQL; `write` is transactional per call."""

    def __init__(self, target: str | Path) -> None:
        self.url = log_url(target)
        self._engine = engine(self.url)
        try:
            retrying(self._prepare)
        except SQLAlchemyError as err:
            self._engine.dispose()
            raise LogUnavailable(f"cannot open the prediction log {self}: {reason(err)}") from None
        except LogSchemaError:
            self._engine.dispose()
            raise
        self._writer: GroupCommit[Sequence[LogRow]] = GroupCommit(self._insert, LogUnavailable)

    def __str__(self) -> str:
        return describe(self.url)

    def _prepare(self) -> None:
        """Create the schema in an empty database, upgrade it if only additions are missing; refuse
        a log of another version (`migrations.prepare`)."""
        with self._engine.begin() as conn:
            migrations.prepare(conn, str(self))

    def close(self) -> None:
        self._writer.close()
        self._engine.dispose()

    def write(self, rows: Sequence[LogRow]) -> None:
        """Append all `rows` (all or none), returning once they are committed; `LogUnavailable` if
        the database is not there. Concurrent calls share one transaction (`GroupCommit`)."""
        self._writer.submit(rows)

    def _insert(self, groups: list[Sequence[LogRow]]) -> None:
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        values = [
            {"created": now, **{name: _value(r, name) for name in STORED}} for rows in groups for r in rows
        ]
        if values:
            self.transaction(lambda conn: conn.execute(PREDICTIONS.insert(), values))

    def ping(self) -> None:
        """`LogUnavailable` unless the database answers now (a one-row query, whatever the log's size)."""
        self.read(lambda conn: conn.execute(sa.select(1)).scalar_one())

    def count(self, where: HistoryFilter | None = None) -> int:
        query = (
            sa.select(sa.func.count()).select_from(PREDICTIONS).where(*(where or HistoryFilter()).clauses())
        )
        return int(self.read(lambda conn: conn.execute(query).scalar_one()))

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
        rows = self.read(lambda conn: conn.execute(query).mappings().all())
        return [_typed(dict(row)) for row in rows]

    def iter_all(self, where: HistoryFilter | None = None, chunk: int = 1000) -> Iterator[dict[str, Any]]:
        """Every matching row, newest first, in chunks by id: rows logged meanwhile neither
        shift nor repeat the export, and no connection is held while the caller writes."""
        before: int | None = None
        while batch := self.query(where, chunk, 0, before):
            yield from batch
            before = batch[-1]["id"]

    def purge(self, where: Purge) -> tuple[int, int]:
        """Delete the rows `where` selects, in one transaction, then the stored images no row refers
        to any more; (rows deleted, image files deleted)."""
        clauses = where.clauses()
        c = PREDICTIONS.c

        def delete(conn: Connection) -> tuple[int, set[str]]:
            paths = set(
                conn.execute(sa.select(c.image_path).where(*clauses, c.image_path.is_not(None))).scalars()
            )
            deleted = conn.execute(PREDICTIONS.delete().where(*clauses)).rowcount
            if paths:
                paths -= set(conn.execute(sa.select(c.image_path).where(c.image_path.in_(paths))).scalars())
            return deleted, paths

        deleted, orphans = self.transaction(delete)
        removed = 0
        for path in orphans:
            if Path(path).is_file():
                Path(path).unlink()
                removed += 1
        return deleted, removed

    def read(self, run: Callable[[Connection], Any]) -> Any:
        """`run(connection)` for reading; `LogUnavailable` if the database is not there."""
        return self._on(self._engine.connect, run, "read")

    def transaction(self, run: Callable[[Connection], Any]) -> Any:
        """`run(connection)` in one transaction (committed, or rolled back if it raises)."""
        return self._on(self._engine.begin, run, "written")

    @staticmethod
    def _on(connect: Callable[[], Any], run: Callable[[Connection], Any], verb: str) -> Any:
        try:
            with connect() as conn:
                return run(conn)
        except DOWN as err:
            raise LogUnavailable(f"the prediction log cannot be {verb} ({reason(err)})") from None


@dataclass(frozen=True)
class Purge:
    """Which rows `PredictionLog.purge` erases: logged before a time, of one request, of one user.
    At least one is required: erasing everything is not something to ask for by leaving all out."""

    before: datetime | None = None
    request_id: str | None = None
    user: str | None = None

    def clauses(self) -> list[sa.ColumnElement[bool]]:
        out = equal(request_id=self.request_id, user=self.user)
        if self.before is not None:  # `created` is ISO 8601 UTC text: text order is time order
            moment = self.before.astimezone(UTC).isoformat(timespec="milliseconds")
            out.append(PREDICTIONS.c.created < moment)
        if not out:
            raise ValueError("say which rows to purge: a date (before), a request id or a user")
        return out


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
