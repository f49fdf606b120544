"""A server started with the log off: predictions work, history is empty and says why, nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dermalens.server.settings import ServerSettings

from .conftest import LiveServer, start_server
from .samples import jpeg


@pytest.fixture(scope="module")
def quiet_server(tiny_artifact: Path) -> Iterator[LiveServer]:
    live = start_server(ServerSettings(models=[tiny_artifact], log_db=None, max_files=2))
    yield live
    live.stop()


def test_log_off(quiet_server: LiveServer, tmp_path: Path) -> None:
    with quiet_server.client() as http:
        assert http.get("/api/v1/health").json()["log"] is False
        files = [("files", (f"{i}.jpg", jpeg(i), "image/jpeg")) for i in range(2)]
        assert http.post("/api/v1/predict", files=files).status_code == 200
        assert http.get("/api/v1/history").json() == {"total": 0, "rows": [], "enabled": False}
        csv = http.get("/api/v1/history.csv").content
        assert csv.startswith(b"\xef\xbb\xbfid,created,") and csv.count(b"\r\n") == 1
        too_many = http.post("/api/v1/predict", files=[*files, ("files", ("x.jpg", jpeg(3), "image/jpeg"))])
        assert too_many.status_code == 413 and "at most 2" in too_many.json()["detail"]
        page = http.get("/history")
        assert page.status_code == 200 and '"log_enabled": false' in page.text


def test_server_starts_and_stops_cleanly(tiny_artifact: Path) -> None:
    live = start_server(ServerSettings(models=[tiny_artifact], log_db=None))
    with httpx.Client(base_url=live.url) as http:
        assert http.get("/api/v1/health").status_code == 200
    assert live.server.config.app.state.dermalens.classifier.meta.name == "tiny-test"  # loaded at start
    live.stop()
    assert not live.thread.is_alive()
