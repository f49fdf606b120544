"""The one result type (`Prediction`) and its rules: what the engine gives back for each image, and
what the Python API, the REST API, the prediction log, the CSV/Parquet files and the terminal show
(each a view of it, never a copy with fields of its own)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, FieldSerializationInfo, field_serializer
from pydantic.json_schema import SkipJsonSchema

from dermalens.core.metadata import PatientMetadata
from dermalens.core.taxonomy import BENIGN, DIAGNOSES, MALIGNANT_LABEL, binary_label

#: Shown wherever a person sees a prediction.
DISCLAIMER = (
    "Research and education software. Not a medical device and not a diagnosis: "
    "any concerning skin lesion must be examined by a dermatologist."
)


#: Every decision a result can carry (the API schema and the history filter use this one alias).
Decision = Literal["benign", "malignant", "refused"]
#: The decision of an image the model cannot judge (the OOD gate refused it): no verdict.
REFUSED = "refused"
#: Why, and what to do instead: shown with every refused image (API, CLI, web page).
REFUSAL_REASON = (
    "This does not look like a dermoscopy image of a skin lesion, so the model gives no verdict: its "
    "figures would not mean anything. Send a dermoscopy image of one lesion, in focus, with the lesion "
    "inside the frame."
)


def coverage_words(coverage: float) -> str:
    """What a prediction set's coverage means, in words a clinician reads (page, CLI, card)."""
    return (
        f"the set lists the diagnoses that together contain the right one for about {coverage * 100:.0f} "
        "of every 100 images like those the model was checked on; for images from another clinic or "
        "camera it can be less often"
    )


def set_words(labels: list[str]) -> str:
    """A prediction set as words: "nv", "nv or mel", "nv, bkl or mel"."""
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " or " + labels[-1]


def decide(p_malignant: float, refused: bool, threshold: float) -> str:
    """The one decision rule: no verdict for an image the gate refuses; otherwise malignant when
    p_malignant reaches the operating threshold (the engine applies it; nothing else re-derives it)."""
    return REFUSED if refused else (MALIGNANT_LABEL if p_malignant >= threshold else BENIGN)


#: Decimal places of the JSON forms (API, log); the flat form (CSV, Parquet, the terminal) and the
#: Python object keep full precision.
JSON_DIGITS = {"p_malignant": 6, "threshold": 6, "ood_score": 4, "probabilities": 6}
#: The flat form's columns around the per-class probabilities (``p_<class>``), in the order every
#: table shows them (`flat`, `inference.rows.result_columns`).
FLAT_HEAD = ("prediction", "prediction_set", "set_size", "set_coverage", "p_malignant", "decision", "reason")
FLAT_TAIL = ("ood", "ood_score")


class PatientData(BaseModel):
    """The patient metadata a model read; null fields were unknown (not given)."""

    model_config = ConfigDict(frozen=True)

    age: float | None = Field(None, description="age in years")
    sex: Literal["male", "female"] | None = None
    site: str | None = Field(None, description="body site group (see GET /model: metadata_sites)")


#: An array the Python object carries and no serialised form shows (the API sends the heatmap as a
#: PNG of its own, `server.render`).
_Array = SkipJsonSchema[np.ndarray | None]


