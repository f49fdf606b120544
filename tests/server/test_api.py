"""The REST API against a real uvicorn server: predict, model card, health, history, CSV, images on disk."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import sqlite3

import httpx
import numpy as np
import pytest
from PIL import Image

from dermalens.core.taxonomy import DX_CODES
from dermalens.inference.predictor import Classifier
from dermalens.inference.results import DISCLAIMER

from .conftest import LiveServer
from .samples import GOOD, jpeg, png


def test_predict_one_image(client: httpx.Client, tiny_artifact) -> None:
    data = jpeg(1)
    response = client.post("/api/v1/predict", files={"files": ("lesion.jpg", data, "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["disclaimer"] == DISCLAIMER
    assert len(body["request_id"]) == 32
    assert body["model"]["architecture"] == "tf_efficientnet_lite0"
    (result,) = body["results"]
    assert result["filename"] == "lesion.jpg"
    assert set(result["probabilities"]) == set(DX_CODES)
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert result["decision"] in ("benign", "malignant")
    assert (result["decision"] == "malignant") == (result["p_malignant"] >= result["threshold"])
    assert result["heatmap_png"] is None
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert (result["width"], result["height"]) == (160, 120)
    assert result["true_label"] is None and result["correct"] is None
    # The served numbers are the predictor's numbers.
    direct = Classifier.load(tiny_artifact).predict(data)
    assert result["p_malignant"] == pytest.approx(direct.p_malignant, abs=1e-4)
    assert result["prediction"] == direct.prediction


def test_predict_several_with_options_and_labels(client: httpx.Client) -> None:
    files = [
        ("files", ("case_1_malignant_mel.jpg", jpeg(2), "image/jpeg")),
        ("files", ("case_2_nv.png", png(3), "image/png")),
        ("files", ("ISIC_0024306.jpg", jpeg(4), "image/jpeg")),
    ]
    data = {"heatmap": "true", "tta": "2", "threshold": "0.5"}
    response = client.post("/api/v1/predict", files=files, data=data)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["tta"] == 2
    results = body["results"]
    assert [r["filename"] for r in results] == [f[1][0] for f in files]
    assert [r["true_label"] for r in results] == ["mel", "nv", None]
    for r in results:
        assert r["threshold"] == 0.5
        heat = Image.open(io.BytesIO(base64.b64decode(r["heatmap_png"])))
        assert heat.mode == "RGBA" and heat.size == (64, 48)
    mel, nv = results[0], results[1]
    assert mel["correct"] == (mel["decision"] == "malignant")
    assert mel["correct_dx"] == (mel["prediction"] == "mel")
    assert nv["correct"] == (nv["decision"] == "benign")


def test_explicit_labels_override_file_names(client: httpx.Client) -> None:
    files = [("files", ("a_mel.jpg", jpeg(5), "image/jpeg")), ("files", ("b.jpg", jpeg(6), "image/jpeg"))]
    response = client.post("/api/v1/predict", files=files, data={"labels": ["Basal cell carcinoma", ""]})
    assert response.status_code == 200, response.text
    assert [r["true_label"] for r in response.json()["results"]] == ["bcc", None]


@pytest.mark.parametrize("name", sorted(GOOD))
def test_unusual_but_valid_images_are_accepted(client: httpx.Client, name: str) -> None:
    response = client.post(
        "/api/v1/predict", files={"files": (name, GOOD[name](), "application/octet-stream")}
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["filename"] == name


def test_exif_rotation_is_applied(client: httpx.Client) -> None:
    from .samples import exif_rotated_jpeg

    result = client.post("/api/v1/predict", files={"files": ("r.jpg", exif_rotated_jpeg())}).json()[
        "results"
    ][0]
    assert (result["width"], result["height"]) == (160, 120)  # stored 120×160, shown turned upright


def test_model_card(client: httpx.Client) -> None:
    card = client.get("/api/v1/model").json()
    assert [c["code"] for c in card["classes"]] == list(DX_CODES)
    assert {c["code"] for c in card["classes"] if c["malignant"]} == {"akiec", "bcc", "mel"}
    assert card["threshold"] == pytest.approx(0.3)
    assert card["ood_gate"] is True
    assert card["input_size"] == [64, 48]
    assert card["limits"]["max_files"] == 20
    assert card["disclaimer"] == DISCLAIMER


def _resolved(node: dict, document: dict) -> dict:
    """A schema with its $ref followed and its allOf parts merged (FastAPI generates both)."""
    if "$ref" in node:
        node = _resolved(document["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]], document)
    merged = {k: v for k, v in node.items() if k != "allOf"}
    for part in node.get("allOf", []):
        part = _resolved(part, document)
        merged["properties"] = {**part.get("properties", {}), **merged.get("properties", {})}
    return merged


def test_health_and_openapi(client: httpx.Client) -> None:
    health = client.get("/api/v1/health").json()
    assert health["status"] == "ok" and health["log"] is True
    schema = client.get("/openapi.json").json()
    assert {"/api/v1/predict", "/api/v1/model", "/api/v1/health", "/api/v1/history"} <= set(schema["paths"])
    body = schema["paths"]["/api/v1/predict"]["post"]["requestBody"]["content"]
    form = _resolved(body["multipart/form-data"]["schema"], schema)["properties"]
    # The documented bounds are the validated ones: each edge is accepted, one step past it is not.
    assert (form["tta"]["minimum"], form["tta"]["maximum"]) == (1, 8)
    assert (form["threshold"]["minimum"], form["threshold"]["maximum"]) == (0, 1)
    assert form["age"]["maximum"] == 120 and "female" in form["sex"]["enum"]
    assert set(form) == {"files", "tta", "heatmap", "threshold", "labels", "age", "sex", "site"}
    files = {"files": ("e.jpg", jpeg(5), "image/jpeg")}
    for field, good, bad in (
        ("tta", form["tta"]["maximum"], form["tta"]["maximum"] + 1),
        ("age", form["age"]["maximum"], form["age"]["maximum"] + 1),
    ):
        assert client.post("/api/v1/predict", files=files, data={field: str(good)}).status_code == 200
        assert client.post("/api/v1/predict", files=files, data={field: str(bad)}).status_code == 422


def test_history_json_csv_and_stored_images(live_server: LiveServer, client: httpx.Client) -> None:
    data = jpeg(21)
    name = "=history_probe_bcc.jpg"
    request_id = client.post("/api/v1/predict", files={"files": (name, data)}).json()["request_id"]
    page = client.get("/api/v1/history", params={"q": "history_probe"}).json()
    assert page["enabled"] is True and page["total"] == 1
    row = page["rows"][0]
    assert row["request_id"] == request_id and row["label"] == "bcc" and row["image_stored"] is True
    assert client.get("/api/v1/history", params={"decision": row["decision"], "limit": 1}).json()["rows"]
    response = client.get("/api/v1/history.csv", params={"q": "history_probe"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert len(rows) == 1 and rows[0]["filename"] == "'" + name  # never a spreadsheet formula
    sha = hashlib.sha256(data).hexdigest()
    stored = live_server.settings.store_images / sha[:2] / f"{sha}.jpg"
    assert stored.read_bytes() == data
    with sqlite3.connect(live_server.settings.log_db) as db:
        logged = db.execute(
            "SELECT sha256, size_bytes, width, height, results FROM predictions WHERE request_id = ?",
            (request_id,),
        ).fetchall()
    assert logged[0][:4] == (sha, len(data), 160, 120)
    assert '"probabilities"' in logged[0][4]


def test_history_rejects_bad_query(client: httpx.Client) -> None:
    response = client.get("/api/v1/history", params={"limit": "0"})
    assert response.status_code == 422
    assert "limit" in response.json()["detail"]


def test_responses_carry_security_headers(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in response.headers["content-security-policy"]


def test_heatmap_is_a_valid_overlay(client: httpx.Client) -> None:
    files = {"files": ("h.jpg", jpeg(22))}
    result = client.post("/api/v1/predict", files=files, data={"heatmap": "1"}).json()["results"][0]
    rgba = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["heatmap_png"]))))
    assert rgba[..., 3].max() > 100  # the strongest evidence is clearly visible
    assert rgba[..., 3].min() < rgba[..., 3].max()


def test_a_refused_image_gets_no_verdict(client: httpx.Client) -> None:
    """Not dermoscopy: decision 'refused' with a reason, no diagnosis, no correctness; figures kept."""
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")
    response = client.post(
        "/api/v1/predict", files={"files": ("noise_malignant_mel.png", buffer.getvalue(), "image/png")}
    )
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert result["ood"] is True and result["decision"] == "refused"
    assert "dermoscopy" in result["reason"] and "Send a dermoscopy image" in result["reason"]
    assert result["prediction"] is None and result["prediction_name"] is None
    assert result["true_label"] == "mel" and result["correct"] is None and result["correct_dx"] is None
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)  # kept for analysis
    rows = client.get("/api/v1/history", params={"decision": "refused"}).json()["rows"]
    assert rows and all(r["decision"] == "refused" for r in rows)
