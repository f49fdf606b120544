"""The web page's login and logout (only on a server with tokens).

The login form posts a token; a valid one gets a session cookie (`server.sessions`) and is sent
where it was going. Both forms carry a CSRF value that must match a cookie of this site: without
it (another site posting the form) the answer is 403. Where a login sends the browser next is a
path on this server only, so the login page cannot be used to redirect to another site.
"""

from __future__ import annotations

import secrets

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from dermalens.server.errors import ApiError
from dermalens.server.routes.pages import render_page
from dermalens.server.sessions import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    new_session,
    read_session,
    same,
    set_cookie,
)
from dermalens.server.state import get_state

router = APIRouter(include_in_schema=False)
CSRF_MISSING = "missing or wrong CSRF value: reload the page and send its form again"


def safe_next(target: str | None) -> str:
    """A local path to go to after logging in ("/" for anything else: no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _tokens_on(request: Request) -> bool:
    tokens = get_state(request).tokens
    return tokens is not None and tokens.required


def _login_form(request: Request, target: str, failed: bool = False) -> Response:
    csrf = secrets.token_urlsafe(24)
    response = render_page(request, "login.html", "login", csrf=csrf, next=target, failed=failed)
    response.status_code = 401 if failed else 200
    set_cookie(request, response, LOGIN_COOKIE, csrf, max_age=3600)
    return response


@router.get("/login")
async def login_page(request: Request) -> Response:
    if not _tokens_on(request):
        return RedirectResponse("/", status_code=303)  # nothing to log in to
    return _login_form(request, safe_next(request.query_params.get("next")))


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the form's CSRF value and token; on success a session cookie and a redirect."""
    tokens = get_state(request).tokens
    if tokens is None or not _tokens_on(request):
        return RedirectResponse("/", status_code=303)
    form = await request.form()
    if not same(str(form.get(CSRF_FIELD) or ""), request.cookies.get(LOGIN_COOKIE)):
        raise ApiError(403, CSRF_MISSING)
    target = safe_next(str(form.get("next") or "/"))
    identity = await anyio.to_thread.run_sync(tokens.verify, str(form.get("token") or "").strip())
    if identity is None:
        return _login_form(request, target, failed=True)
    response = RedirectResponse(target, status_code=303)
    set_cookie(
        request,
        response,
        SESSION_COOKIE,
        new_session(get_state(request).settings.session_secret, identity.key),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session (its CSRF value, from the page's form, is required: no logout by other sites)."""
    session = read_session(get_state(request).settings.session_secret, request)
    form = await request.form()
    if session is not None and not same(str(form.get(CSRF_FIELD) or ""), session.get("csrf")):
        raise ApiError(403, CSRF_MISSING)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
