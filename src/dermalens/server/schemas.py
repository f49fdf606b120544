"""Typed JSON schemas of the REST API (they also generate the OpenAPI document at /docs)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from dermalens.inference.results import PatientData, Prediction
from dermalens.server.log import history_types


class ImageResult(Prediction):
    """One image's prediction: the engine's result type itself (`inference.results.Prediction`: one
    definition of its fields), with the upload's hash and size always known and the heatmap as a PNG."""

    sha256: str = Field(description="SHA-256 of the uploaded file")
    size_bytes: int = Field(description="the uploaded file's size")
    heatmap_png: str | None = Field(
        None, description="base64 PNG (RGBA, model input size) of the evidence map, when heatmap=true"
    )


class ModelSummary(BaseModel):
    model_id: str
    name: str
    version: str
    architecture: str
    members: int
    member_names: list[str] = Field(
        default_factory=list, description="each network's name, the primary first"
    )
    tta: int


class PredictResponse(BaseModel):
    results: list[ImageResult]
    model: ModelSummary
    disclaimer: str
    request_id: str


class FileError(BaseModel):
    filename: str
    status: int
    kind: str
    detail: str


class ErrorResponse(BaseModel):
    detail: str = Field(description="what went wrong and what is accepted")
    errors: list[FileError] | None = Field(None, description="each bad file, when files were at fault")


class Diagnosis(BaseModel):
    code: str
    name: str
    malignant: bool


class Limits(BaseModel):
    max_files: int
    max_bytes: int
    max_pixels: int
    accepted: str


class ModelCard(BaseModel):
    """The served model: what it predicts, how it was made and evaluated, and its limits."""

    model_id: str
    name: str
    version: str
    architecture: str
    members: int
    member_names: list[str] = Field(description="each network's name, the primary first")
    ensemble: str = Field(
        description="what sort of ensemble is served and how it decides; '' for one network"
    )
    classes: list[Diagnosis]
    threshold: float
    threshold_rule: str
    temperature: float
    decision_rule: str = Field(
        description="how the named diagnosis is chosen from the probabilities (the artifact's class_bias)"
    )
    prediction_sets: str = Field(
        description="how the prediction sets are made and what they cover, or 'none'"
    )
    ood_gate: bool
    ood_threshold: float | None
    ood_method: str
    tta: int
    input_size: tuple[int, int]
    metadata_inputs: list[str] = Field(
        description="patient fields the model reads (age, sex, site); empty for image-only models"
    )
    metadata_sites: list[str] = Field(
        description="body site groups accepted as 'site' (finer names map to them)"
    )
    preprocessing: dict[str, Any]
    metrics: dict[str, Any]
    data: dict[str, Any]
    training: dict[str, Any]
    license: str
    limits: Limits
    disclaimer: str


class Health(BaseModel):
    status: Literal["ok"]
    model_id: str
    version: str
    uptime_s: float
    log: bool
    #: The server process that answered (several answer in turn with ``serve --workers N``).
    process: int


class _HistoryExtra(BaseModel):
    image_stored: bool
    metadata: PatientData | None = Field(
        None, description="patient data the model read; null for image-only models"
    )


#: One history row: the logged columns of `server.log.LogRow` (derived from it, never re-listed),
#: whether the image was stored, and the patient data the model read.
HistoryRow = create_model(
    "HistoryRow",
    __base__=_HistoryExtra,
    **{
        name: ((kind | None) if optional else kind, ...) for name, (kind, optional) in history_types().items()
    },  # type: ignore[call-overload]
)


class HistoryPage(BaseModel):
    total: int
    rows: list[HistoryRow]  # type: ignore[valid-type]
    enabled: bool = Field(description="false when the server runs without a prediction log")
