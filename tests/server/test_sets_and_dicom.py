"""The served prediction sets (API result, history log, model card) and DICOM uploads: a DICOM file
is predicted as the image it holds, its patient tags are read by a fusion model, and a DICOM
without pixel data is refused with what is accepted."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from dicom_files import write_dicom

from .conftest import LiveServer

pytestmark = pytest.mark.realdata


@pytest.fixture()
def jpeg_file(ham10000: Path) -> Path:
    return ham10000 / "images" / "ISIC_0024306.jpg"


def test_results_log_and_card_carry_the_set(sets_server: LiveServer, jpeg_file: Path, tmp_path: Path) -> None:
    dicom = write_dicom(tmp_path / "lesion.dcm", jpeg_file, syntax="raw")
    files = [
        ("files", ("lesion.jpg", jpeg_file.read_bytes(), "image/jpeg")),
        ("files", ("lesion.dcm", dicom.read_bytes(), "application/dicom")),
    ]
    with sets_server.client() as http:
        response = http.post("/api/v1/predict", files=files)
        assert response.status_code == 200, response.text
        from_jpeg, from_dicom = response.json()["results"]
        rows = {r["filename"]: r for r in http.get("/api/v1/history").json()["rows"]}
        card = http.get("/api/v1/model").json()
    for result in (from_jpeg, from_dicom):
        assert result["prediction_set"][0] == result["prediction"]
        assert result["set_size"] == len(result["prediction_set"]) and result["set_coverage"] == 0.9
    assert from_dicom["prediction_set"] == from_jpeg["prediction_set"]  # the same pixels
    assert from_dicom["p_malignant"] == pytest.approx(from_jpeg["p_malignant"], abs=1e-6)
    assert rows["lesion.dcm"]["prediction_set"] == "|".join(from_dicom["prediction_set"])
    assert rows["lesion.dcm"]["set_size"] == from_dicom["set_size"]
    assert "90%" in card["prediction_sets"] and "MAPIE" in card["prediction_sets"]


def test_a_model_without_sets_serves_none(client: httpx.Client, jpeg_file: Path) -> None:
    result = client.post("/api/v1/predict", files={"files": ("a.jpg", jpeg_file.read_bytes())}).json()
    assert result["results"][0]["prediction_set"] is None and result["results"][0]["set_size"] is None
    assert client.get("/api/v1/model").json()["prediction_sets"].startswith("none")


def test_a_fusion_model_reads_the_dicom_patient_tags(
    meta_server: LiveServer, jpeg_file: Path, tmp_path: Path
) -> None:
    dicom = write_dicom(tmp_path / "p.dcm", jpeg_file, age="063Y", sex="F", site="Back")
    with meta_server.client() as http:
        response = http.post(
            "/api/v1/predict", files={"files": ("p.dcm", dicom.read_bytes())}, data={"age": "70"}
        )
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["metadata"] == {"age": 70.0, "sex": "female", "site": "torso"}


def test_a_dicom_without_pixels_is_refused(client: httpx.Client, jpeg_file: Path, tmp_path: Path) -> None:
    dicom = write_dicom(tmp_path / "report.dcm", jpeg_file, pixels=False)
    response = client.post("/api/v1/predict", files={"files": ("report.dcm", dicom.read_bytes())})
    assert response.status_code in (415, 422), response.text
    assert "without pixel data" in response.text and "DICOM files" in response.text
