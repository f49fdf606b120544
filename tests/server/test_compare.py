"""Per-model comparison on the same image: the API with two different models, and the web page."""

from __future__ import annotations

import numpy as np
import pytest

from dermalens.core.taxonomy import DX_CODES
from dermalens.inference.predictor import Classifier

from .conftest import LiveServer
from .samples import jpeg


def test_compare_returns_each_members_result_beside_the_ensembles(
    ensemble_server: LiveServer, tiny_artifact, tiny_artifact_other
) -> None:
    data = jpeg(5)
    with ensemble_server.client() as http:
        plain = http.post("/api/v1/predict", files={"files": ("a.jpg", data, "image/jpeg")}).json()
        response = http.post(
            "/api/v1/predict", params={"compare": "true"}, files={"files": ("a.jpg", data, "image/jpeg")}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["members"] == 2
    assert plain["results"][0]["members"] is None  # only when asked
    (result,) = body["results"]
    a, b = result["members"]
    assert [a["model"], b["model"]] == ["tiny-test", "tiny-other"]
    mean = [(a["probabilities"][c] + b["probabilities"][c]) / 2 for c in DX_CODES]
    assert [result["probabilities"][c] for c in DX_CODES] == pytest.approx(mean, abs=2e-6)
    alone = Classifier.load(tiny_artifact_other).predict(data)
    assert b["p_malignant"] == pytest.approx(alone.p_malignant, abs=1e-5)
    assert b["threshold"] == pytest.approx(alone.threshold)
    assert result["ood"] == (a["ood"] or b["ood"])  # any member's refusal refuses the ensemble
    for member in (a, b):
        expected = (
            "refused"
            if member["ood"]
            else ("malignant" if member["p_malignant"] >= member["threshold"] else "benign")
        )
        assert member["decision"] == expected


def test_compare_refuses_per_model(ensemble_server: LiveServer) -> None:
    from PIL import Image

    from .samples import encode

    noise = encode(
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (90, 120, 3), dtype=np.uint8)), "PNG"
    )
    with ensemble_server.client() as http:
        body = http.post(
            "/api/v1/predict", params={"compare": "true"}, files={"files": ("n.png", noise, "image/png")}
        ).json()
    (result,) = body["results"]
    assert result["decision"] == "refused"
    for member in result["members"]:
        if member["ood"]:
            assert member["decision"] == "refused" and member["prediction"] is None and member["reason"]
