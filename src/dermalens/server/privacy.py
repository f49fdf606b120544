"""Data protection of the log: file names as a keyed hash, and rows past their retention purged.

Why a keyed hash (HMAC-SHA256) and not a plain one: file names are short and guessable
("smith_john_back.jpg"); without the key nobody can test a guess against the log, while the
same name still hashes the same, so rows of one file can be found together by whoever holds
the key. The key lives in its own file (created once, readable by its owner only), not in the
database whose rows it protects.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

from dermalens.server.log import PredictionLog, Purge

log = logging.getLogger(__name__)

#: How often a retention purge runs while the server serves.
RETENTION_PERIOD_S = 24 * 3600


def load_key(path: Path) -> bytes:
    """The key in `path`, made (32 random bytes, hex, mode 0600) when the file does not exist yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
    key = path.read_text(encoding="utf-8").strip().encode()
    if len(key) < 16:
        raise ValueError(f"the file name key in {path} is too short: at least 16 characters")
    return key


class NameHasher:
    """What a file name is logged as: itself without a key, ``hmac:<hex>`` with one."""

    def __init__(self, key: bytes | None) -> None:
        self.key = key

    def __call__(self, name: str) -> str:
        if self.key is None:
            return name
        return "hmac:" + hmac.new(self.key, name.encode(), hashlib.sha256).hexdigest()[:32]


def purge_expired(prediction_log: PredictionLog, days: int) -> int:
    """Delete rows logged more than `days` ago; how many."""
    deleted, _ = prediction_log.purge(Purge(before=datetime.now(UTC) - timedelta(days=days)))
    if deleted:
        log.info("retention: purged %d log row(s) older than %d day(s)", deleted, days)
    return deleted


async def retention_loop(prediction_log: PredictionLog, days: int) -> None:
    """Purge at start, then once a day, until cancelled (a database that is down waits for the next day)."""
    while True:
        try:
            await anyio.to_thread.run_sync(purge_expired, prediction_log, days)
        except Exception:  # the database down (LogUnavailable) or worse: serving goes on, retried tomorrow
            log.exception("retention purge failed; the next one runs in %d s", RETENTION_PERIOD_S)
        await anyio.sleep(RETENTION_PERIOD_S)
