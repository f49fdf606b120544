"""Parallel requests on the real server: every answer belongs to its own request (batches are shared
across requests), nothing fails, and every image has its row in the log."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dermalens.inference.predictor import Classifier

from .conftest import LiveServer
from .samples import jpeg, png

THREADS = 8
PER_THREAD = 5


def test_parallel_requests_lose_no_rows_and_mix_no_results(
    live_server: LiveServer, tiny_artifact: Path
) -> None:
    images = {
        f"t{t}_r{r}.jpg": jpeg(1000 + t * PER_THREAD + r) for t in range(THREADS) for r in range(PER_THREAD)
    }
    images["extra_nv.png"] = png(999)
    expected = {name: Classifier.load(tiny_artifact).predict(data) for name, data in list(images.items())[:6]}
    start = threading.Barrier(THREADS)

    def client(thread: int) -> list[tuple[str, dict]]:
        answers = []
        with live_server.client() as http:
            start.wait()  # all threads fire at once, so requests overlap and share batches
            for r in range(PER_THREAD):
                names = [f"t{thread}_r{r}.jpg"] + (["extra_nv.png"] if r == thread % PER_THREAD else [])
                files = [("files", (n, images[n], "image/jpeg")) for n in names]
                response = http.post(
                    "/api/v1/predict", files=files, data={"heatmap": str(r % 2 == 0).lower()}
                )
                assert response.status_code == 200, response.text
                body = response.json()
                answers += [(body["request_id"], result) for result in body["results"]]
        return answers

    with ThreadPoolExecutor(THREADS) as pool:
        answers = [a for chunk in pool.map(client, range(THREADS)) for a in chunk]

    assert len(answers) == THREADS * PER_THREAD + THREADS
    for _, result in answers:
        assert result["sha256"] == hashlib.sha256(images[result["filename"]]).hexdigest()
        if result["filename"] in expected:
            assert result["p_malignant"] == pytest.approx(expected[result["filename"]].p_malignant, abs=1e-4)
    request_ids = {request_id for request_id, _ in answers}
    assert len(request_ids) == THREADS * PER_THREAD
    with sqlite3.connect(live_server.settings.log_db) as db:
        marks = ",".join("?" * len(request_ids))
        rows = db.execute(
            f"SELECT request_id, filename, sha256 FROM predictions WHERE request_id IN ({marks})",
            list(request_ids),
        ).fetchall()
    assert sorted(rows) == sorted((rid, r["filename"], r["sha256"]) for rid, r in answers)
