"""uvicorn's HTTP/1.1 protocol with the API's JSON errors for requests that never reach the app.

Why: a request that is not valid HTTP (``Content-Length: abc``, a broken request line) is refused
by uvicorn's h11 protocol itself, with a plain-text 400, before FastAPI sees it. Every error of
this API is JSON (``{"detail": ...}``), so a client has one format to parse; this subclass keeps
uvicorn's behaviour (400, then close) and changes only the body.

Why a larger incomplete-event limit: h11 refuses a request line or headers over 16 KiB by
closing the connection while the client is still sending, which the client sees as a reset with
no answer at all. With a bounded 4 MiB the whole request line is read, and the app answers an
over-long query string with its own JSON 414 (`errors.QUERY_LIMIT`).
"""

from __future__ import annotations

import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

#: Most bytes h11 buffers for a request line plus headers before refusing the request.
MAX_HEAD_BYTES = 4 * 1024 * 1024


class JsonErrorH11Protocol(H11Protocol):
    """H11Protocol whose protocol-level 400 carries a JSON body."""

    def send_400_response(self, msg: str) -> None:
        body = json.dumps(
            {
                "detail": "malformed HTTP request (a request line or header such as Content-Length is not "
                "valid HTTP/1.1); send a well-formed request, e.g. multipart/form-data to /api/v1/predict"
            }
        ).encode()
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


def uvicorn_options() -> dict[str, Any]:
    """The options every dermalens uvicorn server runs with (the CLI and the tests' live server)."""
    return {"http": JsonErrorH11Protocol, "h11_max_incomplete_event_size": MAX_HEAD_BYTES}
