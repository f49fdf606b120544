"""Every error becomes a JSON ``{"detail": ...}`` answer with the right status; nothing becomes a bare 500.

Why a body-size middleware of our own: the byte limit must hold before the multipart
parser spools anything to disk, for chunked uploads too, and the 413 must reach the
client. Closing the socket while a client is still sending makes it see a reset instead
of the answer, so the rest of an oversized body is read and discarded (up to a bound).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dermalens.server.database import LogUnavailable

log = logging.getLogger(__name__)

#: Bytes of an oversized body read and dropped so the client gets the 413; beyond, the socket closes.
DRAIN_LIMIT = 64 * 1024 * 1024
#: Longest query string accepted (the API's queries are a few short parameters).
QUERY_LIMIT = 16 * 1024


class ApiError(StarletteHTTPException):
    """An expected failure: status, a readable `detail`, and optional extra JSON fields."""

    def __init__(
        self, status_code: int, detail: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(status_code=status_code, detail=detail, headers=headers)
        self.extra = extra


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:g} MB"


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` with 413 (Content-Length or counted while streaming)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def error(self) -> ApiError:
        return ApiError(
            413,
            f"request body is larger than {_mb(self.max_bytes)}; send images of together at most "
            f"{_mb(self.max_bytes)} (resize very large photos)",
            max_bytes=self.max_bytes,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if len(query) > QUERY_LIMIT:
            detail = (
                f"query string of {len(query)} bytes is too long; at most {QUERY_LIMIT} bytes are accepted"
            )
            await _json(414, {"detail": detail})(scope, receive, send)
            return
        declared = _content_length(scope)
        chunked = any(name == b"transfer-encoding" for name, _ in scope.get("headers", []))
        has_body = bool(declared) or (declared is None and chunked)  # a GET has none: nothing to drain
        drainable = has_body and (declared is None or declared <= self.max_bytes + DRAIN_LIMIT)
        received = 0
        finished = False

        async def drain() -> None:
            """Read and drop the rest of the body (bounded), so an early answer is not lost to a reset."""
            nonlocal received, finished
            while drainable and not finished and received <= self.max_bytes + DRAIN_LIMIT:
                message = await receive()
                received += len(message.get("body", b""))
                finished = message["type"] != "http.request" or not message.get("more_body", False)

        async def limited_receive() -> Message:
            nonlocal received, finished
            if declared is not None and declared > self.max_bytes:
                await drain()
                raise self.error()
            message = await receive()
            received += len(message.get("body", b""))
            finished = message["type"] != "http.request" or not message.get("more_body", False)
            if received > self.max_bytes:
                await drain()
                raise self.error()
            return message

        started = False

        async def draining_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                await drain()  # e.g. a 415 sent before the body was read
            await send(message)

        try:
            await self.app(scope, limited_receive, draining_send)
        except ApiError as err:  # raised from receive outside FastAPI's handlers
            if started:
                raise
            await _json(err.status_code, {"detail": err.detail, **err.extra})(scope, receive, draining_send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    extra = exc.extra if isinstance(exc, ApiError) else {}
    detail = exc.detail
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such resource: {request.url.path}; the API lives under /api/v1 (see /docs)"
    elif exc.status_code == 405:
        detail = f"method {request.method} is not allowed on {request.url.path}"
    return _json(exc.status_code, {"detail": detail, **extra}, dict(exc.headers or {}))


#: Turns FastAPI's errors on a form field into the API's sentence (`server.form.invalid_field`).
FieldSentence = Callable[[list[dict[str, Any]]], str | None]


def validation_error_handler(field_sentence: FieldSentence) -> Callable[[Request, Exception], Any]:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return validation_error(exc, field_sentence)

    return handler


def validation_error(exc: Exception, field_sentence: FieldSentence) -> JSONResponse:
    """FastAPI's parameter errors, as one readable sentence plus the structured list."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "field": ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query")),
            "message": e.get("msg"),
        }
        for e in exc.errors()
    ]
    detail = field_sentence(list(exc.errors())) or "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return _json(422, {"detail": detail or "invalid request", "errors": errors})


async def log_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The prediction log's database is down: 503 with its reason; the client may retry."""
    return _json(503, {"detail": f"{exc}; nothing was logged, try again later"}, {"Retry-After": "5"})


async def client_gone(request: Request, exc: Exception) -> Response:
    """A client that hung up before its request was read (a closed tab, a dropped connection):
    nothing is wrong on this side, so one info line, no traceback; the answer reaches no one."""
    log.info("client disconnected during %s %s; request dropped", request.method, request.url.path)
    return Response(status_code=400)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged with its traceback, answered as JSON without internals."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _json(500, {"detail": "internal server error; the request was not processed"})


def install(app: FastAPI, max_bytes: int, field_sentence: FieldSentence = lambda errors: None) -> None:
    """Register the handlers and the body limit on `app`; `field_sentence` words form-field errors."""
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error_handler(field_sentence))
    app.add_exception_handler(LogUnavailable, log_unavailable)
    # Handled by the exception middleware, so it is not re-raised to the server (the catch-all
    # below is, which is how uvicorn came to log a hung-up client as "Exception in ASGI application").
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(Exception, unexpected_error)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_bytes)
