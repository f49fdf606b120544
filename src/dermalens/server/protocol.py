"""uvicorn's HTTP/1.1 protocols with the API's JSON errors for requests that never reach the app.

Why: a request that is not valid HTTP (``Content-Length: abc``, a broken request line) is refused
by uvicorn's h11 protocol itself, with a plain-text 400, before FastAPI sees it. Every error of
this API is JSON (``{"detail": ...}``), so a client has one format to parse; this subclass keeps
uvicorn's behaviour (400, then close) and changes only the body.

Which protocol: httptools (a C parser) with uvloop when they are installed (the `serve` extra
installs both), else h11 (pure Python) on asyncio's loop. Both answer malformed requests the same.

Why a larger incomplete-event limit (h11): h11 refuses a request line or headers over 16 KiB by
closing the connection while the client is still sending, which the client sees as a reset with
no answer at all. With a bounded 4 MiB the whole request line is read, and the app answers an
over-long query string with its own JSON 414 (`errors.QUERY_LIMIT`).
"""

from __future__ import annotations

import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from dermalens.server.errors import QUERY_LIMIT

#: Most bytes h11 buffers for a request line plus headers before refusing the request.
MAX_HEAD_BYTES = 4 * 1024 * 1024


MALFORMED = json.dumps(
    {
        "detail": "malformed HTTP request (a request line or header such as Content-Length is not "
        "valid HTTP/1.1); send a well-formed request, e.g. multipart/form-data to /api/v1/predict"
    }
).encode()


class JsonErrorH11Protocol(H11Protocol):
    """H11Protocol whose protocol-level 400 carries a JSON body."""

    def send_400_response(self, msg: str) -> None:
        body = MALFORMED
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        try:
            self.transport.write(
                self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request"))
            )
            self.transport.write(self.conn.send(h11.Data(data=body)))
            self.transport.write(self.conn.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:  # a response had already started: nothing more can be sent
            pass
        self.transport.close()


try:  # the serve extra installs httptools; without it, h11 serves alone
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

if HttpToolsProtocol is not None:

    class JsonErrorHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[valid-type,misc]
        """HttpToolsProtocol whose protocol-level 400 carries the same JSON body."""

        def send_400_response(self, msg: str) -> None:
            """JSON 400; a request line the parser gave up on for its length is a JSON 414, as the
            app answers a long query string that the parser let through."""
            url = getattr(self, "url", b"")
            status, body = (400, MALFORMED)
            if len(url) > QUERY_LIMIT:
                status, body = (
                    414,
                    json.dumps(
                        {
                            "detail": f"request line of {len(url)}+ bytes is too long; "
                            f"at most {QUERY_LIMIT} bytes of query string are accepted"
                        }
                    ).encode(),
                )
            head = f"HTTP/1.1 {status} {'Bad Request' if status == 400 else 'URI Too Long'}\r\n".encode()
            head += b"content-type: application/json\r\ncontent-length: " + str(len(body)).encode()
            self.transport.write(head + b"\r\nconnection: close\r\n\r\n" + body)
            self.transport.close()


def uvicorn_options() -> dict[str, Any]:
    """The options every dermalens uvicorn server runs with (the CLI and the tests' live server)."""
    if HttpToolsProtocol is None:
        return {"http": JsonErrorH11Protocol, "h11_max_incomplete_event_size": MAX_HEAD_BYTES}
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {"http": JsonErrorHttpToolsProtocol}
    return {"http": JsonErrorHttpToolsProtocol, "loop": "uvloop"}
