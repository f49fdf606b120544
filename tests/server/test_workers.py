"""Several server processes sharing one real PostgreSQL log (`dermalens serve --workers 2 --log-url`),
and a database that goes away while a server runs: 503 with a reason, nothing reported as logged
that was not, and recovery when it returns."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from dermalens.server.log import PredictionLog
from dermalens.server.settings import ServerSettings

from .conftest import TEST_MAX_BYTES, LiveServer, start_server
from .postgres import Postgres, free_port
from .samples import jpeg

CLIENTS = 16
REQUESTS = 400


@pytest.fixture()
def two_workers(tiny_artifact: Path, postgres: Postgres, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`dermalens serve --workers 2` in its own process group; (base URL, log URL)."""
    url, port = postgres.database(), free_port()
    command = [
        sys.executable,
        "-m",
        "dermalens.cli",
        "serve",
        "--model",
        str(tiny_artifact),
        "--workers",
        "2",
    ]
    command += ["--log-url", url, "--port", str(port), "--store-images", str(tmp_path / "images")]
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(base + "/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield base, url
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)
        log.close()


def _post_many(base: str, count: int) -> list[httpx.Response]:
    """`count` single-image requests from `CLIENTS` concurrent clients, each on its own connection."""

    def client(k: int) -> list[httpx.Response]:
        with httpx.Client(base_url=base, timeout=60) as http:
            out = []
            for i in range(k, count, CLIENTS):
                files = {"files": (f"img{i}.jpg", jpeg(i % 50), "image/jpeg")}
                out.append(http.post("/api/v1/predict", files=files))
            return out

    with ThreadPoolExecutor(CLIENTS) as pool:
        return [r for chunk in pool.map(client, range(CLIENTS)) for r in chunk]


def test_two_workers_share_one_postgres_log(two_workers: tuple[str, str]) -> None:
    base, url = two_workers
    responses = _post_many(base, REQUESTS)
    assert Counter(r.status_code for r in responses) == {200: REQUESTS}
    answered = [r.json()["request_id"] for r in responses]
    log = PredictionLog(url)
    logged = Counter(row["request_id"] for row in log.iter_all())
    log.close()
    assert len(logged) == REQUESTS and set(logged) == set(answered)  # none lost
    assert set(logged.values()) == {1}  # none duplicated
    # Each process, asked on its own connection, reads the rows that both processes wrote.
    seen: dict[int, int] = {}
    for _ in range(200):
        with httpx.Client(base_url=base, timeout=30) as http:
            process = http.get("/api/v1/health").json()["process"]
            seen[process] = http.get("/api/v1/history", params={"limit": 1}).json()["total"]
        if len(seen) == 2:
            break
    assert len(seen) == 2, f"only process(es) {sorted(seen)} answered"
    assert set(seen.values()) == {REQUESTS}


@pytest.fixture()
def postgres_server(tiny_artifact: Path, postgres: Postgres) -> Iterator[LiveServer]:
    settings = ServerSettings(models=[tiny_artifact], max_bytes=TEST_MAX_BYTES, log_url=postgres.database())
    live = start_server(settings)
    yield live
    live.stop()


def test_a_database_that_goes_away_gives_503_and_the_server_recovers(
    postgres_server: LiveServer, postgres: Postgres
) -> None:
    files = {"files": ("a.jpg", jpeg(3), "image/jpeg")}
    with postgres_server.client() as http:
        before = http.post("/api/v1/predict", files=files)
        assert before.status_code == 200
        postgres.stop()
        try:
            during = http.post("/api/v1/predict", files=files)
            history = http.get("/api/v1/history")
            export = http.get("/api/v1/history.csv")
        finally:
            postgres.start()
        after = http.post("/api/v1/predict", files=files)
    for response in (during, history, export):
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert "prediction log cannot be" in response.json()["detail"]
        assert "try again later" in response.json()["detail"]
    assert "results" not in during.json()  # no prediction handed out that the log lacks
    assert after.status_code == 200
    assert postgres_server.settings.log_url is not None
    log = PredictionLog(postgres_server.settings.log_url)
    assert [r["request_id"] for r in log.query()] == [after.json()["request_id"], before.json()["request_id"]]
    log.close()
