"""Helpers for the access tests: servers with tokens on a given log, and bearer-token clients."""

from __future__ import annotations

from pathlib import Path

import httpx

from dermalens.server.log import PredictionLog
from dermalens.server.settings import ServerSettings
from dermalens.server.tokens import TokenStore

from .conftest import TEST_MAX_BYTES, LiveServer, start_server
from .samples import jpeg


def make_tokens(target: str | Path, **names: bool) -> dict[str, str]:
    """Tokens `name=admin` in the log at `target`; name → token."""
    prediction_log = PredictionLog(target)
    try:
        store = TokenStore(prediction_log)
        return {name: store.create(name, admin=admin) for name, admin in names.items()}
    finally:
        prediction_log.close()


def token_server(artifact: Path, target: str | Path, **settings: object) -> LiveServer:
    """A live server on the log `target` (its tokens already made), with `settings` on top."""
    given: dict[str, object] = {"models": [artifact], "max_bytes": TEST_MAX_BYTES}
    given["log_url" if isinstance(target, str) else "log_db"] = target
    made = ServerSettings(**{**given, **settings})
    tls = {"ssl_certfile": str(made.ssl_certfile), "ssl_keyfile": str(made.ssl_keyfile)}
    return start_server(made, **(tls if made.ssl_certfile else {}))


def bearer(live: LiveServer, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=live.url, timeout=60, headers={"Authorization": f"Bearer {token}"}, verify=False
    )


def predict(http: httpx.Client, name: str, seed: int = 1) -> httpx.Response:
    return http.post("/api/v1/predict", files={"files": (name, jpeg(seed), "image/jpeg")})
