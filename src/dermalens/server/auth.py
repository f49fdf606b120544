"""Who may use the server: FastAPI dependencies that read a token or a session, and the start check.

The rules (issue #31): on loopback with no token ever made, everything is open, as before. Once
any token exists (in the log database), every route but `/api/v1/health`, static files and the
login page needs ``Authorization: Bearer TOKEN`` or the web page's session cookie (401 otherwise,
with a JSON `detail`); a session's POSTs also need its CSRF value (403). ``--no-auth`` opens a
server on purpose. A non-loopback host with neither refuses to start (`exposure_problem`).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated
from urllib.parse import quote

import anyio.to_thread
from fastapi import Depends, Request

from dermalens.server.errors import ApiError
from dermalens.server.sessions import CSRF_HEADER, read_session, same
from dermalens.server.settings import ServerSettings
from dermalens.server.state import get_state
from dermalens.server.tokens import Identity

#: Methods that change nothing, so a session needs no CSRF value for them.
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
HOW = (
    "send 'Authorization: Bearer TOKEN' (an administrator creates one with `dermalens token create NAME`) "
    "or log in at /login"
)
_UNSET = object()


def is_loopback(host: str) -> bool:
    """Whether `host` listens on this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name, or "" (every interface): reachable from elsewhere


def exposure_problem(settings: ServerSettings, tokens_exist: bool) -> str | None:
    """Why this server must not start as configured, or None (issue #31: closed by default)."""
    if is_loopback(settings.host) or settings.no_auth or tokens_exist:
        return None
    where = f"--log-url '{settings.log_url}'" if settings.log_url else f"--log-db {settings.log_db}"
    if settings.log_target() is None:
        return (
            f"refusing to serve on {settings.host!r} without credentials: tokens live in the prediction "
            "log, which is off. Turn the log on and create a token, or pass --no-auth to serve openly"
        )
    return (
        f"refusing to serve on {settings.host!r} (reachable from other machines) without credentials. "
        f"Create a token first: dermalens token create NAME --admin {where}; "
        "or pass --no-auth to serve openly on purpose"
    )


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, detail, headers={"WWW-Authenticate": 'Bearer realm="dermalens"'})


async def current_user(request: Request) -> Identity | None:
    """The identity behind `request`, None on a server without tokens; 401/403/429 otherwise.
    Remembered on the request, so the multipart check and the route ask only once."""
    known = getattr(request.state, "identity", _UNSET)
    if known is not _UNSET:
        return known  # type: ignore[return-value]
    state = get_state(request)
    tokens = state.tokens
    identity = None
    if tokens is not None and tokens.required:
        identity = await _identify(request)
        state.rate.check(identity.name)
    request.state.identity = identity
    return identity


async def _identify(request: Request) -> Identity:
    """The token of the Authorization header, else the session cookie's; never neither."""
    state = get_state(request)
    assert state.tokens is not None
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized(f"malformed Authorization header; {HOW}")
        identity = await anyio.to_thread.run_sync(state.tokens.verify, token.strip())
        if identity is None:
            raise _unauthorized("invalid or revoked token; ask an administrator for a valid one")
        return identity
    session = read_session(state.settings.session_secret, request)
    if session is None:
        raise _unauthorized(f"this server needs a token: {HOW}")
    found = await anyio.to_thread.run_sync(state.tokens.verify_key, str(session.get("key")))
    if found is None:
        raise _unauthorized("the token of this session was revoked; log in again at /login")
    if request.method not in SAFE_METHODS and not same(request.headers.get(CSRF_HEADER), session.get("csrf")):
        raise ApiError(403, f"missing or wrong CSRF value: send the page's value in the {CSRF_HEADER} header")
    request.state.csrf = session.get("csrf")
    return found[0]


def scope_of(identity: Identity | None) -> str | None:
    """Whose log rows `identity` sees: None = everyone's (an admin; a server without tokens)."""
    return None if identity is None or identity.admin else identity.name


def client_key(request: Request, identity: Identity | None) -> str | None:
    """Who a per-client limit counts: the token, or under --no-auth the client address; on an
    open loopback server (no tokens, as before) nobody."""
    if identity is not None:
        return "token:" + identity.name
    if get_state(request).settings.no_auth:
        return "address:" + (request.client.host if request.client else "?")
    return None


#: A route parameter: the caller's identity (None when the server has no tokens).
User = Annotated[Identity | None, Depends(current_user)]


async def page_user(request: Request) -> Identity | None:
    """`current_user` for a web page: a visitor without a session is sent to the login form."""
    try:
        return await current_user(request)
    except ApiError as err:
        if err.status_code != 401:
            raise
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise ApiError(
            303, "log in first", headers={"Location": "/login?next=" + quote(target, safe="")}
        ) from None


#: A page's parameter: the visitor's identity (None without tokens); without a session, a redirect.
PageUser = Annotated[Identity | None, Depends(page_user)]
