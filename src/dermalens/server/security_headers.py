"""Headers on every answer (issue #31): what a browser may load, frame, sniff and tell others.

A route may set its own Content-Security-Policy (the pages, the API docs); every other answer
(JSON, CSV, errors, static files) gets `DEFAULT_CSP`, which allows nothing to load and no site to
frame it. HSTS is sent only over HTTPS (uvicorn's TLS, or a proxy that says so in
X-Forwarded-Proto): a browser told over plain HTTP would be locked out of a server without TLS.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
#: One year, subdomains left alone (the server may share a name with other services).
HSTS = b"max-age=31536000"


class SecurityHeaders:
    """No MIME sniffing, no framing, no referrer, a CSP unless the route set one; HSTS under TLS.
    API answers are never cached (they hold personal data): ``Cache-Control: no-store`` unless set."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope.get("path", "").startswith("/api/")
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", DEFAULT_CSP))
                if api and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                if https:
                    headers.append((b"strict-transport-security", HSTS))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
