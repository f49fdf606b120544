"""Model-card helpers: nested metrics become table rows and per-diagnosis charts, NaN becomes null."""

from __future__ import annotations

import math

from dermalens.server.modelcard import _clean, per_class_tables, scalar_rows

METRICS = {
    "validation": {"auc": 0.91234, "n": 1500, "note": "grouped split", "flag": True},
    "test": {
        "binary": {"sensitivity": 0.9, "specificity_at_sensitivity": {"0.95": {"specificity": 0.5}}},
        "multiclass": {
            "accuracy": 0.8,
            "per_class": {
                "mel": {"recall": 0.7, "auc": 0.9, "support": 100},
                "nv": {"recall": 0.95, "auc": None},
            },
            "confusion_matrix": {"labels": ["mel", "nv"], "matrix": [[1, 2], [3, 4]]},
        },
    },
}


def test_scalar_rows_flatten_and_skip_tables() -> None:
    rows = dict(scalar_rows(METRICS))
    assert rows["validation.auc"] == "0.9123" and rows["validation.n"] == "1500"
    assert rows["validation.note"] == "grouped split"
    assert rows["test.binary.specificity_at_sensitivity.0.95.specificity"] == "0.5"
    assert "validation.flag" not in rows
    assert not any("per_class" in k or "confusion" in k for k in rows)


def test_per_class_tables() -> None:
    (table,) = per_class_tables(METRICS)
    assert table["title"] == "test.multiclass"
    assert table["metrics"] == ["recall", "auc"]
    assert dict(table["rows"])["nv"] == {"recall": 0.95, "auc": None}


def test_clean_makes_json_safe() -> None:
    assert _clean({"a": math.nan, "b": [math.inf, 1.0], "c": (1, 2)}) == {
        "a": None,
        "b": [None, 1.0],
        "c": [1, 2],
    }
