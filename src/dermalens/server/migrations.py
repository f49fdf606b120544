"""The log's schema versions and the steps between them.

Why a version table: a log outlives the program that writes it. The schema carries its
version; a log of a newer version is refused with a clear message. Upgrading is an explicit
step (`dermalens migrate-log`), except for steps that only *add* (a nullable column, a new
table): those run when the log is opened, so a deployment keeps working after an upgrade of
dermalens, and an older dermalens then refuses the log as newer rather than write rows without
the new column.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dermalens.server.database import DOWN, LogSchemaError, LogUnavailable, describe, engine, log_url, reason
from dermalens.server.tables import METADATA, PREDICTIONS, SCHEMA_VERSION, TOKENS, VERSION_TABLE

log = logging.getLogger(__name__)


def _stamp_legacy(conn: Connection) -> None:
    """0 → 1: logs from before the version table have exactly schema 1; only the stamp is missing."""


def _add_users(conn: Connection) -> None:
    """1 → 2: who made each row (`user`, NULL for the rows before) and the `tokens` table; each
    only if missing (a log stamped by hand, or upgraded halfway by a step that was interrupted)."""
    inspector = sa.inspect(conn)
    if "user" not in {c["name"] for c in inspector.get_columns(PREDICTIONS.name)}:
        column = conn.dialect.identifier_preparer.quote("user")  # a reserved word in PostgreSQL
        conn.execute(sa.text(f"ALTER TABLE predictions ADD COLUMN {column} TEXT"))
    if "predictions_user" not in {i["name"] for i in inspector.get_indexes(PREDICTIONS.name)}:
        next(i for i in PREDICTIONS.indexes if i.name == "predictions_user").create(conn)
    TOKENS.create(conn, checkfirst=True)


def _add_sets(conn: Connection) -> None:
    """2 → 3: the prediction set's columns (rows logged before them have none: NULL); a column
    already there is left as it is."""
    present = {c["name"] for c in sa.inspect(conn).get_columns(PREDICTIONS.name)}
    for name in ("prediction_set", "set_size"):
        if name not in present:
            kind = PREDICTIONS.c[name].type.compile(conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE predictions ADD COLUMN {name} {kind}"))


#: version → the step that upgrades a log of that version to the next one.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {0: _stamp_legacy, 1: _add_users, 2: _add_sets}
#: The oldest version from which every step to `SCHEMA_VERSION` only adds, and runs on open.
ADDITIVE_FROM = 1


def version(conn: Connection) -> int | None:
    """The log's schema version; 0 for a log from before versioning; None for an empty database."""
    tables = set(sa.inspect(conn).get_table_names())
    if VERSION_TABLE.name in tables:
        return int(conn.execute(sa.select(sa.func.max(VERSION_TABLE.c.version))).scalar_one() or 0)
    return 0 if PREDICTIONS.name in tables else None


def create(conn: Connection) -> None:
    """The current schema, stamped with its version, in an empty database."""
    METADATA.create_all(conn)
    conn.execute(VERSION_TABLE.insert().values(version=SCHEMA_VERSION))


def prepare(conn: Connection, name: str) -> None:
    """On opening a log: create the schema in an empty database, run additive upgrades, refuse
    a log of a newer version or one that needs an explicit `dermalens migrate-log`."""
    found = version(conn)
    if found is None:
        create(conn)
    elif found > SCHEMA_VERSION:
        raise LogSchemaError(
            f"the prediction log {name} has schema version {found}, written by a newer dermalens; "
            f"this one reads version {SCHEMA_VERSION}: upgrade dermalens or use another log"
        )
    elif found >= ADDITIVE_FROM and found < SCHEMA_VERSION:
        log.warning(
            "upgrading the prediction log %s from schema version %d to %d", name, found, SCHEMA_VERSION
        )
        _upgrade(conn, found)
    elif found < SCHEMA_VERSION:
        raise LogSchemaError(
            f"the prediction log {name} has schema version {found}; this dermalens needs version "
            f"{SCHEMA_VERSION}. Back it up, then run: dermalens migrate-log --log-url '{name}'"
        )


def _upgrade(conn: Connection, before: int) -> None:
    for step in range(before, SCHEMA_VERSION):
        MIGRATIONS[step](conn)
    VERSION_TABLE.create(conn, checkfirst=True)
    conn.execute(VERSION_TABLE.delete())
    conn.execute(VERSION_TABLE.insert().values(version=SCHEMA_VERSION))


def migrate(target: str | Path) -> tuple[int | None, int]:
    """Upgrade the log at `target` to `SCHEMA_VERSION`, one step per version, in one transaction.
    Returns (version before, version after); an empty database (before: None) gets the schema."""
    url = log_url(target)
    made = engine(url)
    try:
        with made.begin() as conn:
            before = version(conn)
            if before is None:
                create(conn)
                return None, SCHEMA_VERSION
            if before > SCHEMA_VERSION:
                raise LogSchemaError(
                    f"schema version {before} is newer than this dermalens ({SCHEMA_VERSION})"
                )
            if before < SCHEMA_VERSION:
                _upgrade(conn, before)
            return before, SCHEMA_VERSION
    except DOWN as err:
        raise LogUnavailable(f"cannot open the prediction log {describe(url)}: {reason(err)}") from None
    finally:
        made.dispose()
