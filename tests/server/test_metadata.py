"""Patient metadata (age, sex, body site) in the REST API: validated, passed per image through the
shared batches to a fusion model, echoed in results and history; image-only models ignore it."""

from __future__ import annotations

import asyncio
import csv
import io
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from dermalens.core.metadata import PatientMetadata
from dermalens.inference.predictor import Classifier
from dermalens.server.batcher import InferenceService, Options

from .conftest import LiveServer
from .samples import jpeg, png

PATIENT = {"age": "63", "sex": "M", "site": "back"}
READ = {"age": 63.0, "sex": "male", "site": "torso"}


@pytest.fixture()
def meta_client(meta_server: LiveServer) -> Any:
    with meta_server.client() as http:
        yield http


def test_model_card_lists_metadata_inputs(meta_client: httpx.Client, client: httpx.Client) -> None:
    card = meta_client.get("/api/v1/model").json()
    assert card["metadata_inputs"] == ["age", "sex", "site"]
    assert "torso" in card["metadata_sites"]
    assert client.get("/api/v1/model").json()["metadata_inputs"] == []


def test_fusion_model_reads_and_echoes_metadata(meta_client: httpx.Client, meta_artifact: Path) -> None:
    data = [jpeg(71), png(72)]
    files = [("files", ("a.jpg", data[0], "image/jpeg")), ("files", ("b.png", data[1], "image/png"))]
    response = meta_client.post("/api/v1/predict", files=files, data=PATIENT)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["metadata"] for r in results] == [READ, READ]  # one set applies to every file
    direct = Classifier.load(meta_artifact)
    with_data = direct.predict(data, metadata=READ)
    without = direct.predict(data)
    for result, expected in zip(results, with_data, strict=True):
        assert result["p_malignant"] == pytest.approx(expected.p_malignant, abs=1e-4)
    # The metadata really reaches the network (random fusion weights: it moves the output).
    assert any(
        abs(a.probabilities[c] - b.probabilities[c]) > 1e-5
        for a, b in zip(with_data, without, strict=True)
        for c in a.probabilities
    )


def test_empty_or_missing_fields_are_unknown(meta_client: httpx.Client) -> None:
    files = {"files": ("c.jpg", jpeg(73), "image/jpeg")}
    for data in ({}, {"age": "", "sex": "unknown", "site": " "}):
        response = meta_client.post("/api/v1/predict", files=files, data=data)
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["metadata"] == {"age": None, "sex": None, "site": None}
    response = meta_client.post("/api/v1/predict", files=files, data={"sex": "female"})
    assert response.json()["results"][0]["metadata"] == {"age": None, "sex": "female", "site": None}


def test_history_shows_metadata(meta_client: httpx.Client) -> None:
    files = {"files": ("metadata_history_probe.jpg", jpeg(74), "image/jpeg")}
    assert meta_client.post("/api/v1/predict", files=files, data=PATIENT).status_code == 200
    rows = meta_client.get("/api/v1/history", params={"q": "metadata_history_probe"}).json()["rows"]
    assert [r["metadata"] for r in rows] == [READ]
    text = meta_client.get("/api/v1/history.csv", params={"q": "metadata_history_probe"}).text
    (row,) = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    assert (row["age"], row["sex"], row["site"]) == ("63.0", "male", "torso")


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        ("age", "sixty", "between 0 and 120"),
        ("age", "150", "between 0 and 120"),
        ("age", "-1", "between 0 and 120"),
        ("sex", "x", "male, female, m, f"),
        ("site", "elbowz", "torso"),
    ],
)
def test_invalid_metadata_is_422(client: httpx.Client, field: str, value: str, accepted: str) -> None:
    """Checked before the model, whatever model is served (here an image-only one)."""
    files = {"files": ("d.jpg", jpeg(75), "image/jpeg")}
    response = client.post("/api/v1/predict", files=files, data={field: value})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith("invalid patient metadata") and repr(value) in detail and accepted in detail


def test_a_metadata_field_given_twice_is_422(client: httpx.Client) -> None:
    files = [("files", ("e.jpg", jpeg(76), "image/jpeg"))]
    response = client.post("/api/v1/predict", files=files, data={"age": ["40", "50"]})
    assert response.status_code == 422 and "'age' given twice" in response.json()["detail"]


def test_image_only_model_accepts_and_ignores_metadata(client: httpx.Client) -> None:
    files = {"files": ("f.jpg", jpeg(77), "image/jpeg")}
    plain = client.post("/api/v1/predict", files=files).json()["results"][0]
    response = client.post("/api/v1/predict", files=files, data=PATIENT)
    assert response.status_code == 200, response.text
    result = response.json()["results"][0]
    assert result["metadata"] is None and plain["metadata"] is None
    assert result["probabilities"] == plain["probabilities"]


class _Recorder:
    """A stand-in classifier that records the metadata each call receives; the first call waits."""

    def __init__(self, fail_batches: bool = False) -> None:
        self.calls: list[tuple[list[bytes], list[Any]]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_batches = fail_batches

    def predict(self, images: list[bytes], *, metadata: list[Any], **_: Any) -> list[Any]:
        self.calls.append((list(images), list(metadata)))
        if len(self.calls) == 1:
            self.entered.set()
            self.release.wait(10)
        if self.fail_batches and len(images) > 1:
            raise RuntimeError("decoder bug")
        return [(image, patient) for image, patient in zip(images, metadata, strict=True)]


@pytest.mark.parametrize("fail_batches", [False, True])
def test_batcher_keeps_metadata_with_its_image(fail_batches: bool) -> None:
    """Requests with different metadata share a batch; each image keeps its own patient data,
    also when a failing batch is redone image by image."""
    recorder = _Recorder(fail_batches)
    x, y = PatientMetadata(age=40.0), PatientMetadata(sex="female", site="torso")

    async def main() -> list[list[Any]]:
        service = InferenceService(recorder, max_batch=16)  # type: ignore[arg-type]
        await service.start()
        options = Options(tta=1, heatmap=False, threshold=None)
        first = asyncio.create_task(service.predict([b"0"], options))
        while not recorder.entered.is_set():
            await asyncio.sleep(0.01)
        second = asyncio.create_task(service.predict([b"1", b"2"], options, x))
        third = asyncio.create_task(service.predict([b"3"], options, [y]))
        while len(service._queue) < 2:
            await asyncio.sleep(0.01)
        recorder.release.set()
        answers = list(await asyncio.gather(first, second, third))
        await service.stop()
        return answers

    answers = asyncio.run(main())
    assert answers == [[(b"0", PatientMetadata())], [(b"1", x), (b"2", x)], [(b"3", y)]]
    assert recorder.calls[1] == ([b"1", b"2", b"3"], [x, x, y])  # one shared batch
    if fail_batches:
        assert recorder.calls[2:] == [([b"1"], [x]), ([b"2"], [x]), ([b"3"], [y])]
