"""The written row of one result: the columns of the CLI's CSV and the archive's CSV and Parquet
files (`dermalens predict --out`). The row's values are the result's one flat form
(`Prediction.flat`) with the file's name and hash; the terminal table reads the same form.

Numbers stay numbers here; only a writer that makes text formats them (`csv_cell`), so a summary
never parses back what a table printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dermalens.core.metadata import METADATA_FIELDS
from dermalens.inference.results import FLAT_HEAD, FLAT_TAIL, Prediction, PredictionError
from dermalens.inference.results import set_cell as set_cell  # re-exported: evaluate's CSV reads it

#: Decimal places of the result's float columns in CSV text (the CLI's CSV since its first
#: version): probabilities 4, the OOD score 3. Other numbers (a patient's age) are written as they are.
CSV_DIGITS = {"p_malignant": 4, "ood_score": 3}


def result_columns(classes: Sequence[str]) -> list[str]:
    """The result's columns, in order (`Prediction.flat`): the verdict, one probability per class,
    the gate."""
    return [*FLAT_HEAD, *(f"p_{c}" for c in classes), *FLAT_TAIL]


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
    result: Prediction | PredictionError,
    model: str | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """One written row: `output_columns`' values for one image (and one model, with ``compare``).
    A result was judged against its label already (`Prediction.judged`); an error row takes `label`."""
    row: dict[str, Any] = {
        "file": str(file),
        "sha256": sha256,
        **({"model": model} if model is not None else {}),
    }
    if isinstance(result, PredictionError):
        return row | {"true_label": label, "error": result.error}
    return row | result.flat() | {"error": None}


def csv_cell(column: str, value: Any) -> Any:
    """A typed value as the CSV shows it: probabilities to 4 places and the OOD score to 3
    (`CSV_DIGITS`), None as an empty cell, anything else as it is (bools as True/False)."""
    if value is None:
        return ""
    digits = CSV_DIGITS.get(column, 4 if column.startswith("p_") else None)
    if isinstance(value, float) and digits is not None:
        return f"{value:.{digits}f}"
    return value
