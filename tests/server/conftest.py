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
from dermalens.server.protocol import uvicorn_options
from dermalens.server.settings import ServerSettings

from .postgres import Postgres, unavailable

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


def start_server(settings: ServerSettings, **options: object) -> LiveServer:
    """Start uvicorn on an already bound socket (no race for the port) and wait until it serves;
    `options`: more uvicorn options (``ssl_certfile``/``ssl_keyfile`` serve https)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings),
        log_level="warning",
        timeout_graceful_shutdown=5,
        **uvicorn_options(),
        **options,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="uvicorn")
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    scheme = "https" if "ssl_certfile" in options else "http"
    return LiveServer(f"{scheme}://127.0.0.1:{port}", settings, server, thread)


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


@pytest.fixture(scope="session")
def ensemble_server(
    tiny_artifact: Path, tiny_artifact_other: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A live server holding two *different* models (an ensemble), for per-model comparison."""
    folder = tmp_path_factory.mktemp("ensemble-server")
    settings = ServerSettings(
        models=[tiny_artifact, tiny_artifact_other], max_bytes=TEST_MAX_BYTES, log_db=folder / "log.db"
    )
    live = start_server(settings)
    yield live
    live.stop()


@pytest.fixture(scope="session")
def meta_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny metadata-fusion artifact (random weights, 64×48, no OOD gate) that reads age, sex and site."""
    import torch

    from dermalens.artifact.meta import ArtifactMeta
    from dermalens.core.metadata import MetadataEncoding
    from dermalens.core.preprocess import Preprocessing
    from dermalens.core.taxonomy import DX_CODES, MALIGNANT
    from dermalens.models.build import save_artifact
    from dermalens.models.factory import create_model

    torch.manual_seed(0)
    encoding = MetadataEncoding()
    model = create_model(
        "tf_efficientnet_lite0",
        pretrained=False,
        num_classes=len(DX_CODES),
        metadata_dim=encoding.dim,
        hierarchical=False,
    ).eval()
    meta = ArtifactMeta(
        name="tiny-meta-test",
        architecture="tf_efficientnet_lite0",
        classes=list(DX_CODES),
        malignant=sorted(MALIGNANT & set(DX_CODES)),
        preprocessing=Preprocessing(input_size=(64, 48)),
        threshold=0.3,
        metadata_inputs=list(encoding.fields),
        metadata_encoding=encoding.to_dict(),
    )
    return save_artifact(model, tmp_path_factory.mktemp("artifact") / "tiny-meta", meta)


def logged_server(
    artifact: Path, tmp_path_factory: pytest.TempPathFactory, name: str
) -> Iterator[LiveServer]:
    """One artifact served with a prediction log of its own, stopped after the session."""
    folder = tmp_path_factory.mktemp(name)
    live = start_server(
        ServerSettings(models=[artifact], max_bytes=TEST_MAX_BYTES, log_db=folder / "predictions.db")
    )
    yield live
    live.stop()


@pytest.fixture(scope="session")
def meta_server(meta_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The metadata-fusion artifact served with a prediction log."""
    yield from logged_server(meta_artifact, tmp_path_factory, "meta-server")


@pytest.fixture()
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with live_server.client() as http:
        yield http


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL server for the session (skipped, with the reason, where none can run)."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    server = Postgres()
    server.start()
    yield server
    server.remove()


@pytest.fixture(params=["sqlite", "postgresql"])
def log_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """A fresh, empty prediction log on each backend: a SQLite file, a new PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "log.db"
    server: Postgres = request.getfixturevalue("postgres")
    return server.database()


@pytest.fixture(scope="session")
def sets_server(sets_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The bundled model with prediction sets fitted on real validation images, with a log."""
    yield from logged_server(sets_artifact, tmp_path_factory, "sets-server")
