"""Typed prediction results shared by the predictor, the CLI, the server and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dermalens.inference.metadata import PatientMetadata

#: Shown wherever a person sees a prediction.
DISCLAIMER = (
    "Research and education software. Not a medical device and not a diagnosis: "
    "any concerning skin lesion must be examined by a dermatologist."
)


@dataclass
class Prediction:
    """One image's result.

    `probabilities` are calibrated (temperature-scaled) and ordered as the model's
    classes; `p_malignant` is the sum over the malignant classes; `decision` compares
    it with the operating `threshold`. `ood` is True when the image does not look like
    a dermoscopy image (the prediction should then not be trusted, and the UI says so).
    `heatmap` is an H×W float32 map in [0, 1] over the canonical (model-input) image.
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
    heatmap: np.ndarray | None = field(default=None, repr=False)
    image: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (no arrays)."""
        return {
            "source": self.source,
            "prediction": self.prediction,
            "p_malignant": round(self.p_malignant, 6),
            "decision": self.decision,
            "threshold": self.threshold,
            "ood": self.ood,
            "ood_score": round(self.ood_score, 4),
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
            **({"metadata": self.metadata.to_dict()} if self.metadata is not None else {}),
        }


@dataclass
class PredictionError:
    """An input that could not be predicted (kept in batch results so nothing is silently lost)."""

    source: str
    error: str
    kind: str = "corrupt"


def correctness(label: str | None, prediction: Prediction) -> tuple[bool | None, bool | None]:
    """(decision matches the label's benign/malignant class, diagnosis matches a dx label)."""
    from dermalens.taxonomy import DIAGNOSES, binary_label

    if label is None:
        return None, None
    correct = prediction.decision == binary_label(label)
    correct_dx = prediction.prediction == label if label in DIAGNOSES else None
    return correct, correct_dx
