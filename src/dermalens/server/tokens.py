"""API tokens: created once, shown once, stored only as a slow hash in the log database.

A token reads ``dl_<key>_<secret>``. The key (public, random) finds the token's row without
hashing anything, so a made-up token costs one indexed lookup, not a hash; the secret is checked
against a scrypt hash of the whole token (the standard library's `hashlib.scrypt`, 16 MiB and
≈ 50 ms each). A token verified once is remembered in memory by its SHA-256 together with the
hash it matched, and each request still reads its row: a revoked token stops working at once,
and a valid one does not pay scrypt on every request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dermalens.server.log import LogUnavailable, PredictionLog
from dermalens.server.tables import TOKENS

log = logging.getLogger(__name__)

PREFIX = "dl"
#: How often an open server looks for a first token.
WATCH_PERIOD_S = 2.0
#: scrypt cost: n=2^14, r=8 → 16 MiB and tens of milliseconds per hash (OWASP's minimum is 2^13).
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
NAME_HELP = "1 to 64 letters, digits, '.', '_', '-' or '@'"


@dataclass(frozen=True)
class Identity:
    """Who a request comes from: the token's name, whether it is an admin's, and its key."""

    name: str
    admin: bool
    key: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def hash_token(token: str, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` of `token` (a fresh random salt unless one is given)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(token.encode(), salt=salt, maxmem=64 * 1024 * 1024, dklen=32, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${_b64(salt)}${_b64(digest)}"


def matches(token: str, stored: str) -> bool:
    """Whether `token` hashes to `stored` (in constant time; with the parameters `stored` names)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        padded = salt + "=" * (-len(salt) % 4)
        params = {"n": int(n), "r": int(r), "p": int(p)}
        raw = base64.urlsafe_b64decode(padded)
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    found = hashlib.scrypt(token.encode(), salt=raw, maxmem=64 * 1024 * 1024, dklen=32, **params)
    return hmac.compare_digest(_b64(found), digest)


def split_token(token: str) -> str | None:
    """The key of a well-formed token, else None."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or len(parts[1]) != 12 or len(parts[2]) < 32:
        return None
    return parts[1]


def check_name(name: str) -> str:
    """`name` if it may name a token (it is stored with every row the token makes), else ValueError."""
    if not (1 <= len(name) <= 64) or not all(ch.isalnum() or ch in "._-@" for ch in name):
        raise ValueError(f"invalid token name {name!r}: use {NAME_HELP}")
    return name


class TokenStore:
    """The `tokens` table of a prediction log: create, list, revoke, verify."""

    def __init__(self, log: PredictionLog) -> None:
        self.log = log
        #: sha256(token) → the stored hash it was verified against (in this process only).
        self._verified: dict[str, str] = {}
        self._ever = False

    def create(self, name: str, admin: bool = False) -> str:
        """A new token for `name` (returned once, never stored); ValueError if the name was used."""
        check_name(name)
        key, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        token = f"{PREFIX}_{key}_{secret}"
        row = {"key": key, "name": name, "hash": hash_token(token), "admin": admin, "created": _now()}

        def insert(conn: Connection) -> None:
            if conn.execute(sa.select(TOKENS.c.name).where(TOKENS.c.name == name)).first():
                raise ValueError(f"a token named {name!r} exists or existed; revoked names are not reused")
            conn.execute(TOKENS.insert().values(**row))

        self.log.transaction(insert)
        return token

    def list(self) -> list[dict[str, Any]]:
        """Every token ever made (name, admin, created, revoked), oldest first; never a hash."""
        columns = (TOKENS.c.name, TOKENS.c.admin, TOKENS.c.created, TOKENS.c.revoked)
        query = sa.select(*columns).order_by(TOKENS.c.created)
        return [dict(r) for r in self.log.read(lambda conn: conn.execute(query).mappings().all())]

    def revoke(self, name: str) -> bool:
        """Revoke `name`'s token (its rows stay theirs); False if there is no such live token."""
        where = (TOKENS.c.name == name) & TOKENS.c.revoked.is_(None)
        query = TOKENS.update().where(where).values(revoked=_now())
        return bool(self.log.transaction(lambda conn: conn.execute(query).rowcount))

    def enabled(self) -> bool:
        """Whether any token was ever made: from then on every request needs one. Remembered once
        true (revoking every token must never open the server)."""
        if not self._ever:
            count = sa.select(sa.func.count()).select_from(TOKENS)
            self._ever = bool(self.log.read(lambda conn: conn.execute(count).scalar_one()))
        return self._ever

    @property
    def required(self) -> bool:
        """Whether requests need a token, as last found by `enabled` (no database access: asked on
        every request, and an open server must not pay a query, nor a wait, for each)."""
        return self._ever

    async def watch(self, period: float = WATCH_PERIOD_S) -> None:
        """Until the first token appears, look for it every `period` seconds (a token created while
        an open server runs closes it that soon); a database that is down is asked again later."""
        while True:
            try:
                if await anyio.to_thread.run_sync(self.enabled):
                    return
            except LogUnavailable as err:
                log.warning("cannot look for API tokens: %s", err)
            await anyio.sleep(period)

    def verify(self, token: str) -> Identity | None:
        """The identity of a live token, else None (unknown, wrong, malformed or revoked)."""
        key = split_token(token)
        if key is None:
            return None
        found = self.verify_key(key)
        if found is None:
            return None
        identity, stored = found
        fingerprint = hashlib.sha256(token.encode()).hexdigest()
        if self._verified.get(fingerprint) != stored:
            if not matches(token, stored):
                return None
            self._verified[fingerprint] = stored
        return identity

    def verify_key(self, key: str) -> tuple[Identity, str] | None:
        """The identity and stored hash of the live token with this key (a session carries only it)."""
        query = sa.select(TOKENS).where(TOKENS.c.key == key, TOKENS.c.revoked.is_(None))
        row = self.log.read(lambda conn: conn.execute(query).mappings().first())
        if row is None:
            return None
        return Identity(row["name"], bool(row["admin"]), row["key"]), row["hash"]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
