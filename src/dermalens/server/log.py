"""The prediction log: one SQLite row per predicted image (stdlib sqlite3).

Why one connection behind a lock: SQLite allows one writer at a time anyway, and a
single serialized connection cannot lose or interleave rows however many request
threads write at once. Each request's rows are written in one transaction, so a
request is logged completely or not at all. WAL mode lets other processes (a second
server, the `sqlite3` shell) read while the server writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dermalens.inference.metadata import METADATA_FIELDS


@dataclass
class LogRow:
    """What is logged for one image: the one row definition. The SQLite schema, the INSERT, the
    history columns (JSON and CSV) and `schemas.HistoryRow` are all derived from these fields."""

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


_SQL_TYPES = {str: "TEXT", int: "INTEGER", float: "REAL", bool: "INTEGER", dict: "TEXT"}
#: Fields stored but not shown as history columns (the JSON result; where the image was stored).
_HIDDEN = ("results", "image_path")


def _field_types() -> list[tuple[str, type, bool]]:
    """(name, Python type, optional) of each `LogRow` field, from its annotations."""
    import typing

    hints = typing.get_type_hints(LogRow)
    out = []
    for f in fields(LogRow):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = type(None) in typing.get_args(hint)
        base = typing.get_origin(args[0] if optional else hint) or (args[0] if optional else hint)
        out.append((f.name, base, optional))
    return out


def _schema() -> str:
    columns = ["    id            INTEGER PRIMARY KEY AUTOINCREMENT", "    created       TEXT    NOT NULL"]
    for name, kind, optional in _field_types():
        columns.append(f"    {name:<13} {_SQL_TYPES[kind]:<7}{'' if optional else ' NOT NULL'}".rstrip())
    return (
        "CREATE TABLE IF NOT EXISTS predictions (\n" + ",\n".join(columns) + "\n);\n"
        "CREATE INDEX IF NOT EXISTS predictions_created ON predictions (created);\n"
        "CREATE INDEX IF NOT EXISTS predictions_request ON predictions (request_id);\n"
    )


#: The table (created as `LogRow` says; `created` is ISO 8601 UTC).
SCHEMA = _schema()
#: Columns a history view shows and exports, in order.
COLUMNS: tuple[str, ...] = ("id", "created", *(n for n, _, _ in _field_types() if n not in _HIDDEN))
#: Patient metadata columns of the CSV export (read from each row's JSON result; no column of their own,
#: so logs written before metadata existed need no migration).
METADATA_COLUMNS = METADATA_FIELDS
_STORED = tuple(f.name for f in fields(LogRow))
_INSERT = (
    f"INSERT INTO predictions (created, {', '.join(_STORED)}) VALUES ({', '.join('?' * (len(_STORED) + 1))})"
)


def history_types() -> dict[str, tuple[type, bool]]:
    """(Python type, optional) of each history column, for `schemas.HistoryRow`."""
    types = {"id": (int, False), "created": (str, False)}
    types.update({n: (k, o) for n, k, o in _field_types() if n not in _HIDDEN})
    return types


def _value(row: LogRow, name: str) -> Any:
    value = getattr(row, name)
    if isinstance(value, bool):
        return int(value)
    return json.dumps(value) if isinstance(value, dict) else value


@dataclass(frozen=True)
class HistoryFilter:
    """History query: free text (file name, diagnosis, label, request id), decision, OOD flag."""

    q: str = ""
    decision: str | None = None
    ood: bool | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.q:
            like = "%" + self.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses.append(
                "("
                + " OR ".join(
                    f"{c} LIKE ? ESCAPE '\\'"
                    for c in ("filename", "prediction", "label", "request_id", "sha256")
                )
                + ")"
            )
            params += [like] * 5
        if self.decision:
            clauses.append("decision = ?")
            params.append(self.decision)
        if self.ood is not None:
            clauses.append("ood = ?")
            params.append(int(self.ood))
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


class PredictionLog:
    """Thread-safe append-only log; `write` is transactional per call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def write(self, rows: Sequence[LogRow]) -> None:
        """Append all `rows` in one transaction (all or none)."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        values = [(now, *(_value(r, name) for name in _STORED)) for r in rows]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(_INSERT, values)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def count(self, where: HistoryFilter | None = None) -> int:
        clause, params = (where or HistoryFilter()).where()
        with self._lock:
            return int(self._conn.execute(f"SELECT COUNT(*) FROM predictions{clause}", params).fetchone()[0])

    def query(
        self,
        where: HistoryFilter | None = None,
        limit: int | None = 100,
        offset: int = 0,
        before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; each row as a dict of `COLUMNS` plus `image_stored` and `metadata` (the
        patient data the model read, from the JSON result; None for image-only models)."""
        clause, params = (where or HistoryFilter()).where()
        if before_id is not None:
            clause += (" AND " if clause else " WHERE ") + "id < ?"
            params.append(before_id)
        sql = (
            f"SELECT {', '.join(COLUMNS)}, image_path IS NOT NULL AS image_stored, results"
            f" FROM predictions{clause}"
            " ORDER BY id DESC LIMIT ? OFFSET ?"
        )
        with self._lock:
            rows = self._conn.execute(sql, [*params, -1 if limit is None else limit, offset]).fetchall()
        return [_typed(dict(row)) for row in rows]

    def iter_all(self, where: HistoryFilter | None = None, chunk: int = 1000) -> Iterator[dict[str, Any]]:
        """Every matching row, newest first, in chunks by id: rows logged meanwhile neither
        shift nor repeat the export, and the lock is not held while the caller writes."""
        before: int | None = None
        while batch := self.query(where, chunk, 0, before):
            yield from batch
            before = batch[-1]["id"]


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