class Prediction(BaseModel):
    """One image's result: the one type that leaves the engine. The Python API returns it, the REST
    API's `ImageResult` is it (plus the upload's PNG heatmap), the log row is derived from it
    (`server.log.log_row`), and `flat` is its one flat form (CSV, Parquet, the terminal table).

    Every derived value (the shown diagnosis and set, the refusal reason, the correctness against a
    label) is computed once, when the result is built (`decided`) or judged (`judged`); the views only
    read fields. `probabilities` are calibrated and ordered as the model's classes; `p_malignant` is
    the sum over the malignant classes; `decision` compares it with `threshold`, or is ``"refused"``
    when the gate finds the image is not dermoscopy (`ood`): then there is no diagnosis and no set,
    but the probabilities and the model's `top_class` are kept for analysis. `heatmap` is an H×W
    float32 map in [0, 1] over the canonical (model-input) image; `image` that canonical image.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    filename: str = Field("", description="the file's name (in Python: the path, or the input's type)")
    model: str = Field("", description="the artifact's name, or 'ensemble' for a combined result")
    prediction: str | None = Field(description="most probable diagnosis code; null when refused")
    prediction_name: str | None = Field(
        None, description="readable (English) name of the diagnosis; null when refused"
    )
    top_class: str = Field(description="the model's diagnosis, kept for analysis also when refused")
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
    true_label: str | None = Field(None, description="label sent by the client or read from the file name")
    correct: bool | None = Field(
        None, description="decision matches the label's benign/malignant class (null when refused)"
    )
    correct_dx: bool | None = Field(None, description="diagnosis matches the label (dx labels only)")
    metadata: PatientData | None = Field(
        None, description="patient data the model read; null for image-only models (they ignore it)"
    )
    members: list[Prediction] | None = Field(
        None,
        description="with compare=true: each ensemble member's own result (its own threshold and gate; "
        "the fields above are the ensemble's)",
    )
    sha256: str | None = Field(None, description="SHA-256 of the file's bytes, where they were read")
    size_bytes: int | None = Field(None, description="the file's size, where it was read")
    width: int | None = Field(None, description="the image's full upright width as decoded")
    height: int | None = Field(None, description="the image's full upright height as decoded")
    heatmap: _Array = Field(None, exclude=True, repr=False)
    image: _Array = Field(None, exclude=True, repr=False)

    @classmethod
    def decided(
        cls,
        *,
        top_class: str,
        decision: str,
        ranked_set: list[str] | None,
        coverage: float | None,
        **rest: Any,
    ) -> Prediction:
        """The engine's result, with what is shown derived here once: a refused image gets no
        diagnosis, no set and a reason; `ranked_set` is the conformal set (None where not fitted)."""
        refused = decision == REFUSED
        shown = None if refused or ranked_set is None else list(ranked_set)
        known = DIAGNOSES.get(top_class)
        return cls(
            top_class=top_class,
            decision=decision,  # type: ignore[arg-type]
            prediction=None if refused else top_class,
            prediction_name=None if refused else (known.name if known else top_class),
            prediction_set=shown,
            set_size=None if shown is None else len(shown),
            set_coverage=None if shown is None else coverage,
            reason=REFUSAL_REASON if refused else None,
            **rest,
        )

    def placed(
        self,
        *,
        filename: str,
        metadata: PatientMetadata | None,
        size: tuple[int, int] | None,
        heatmap: np.ndarray | None = None,
        image: np.ndarray | None = None,
        members: list[Prediction] | None = None,
    ) -> Prediction:
        """This result with what the predictor knows of its image (the input's name, the patient data
        the model read, its decoded size, the heatmap, the members' own results)."""
        width, height = size or (None, None)
        patient = None if metadata is None else PatientData.model_validate(metadata, from_attributes=True)
        known = {"filename": filename, "metadata": patient, "width": width, "height": height}
        return self.model_copy(update=known | {"heatmap": heatmap, "image": image, "members": members})

    def judged(self, label: str | None, **known: Any) -> Prediction:
        """This result judged against `label` (`correctness`, computed here once for every view),
        with what the caller `known`s of the file (filename, sha256, size_bytes); members too."""
        correct, correct_dx = correctness(label, self)
        members = None if self.members is None else [m.judged(label) for m in self.members]
        update = {"true_label": label, "correct": correct, "correct_dx": correct_dx, "members": members}
        return self.model_copy(update=update | known)

    @property
    def refused(self) -> bool:
        """True when the model gives no verdict for this image."""
        return self.decision == REFUSED

    @field_serializer("p_malignant", "threshold", "ood_score", "probabilities", when_used="json")
    def _rounded(self, value: Any, info: FieldSerializationInfo) -> Any:
        """The JSON forms (API, log) round to `JSON_DIGITS`; the Python object keeps full precision."""
        digits = JSON_DIGITS[info.field_name]
        if isinstance(value, dict):
            return {k: round(v, digits) for k, v in value.items()}
        return round(value, digits)

    def flat(self) -> dict[str, Any]:
        """The one flat form (scalars and text, full precision): the CSV and Parquet rows and the
        terminal table read it. The set becomes one cell ("nv|mel"), each probability a ``p_<class>``
        column, the patient data (when the model read it) its own columns."""
        out: dict[str, Any] = {name: getattr(self, name) for name in FLAT_HEAD}
        out["prediction_set"] = set_cell(self.prediction_set)
        out |= {f"p_{c}": p for c, p in self.probabilities.items()}
        out |= {name: getattr(self, name) for name in FLAT_TAIL}
        if self.metadata is not None:
            out |= self.metadata.model_dump()
        return out | {"true_label": self.true_label, "correct": self.correct}


def set_cell(labels: Sequence[str] | None) -> str | None:
    """A prediction set as one text cell, most probable first ("nv|mel"); None without a set."""
    return None if labels is None else "|".join(labels)


@dataclass
class PredictionError:
    """An input that could not be predicted (kept in batch results so nothing is silently lost)."""

    source: str
    error: str
    kind: str = "corrupt"


def correctness(label: str | None, prediction: Prediction) -> tuple[bool | None, bool | None]:
    """(decision matches the label's benign/malignant class, diagnosis matches a dx label).

    A refused image has no verdict to be right or wrong: (None, None); summaries count it apart.
    `Prediction.judged` is its one caller: every view reads the result's `correct`/`correct_dx`."""
    if label is None or prediction.refused:
        return None, None
    correct = prediction.decision == binary_label(label)
    correct_dx = prediction.top_class == label if label in DIAGNOSES else None
    return correct, correct_dx
