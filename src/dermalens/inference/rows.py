"""One result as one flat row of typed columns: the CLI's table and CSV, and the archive's CSV and
Parquet files (`dermalens predict --out`), all read these columns.

Numbers stay numbers here; only a writer that makes text formats them (`csv_cell`), so a summary
never parses back what a table printed. The JSON forms (API, log) read `Prediction.json_fields`,
the same fields before flattening.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dermalens.core.metadata import METADATA_FIELDS
from dermalens.inference.results import Prediction, PredictionError, correctness

#: Decimal places of the result's float columns in CSV text (the CLI's CSV since its first
#: version): probabilities 4, the OOD score 3. Other numbers (a patient's age) are written as they are.
CSV_DIGITS = {"p_malignant": 4, "ood_score": 3}


def result_columns(classes: Sequence[str]) -> list[str]:
    """The result's columns, in order: the verdict, one probability per class, the gate."""
    return [
        "prediction",
        "prediction_set",
        "set_size",
        "set_coverage",
        "p_malignant",
        "decision",
        "reason",
        *(f"p_{c}" for c in classes),
        "ood",
        "ood_score",
    ]


def output_columns(
    classes: Sequence[str], *, metadata: bool = False, compare: bool = False
) -> list[tuple[str, type]]:
    """(name, type) of every column of a written result (CSV or Parquet), in order: the file and
    its SHA-256 (the resume key), the model with ``compare``, the result, the patient data when the
    model reads it, the truth from the file name or manifest, and the error of an unreadable file."""
    types = {"p_malignant": float, "ood": bool, "ood_score": float, "set_size": int, "set_coverage": float}
    types |= {f"p_{c}": float for c in classes}
    return [
        ("file", str),
        ("sha256", str),
        *([("model", str)] if compare else []),
        *((name, types.get(name, str)) for name in result_columns(classes)),
        *(((f, float if f == "age" else str) for f in METADATA_FIELDS) if metadata else ()),
        ("true_label", str),
        ("correct", bool),
        ("error", str),
    ]


def output_row(
    file: str | Path,
    sha256: str,
    label: str | None,
    result: Prediction | PredictionError,
    model: str | None = None,
) -> dict[str, Any]:
    """One written row: `output_columns`' values for one image (and one model, with ``compare``)."""
    row: dict[str, Any] = {
        "file": str(file),
        "sha256": sha256,
        **({"model": model} if model is not None else {}),
    }
    if isinstance(result, PredictionError):
        return row | {"true_label": label, "error": result.error}
    correct, _ = correctness(label, result)
    metadata = result.metadata.to_dict() if result.metadata is not None else {}
    return row | result_row(result) | metadata | {"true_label": label, "correct": correct, "error": None}


def result_row(prediction: Prediction) -> dict[str, Any]:
    """`Prediction.fields` flattened to `result_columns` (typed, full precision)."""
    fields = prediction.fields()
    return {
        "prediction": fields["prediction"],
        "prediction_set": set_cell(fields["prediction_set"]),
        "set_size": fields["set_size"],
        "set_coverage": fields["set_coverage"],
        "p_malignant": fields["p_malignant"],
        "decision": fields["decision"],
        "reason": fields["reason"],
        **{f"p_{c}": p for c, p in fields["probabilities"].items()},
        "ood": fields["ood"],
        "ood_score": fields["ood_score"],
    }


def set_cell(labels: Sequence[str] | None) -> str | None:
    """A prediction set as one text cell, most probable first ("nv|mel"); None without a set."""
    return None if labels is None else "|".join(labels)


def csv_cell(column: str, value: Any) -> Any:
    """A typed value as the CSV shows it: probabilities to 4 places and the OOD score to 3
    (`CSV_DIGITS`), None as an empty cell, anything else as it is (bools as True/False)."""
    if value is None:
        return ""
    digits = CSV_DIGITS.get(column, 4 if column.startswith("p_") else None)
    if isinstance(value, float) and digits is not None:
        return f"{value:.{digits}f}"
    return value
