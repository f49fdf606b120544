"""A real uvicorn server on loopback (a free port, in a thread) serving the tiny test artifact."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from dermalens.server.app import create_app
from dermalens.server.settings import ServerSettings

#: Small so the "too many bytes" cases stay fast; the default is 20 MiB.
TEST_MAX_BYTES = 3 * 1024 * 1024


@dataclass
class LiveServer:
    url: str
    settings: ServerSettings
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


def start_server(settings: ServerSettings) -> LiveServer:
    """Start uvicorn on an already bound socket (no race for the port) and wait until it serves."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_level="warning", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="uvicorn")
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    return LiveServer(f"http://127.0.0.1:{port}", settings, server, thread)


@pytest.fixture(scope="session")
def live_server(tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("server")
    settings = ServerSettings(
        models=[tiny_artifact],
        max_bytes=TEST_MAX_BYTES,
        log_db=folder / "predictions.db",
        store_images=folder / "images",
    )
    live = start_server(settings)
    yield live
    live.stop()


@pytest.fixture()
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with live_server.client() as http:
        yield http
