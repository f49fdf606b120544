"""Opening the log database (SQLite or PostgreSQL) and the errors every user of it shares.

Why apart from `server.log`: the prediction log, its migrations and the token store open
the same database the same way, and report it down or of another schema with the same errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError


class LogUnavailable(RuntimeError):
    """The log cannot be read or written now (database down, disk full, locked too long)."""


class LogSchemaError(RuntimeError):
    """The log's schema version is not the one this program reads; nothing was changed."""


#: Driver errors that mean the database is not there now (rather than a bug in a query).
DOWN = (sa.exc.OperationalError, sa.exc.InterfaceError)


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


def engine(url: URL) -> sa.Engine:
    """An engine for `url`: SQLite in WAL mode (readers never block the writer), PostgreSQL pooled."""
    if url.get_backend_name() == "sqlite":
        if url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        made = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(made, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:  # WAL: readers (the sqlite3 shell) never block writers
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return made
    return sa.create_engine(url, pool_pre_ping=True, pool_size=8, connect_args={"connect_timeout": 5})


def retrying(step: Callable[[], Any], attempts: int = 5) -> Any:
    """Run `step`, again after a moment if it fails: workers starting together on an empty database
    race to create the schema, and every one but the first then finds it made."""
    for attempt in range(attempts):
        try:
            return step()
        except SQLAlchemyError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def reason(err: SQLAlchemyError) -> str:
    """The driver's own first line (e.g. 'connection refused'), without SQLAlchemy's SQL dump."""
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__
