"""The web page's session: a signed cookie naming the token the user logged in with.

Why signed and stateless: several worker processes (and hosts sharing one PostgreSQL log) verify
the same cookie with the same secret and no session table. The cookie carries the token's public
key, never the token, and each request re-reads that token's row, so revoking it ends its
sessions at once. Why a CSRF value inside it: the page's POSTs must carry the same value in a
header or form field, which a page of another site cannot read (double submit, and SameSite=Strict
on top).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from fastapi import Request, Response

SESSION_COOKIE = "dermalens_session"
#: The login form's own CSRF value (before there is a session to hold one).
LOGIN_COOKIE = "dermalens_login"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
#: How long a login lasts (a working day).
MAX_AGE = 12 * 3600


def _mac(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def sign(secret: str, data: dict[str, Any]) -> str:
    """``payload.mac``: `data` as URL-safe base64 JSON with its HMAC-SHA256."""
    payload = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode())
    return payload.decode() + "." + _mac(secret, payload)


def unsign(secret: str, value: str) -> dict[str, Any] | None:
    """The data of a cookie this server signed and that has not expired, else None."""
    payload, _, mac = value.partition(".")
    if not hmac.compare_digest(_mac(secret, payload.encode()), mac):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("exp"), int) or data["exp"] < time.time():
        return None
    return data


def new_session(secret: str, key: str) -> str:
    """A session for the token with public `key`, with a fresh CSRF value."""
    return sign(secret, {"key": key, "csrf": secrets.token_urlsafe(24), "exp": int(time.time()) + MAX_AGE})


def read_session(secret: str, request: Request) -> dict[str, Any] | None:
    value = request.cookies.get(SESSION_COOKIE)
    return unsign(secret, value) if value else None


def same(given: str | None, expected: str | None) -> bool:
    """Constant-time equality of two CSRF values, neither missing nor empty."""
    return bool(given) and bool(expected) and hmac.compare_digest(str(given), str(expected))


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int = MAX_AGE) -> None:
    """HttpOnly (no script reads it), SameSite=Strict (no other site sends it), Secure under TLS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
