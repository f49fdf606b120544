"""Typed JSON schemas of the REST API (they also generate the OpenAPI document at /docs)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from dermalens.inference.results import Decision
from dermalens.server.log import history_types


class PatientData(BaseModel):
    """The patient metadata a model read; null fields were unknown (not given)."""

    age: float | None = Field(None, description="age in years")
    sex: Literal["male", "female"] | None = None
    site: str | None = Field(None, description="body site group (see GET /model: metadata_sites)")


class MemberResult(BaseModel):
    """One ensemble member's own result on an image (``compare=true``)."""

    model: str = Field(description="the member's artifact name")
    prediction: str | None = Field(description="its most probable diagnosis; null when it refuses the image")
    prediction_set: list[str] | None = None
    set_size: int | None = None
    set_coverage: float | None = None
    p_malignant: float
    decision: Decision = Field(description="against the member's own threshold; 'refused' by its own gate")
    reason: str | None = None
    threshold: float
    ood: bool
    ood_score: float
    probabilities: dict[str, float]


class ImageResult(BaseModel):
    """One image's prediction."""

    filename: str
    prediction: str | None = Field(description="most probable diagnosis code; null when refused")
    prediction_name: str | None = Field(
        description="readable (English) name of the diagnosis; null when refused"
    )
    prediction_set: list[str] | None = Field(
        None,
        description="the diagnoses that together hold the true one for set_coverage of images like the "
        "validation ones (split-conformal, APS), most probable first; null when refused or not fitted",
    )
    set_size: int | None = Field(None, description="how many diagnoses the set holds (larger = less sure)")
    set_coverage: float | None = Field(None, description="the set's stated coverage, e.g. 0.9")
    p_malignant: float = Field(
        description="calibrated probability of a malignant lesion (kept for analysis when refused: no verdict)"
    )
    decision: Decision = Field(
        description="p_malignant compared with threshold; 'refused' when the image does not look like "
        "dermoscopy (ood): the model gives no verdict for it"
    )
    reason: str | None = Field(None, description="why there is no verdict, and what to send instead")
    threshold: float = Field(description="operating threshold on p_malignant")
    ood: bool = Field(description="true when the image does not look like a dermoscopy image")
    ood_score: float = Field(description="OOD score; above 1 means out of distribution")
    probabilities: dict[str, float] = Field(description="probability of each diagnosis code")
    heatmap_png: str | None = Field(
        None, description="base64 PNG (RGBA, model input size) of the evidence map, when heatmap=true"
    )
    true_label: str | None = Field(None, description="label sent by the client or read from the file name")
    correct: bool | None = Field(
        None, description="decision matches the label's benign/malignant class (null when refused)"
    )
    correct_dx: bool | None = Field(None, description="diagnosis matches the label (dx labels only)")
    metadata: PatientData | None = Field(
        None, description="patient data the model read; null for image-only models (they ignore it)"
    )
    members: list[MemberResult] | None = Field(
        None,
        description="with compare=true: each ensemble member's own result (the fields above are the ensemble's)",
    )
    sha256: str
    size_bytes: int
    width: int | None = None
    height: int | None = None


class ModelSummary(BaseModel):
    model_id: str
    name: str
    version: str
    architecture: str
    members: int
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
