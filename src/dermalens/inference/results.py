"""Typed prediction results shared by the predictor, the CLI, the server and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from dermalens.core.metadata import PatientMetadata
from dermalens.core.taxonomy import BENIGN, MALIGNANT_LABEL

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


#: Decimal places of the JSON forms (API, log, `Prediction.to_dict`); files written for analysis
#: (`evaluate`'s predictions.csv, the archive's Parquet) keep full precision.
JSON_DIGITS = {"p_malignant": 6, "threshold": 6, "ood_score": 4, "probabilities": 6}


@dataclass
class Prediction:
    """One image's result.

    `probabilities` are calibrated (temperature-scaled) and ordered as the model's
    classes; `p_malignant` is the sum over the malignant classes; `decision` compares
    it with the operating `threshold`, or is ``"refused"`` when `ood` is True (the image
    does not look like a dermoscopy image): a refused image gets no verdict and no
    diagnosis (`diagnosis` is None), but its probabilities and the model's top class
    (`prediction`) are kept for analysis. `heatmap` is an H×W float32 map in [0, 1] over
    the canonical (model-input) image.
    """

    probabilities: dict[str, float]
    p_malignant: float
    prediction: str
    decision: str
    threshold: float
    ood: bool
    ood_score: float
    source: str = ""
    #: The patient data the model read (None for image-only models); unknown fields are None.
    metadata: PatientMetadata | None = None
    #: Which model this is: the artifact's name, or "ensemble" for a combined result.
    model: str = ""
    #: With ``compare``: each ensemble member's own result on this image (its own temperature,
    #: threshold and gate: a member can refuse an image that the ensemble accepts, and the reverse).
    members: list[Prediction] | None = field(default=None, repr=False)
    heatmap: np.ndarray | None = field(default=None, repr=False)
    image: np.ndarray | None = field(default=None, repr=False)
    #: The image's full upright (width, height) as decoded (before any reduction), when known.
    image_size: tuple[int, int] | None = None
    #: The diagnoses that hold the true one with probability ≥ `coverage` (conformal prediction
    #: set, most probable first), kept for analysis also when refused; None when not fitted.
    prediction_set: list[str] | None = None
    coverage: float | None = None

    @property
    def refused(self) -> bool:
        """True when the model gives no verdict for this image."""
        return self.decision == REFUSED

    @property
    def diagnosis(self) -> str | None:
        """The diagnosis shown to a person: the top class, or None for a refused image."""
        return None if self.refused else self.prediction

    @property
    def diagnosis_set(self) -> list[str] | None:
        """The prediction set shown to a person: None for a refused image, or without fitted sets."""
        return None if self.refused or self.prediction_set is None else list(self.prediction_set)

    @property
    def reason(self) -> str | None:
        """Why there is no verdict (None when there is one)."""
        return REFUSAL_REASON if self.refused else None

    def fields(self) -> dict[str, Any]:
        """The result's own fields, typed and at full precision, in the order every form of it
        shows them: the API result, an ensemble member's row, the log, the CSV and Parquet rows
        (`inference.rows`) and `to_dict` all start from here."""
        return {
            "prediction": self.diagnosis,
            "prediction_set": self.diagnosis_set,
            "set_size": None if self.diagnosis_set is None else len(self.diagnosis_set),
            "set_coverage": None if self.diagnosis_set is None else self.coverage,
            "p_malignant": self.p_malignant,
            "decision": self.decision,
            "reason": self.reason,
            "threshold": self.threshold,
            "ood": self.ood,
            "ood_score": self.ood_score,
            "probabilities": dict(self.probabilities),
        }

    def json_fields(self) -> dict[str, Any]:
        """`fields` rounded as the JSON forms send them (`JSON_DIGITS`)."""
        out = self.fields()
        for key, digits in JSON_DIGITS.items():
            value = out[key]
            out[key] = (
                {k: round(v, digits) for k, v in value.items()}
                if isinstance(value, dict)
                else round(value, digits)
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (no arrays): the source, the model's top class even when refused, and
        the patient data, model name and members' results where there are any."""
        return {
            "source": self.source,
            "top_class": self.prediction,
            **self.json_fields(),
            **({"metadata": self.metadata.to_dict()} if self.metadata is not None else {}),
            **({"model": self.model} if self.model else {}),
            **({"members": [m.to_dict() for m in self.members]} if self.members is not None else {}),
        }


@dataclass
class PredictionError:
    """An input that could not be predicted (kept in batch results so nothing is silently lost)."""

    source: str
    error: str
    kind: str = "corrupt"


def correctness(label: str | None, prediction: Prediction) -> tuple[bool | None, bool | None]:
    """(decision matches the label's benign/malignant class, diagnosis matches a dx label).

    A refused image has no verdict to be right or wrong: (None, None); summaries count it apart."""
    from dermalens.core.taxonomy import DIAGNOSES, binary_label

    if label is None or prediction.refused:
        return None, None
    correct = prediction.decision == binary_label(label)
    correct_dx = prediction.prediction == label if label in DIAGNOSES else None
    return correct, correct_dx
