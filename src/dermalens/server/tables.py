"""The log database's tables: predictions (one row per image), API tokens, the schema version.

Why one module of table definitions: the log (`server.log`), its migrations
(`server.migrations`) and the token store (`server.tokens`) all read and write the same
tables, and a table defined once cannot drift between them.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import sqlalchemy as sa

from dermalens.core.metadata import METADATA_FIELDS


@dataclass
class LogRow:
    """What is logged for one image: the one row definition. The table, the INSERT, the history
    columns (JSON and CSV) and `schemas.HistoryRow` are all derived from these fields."""

    request_id: str
    model_id: str
    model_version: str
    #: The file's name, or its keyed hash (``hmac:…``) when the server runs with `--hash-filenames`.
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
    #: The name of the API token that made the request; None on a server without tokens.
    user: str | None = None
    #: The prediction set ("nv|mel", the named diagnosis first) and its size; None when refused or not fitted.
    prediction_set: str | None = None
    set_size: int | None = None


#: The schema this code reads and writes; `migrations.MIGRATIONS` brings older logs up to it.
#: 2: the `user` column and the `tokens` table (issue #31).
SCHEMA_VERSION = 3
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


METADATA = sa.MetaData()
#: The table, as `LogRow` says (`created` is ISO 8601 UTC text, which sorts as time does).
PREDICTIONS = sa.Table(
    "predictions",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created", sa.Text, nullable=False, index=True),
    *(sa.Column(name, _SQL_TYPES[kind](), nullable=optional) for name, kind, optional in _field_types()),
    sa.Index("predictions_request", "request_id"),
    sa.Index("predictions_user", "user"),
    sqlite_autoincrement=True,  # ids are never reused, so export chunks by id stay exact
)
VERSION_TABLE = sa.Table("dermalens_schema", METADATA, sa.Column("version", sa.Integer, nullable=False))
#: API tokens: only a slow hash of each is kept. `key` is the token's public prefix (found without
#: hashing); a revoked token keeps its row, so its name is never handed to someone else and a
#: server that once had tokens never falls back to open access.
TOKENS = sa.Table(
    "tokens",
    METADATA,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("hash", sa.Text, nullable=False),
    sa.Column("admin", sa.Boolean, nullable=False),
    sa.Column("created", sa.Text, nullable=False),
    sa.Column("revoked", sa.Text, nullable=True),
)

#: Columns a history view shows and exports, in order.
COLUMNS: tuple[str, ...] = ("id", "created", *(n for n, _, _ in _field_types() if n not in _HIDDEN))
#: Patient metadata columns of the CSV export (read from each row's JSON result; no column of their own,
#: so logs written before metadata existed need no migration).
METADATA_COLUMNS = METADATA_FIELDS
STORED = tuple(f.name for f in fields(LogRow))


def history_types() -> dict[str, tuple[type, bool]]:
    """(Python type, optional) of each history column, for `schemas.HistoryRow`."""
    types = {"id": (int, False), "created": (str, False)}
    types.update({n: (k, o) for n, k, o in _field_types() if n not in _HIDDEN})
    return types
