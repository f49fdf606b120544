"""One result, several views: the API's answer, the log's row and the CSV row of the same image
agree, because each is read from the one `Prediction` (built once, judged once)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

import dermalens.inference.results as results
from dermalens.cli import main

from .conftest import LiveServer
from .samples import jpeg

NAME = "views_probe_malignant_mel.jpg"


@pytest.fixture()
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often the per-image rules run: correctness (judging against a label) and the flat form."""
    calls: Counter[str] = Counter()
    judge, flat = results.correctness, results.Prediction.flat

    def correctness(*args: object) -> object:
        calls["correctness"] += 1
        return judge(*args)  # type: ignore[arg-type]

    def counted_flat(self: results.Prediction) -> object:
        calls["flat"] += 1
        return flat(self)

    monkeypatch.setattr(results, "correctness", correctness)
    monkeypatch.setattr(results.Prediction, "flat", counted_flat)
    return calls


def test_api_log_and_csv_agree(
    live_server: LiveServer, client: httpx.Client, tmp_path: Path, counted: Counter[str]
) -> None:
    data = jpeg(7)
    response = client.post("/api/v1/predict", files={"files": (NAME, data, "image/jpeg")})
    assert response.status_code == 200, response.text
    assert counted["correctness"] == 1  # judged once per image for the response and the log row
    (api,) = response.json()["results"]
    request_id = response.json()["request_id"]
    (logged,) = client.get("/api/v1/history", params={"q": request_id}).json()["rows"]

    counted.clear()
    (tmp_path / "in").mkdir()
    image = tmp_path / "in" / NAME
    image.write_bytes(data)
    out = tmp_path / "out.csv"
    model = str(live_server.settings.models[0])
    assert main(["predict", str(image.parent), "--model", model, "--csv", str(out)]) == 0
    assert counted["correctness"] == 1  # the CSV row, the table line and the accuracy count read it
    (row,) = csv.DictReader(out.read_text(encoding="utf-8-sig").splitlines())

    assert api["true_label"] == logged["label"] == row["true_label"] == "mel"
    assert api["correct"] == logged["correct"] == (row["correct"] == "True")
    assert api["decision"] == logged["decision"] == row["decision"]
    assert (
        api["prediction"]
        == row["prediction"]
        == (None if api["decision"] == "refused" else logged["prediction"])
    )
    assert logged["prediction"] == api["top_class"]
    assert api["p_malignant"] == pytest.approx(logged["p_malignant"], abs=1e-6)
    assert f"{api['p_malignant']:.4f}" == row["p_malignant"]
    assert api["ood"] == logged["ood"] == (row["ood"] == "True")
    assert api["sha256"] == logged["sha256"] == row["sha256"]
    assert (api["width"], api["height"]) == (logged["width"], logged["height"])
    for code, p in api["probabilities"].items():
        assert f"{p:.4f}" == row[f"p_{code}"]
    assert (logged["prediction_set"] or "") == row["prediction_set"] == "|".join(api["prediction_set"] or [])


def test_a_refused_image_agrees_too(client: httpx.Client, counted: Counter[str]) -> None:
    """Refused and labelled: no verdict and no correctness in the response and in the log, whose
    `prediction` column keeps the model's top class for analysis."""
    noise = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG")
    files = {"files": ("views_noise_malignant_mel.png", buffer.getvalue(), "image/png")}
    body = client.post("/api/v1/predict", files=files).json()
    assert counted["correctness"] == 1
    (api,) = body["results"]
    (logged,) = client.get("/api/v1/history", params={"q": body["request_id"]}).json()["rows"]
    assert api["decision"] == logged["decision"] == "refused"
    assert (
        api["correct"] is None and logged["correct"] is None and api["true_label"] == logged["label"] == "mel"
    )
    assert api["prediction"] is None and logged["prediction"] == api["top_class"] and api["reason"]
