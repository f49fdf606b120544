"""The model card, built from the artifact's metadata (never re-declared here).

`metrics` is whatever training and evaluation stored (nested dicts); the About page
shows its scalar figures as a table and any per-class table as bar charts, so a new
metric appears without changing the server.
"""

from __future__ import annotations

import math
from typing import Any

from dermalens.core.decode import ACCEPTED_HELP, MAX_PIXELS
from dermalens.core.metadata import METADATA_FIELDS
from dermalens.core.taxonomy import DIAGNOSES, SITE_GROUPS
from dermalens.inference.predictor import Classifier
from dermalens.inference.results import DISCLAIMER, coverage_words
from dermalens.server.settings import ServerSettings


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities (undefined metrics) become None."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def model_card(classifier: Classifier, settings: ServerSettings) -> dict[str, Any]:
    """The `ModelCard` schema as a dict. An ensemble artifact's threshold, decision rule and
    prediction sets are its own (`EnsembleSpec`), not its primary member's."""
    meta = classifier.meta
    rule = classifier.engine.ensemble or meta
    return {
        "model_id": meta.model_id,
        "name": meta.name,
        "version": meta.version,
        "architecture": meta.architecture,
        "members": len(classifier.members),
        "member_names": [m.meta.name for m in classifier.members],
        "ensemble": ensemble_words(classifier),
        "classes": [
            {
                "code": code,
                "name": DIAGNOSES[code].name if code in DIAGNOSES else code,
                "malignant": code in meta.malignant,
            }
            for code in meta.classes
        ],
        "threshold": classifier.threshold,
        "threshold_rule": rule.threshold_rule,
        "temperature": meta.temperature,
        "decision_rule": rule.class_bias_rule or "the most probable class",
        "prediction_sets": prediction_sets_rule(classifier),
        "ood_gate": any(m.gate is not None for m in classifier.members),
        "ood_threshold": meta.ood_threshold,
        "ood_method": meta.ood_method,
        "tta": classifier.tta,
        "input_size": tuple(meta.preprocessing.input_size),
        "metadata_inputs": metadata_inputs(classifier),
        "metadata_sites": list(SITE_GROUPS),
        "preprocessing": _clean(meta.preprocessing.to_dict()),
        "metrics": _clean(meta.metrics),
        "data": _clean(meta.data),
        "training": _clean({k: v for k, v in meta.training.items() if k != "config"}),
        "license": meta.license,
        "limits": {
            "max_files": settings.max_files,
            "max_bytes": settings.max_bytes,
            "max_pixels": MAX_PIXELS,
            "accepted": ACCEPTED_HELP,
        },
        "disclaimer": DISCLAIMER,
    }


def ensemble_words(classifier: Classifier) -> str:
    """What sort of ensemble is served, in words ("" for one network)."""
    members = classifier.members
    if len(members) == 1:
        return ""
    names = ", ".join(m.meta.name for m in members)
    spec = classifier.engine.ensemble
    if spec is None:
        return f"an ensemble of {len(members)} artifacts ({names}): probabilities averaged, mean threshold"
    gate = "the first member's OOD gate" if spec.gate == "first" else "any member's OOD gate"
    return (
        f"an ensemble artifact of {len(members)} networks ({names}): probabilities averaged, "
        f"threshold and decision rule fitted on the average, {gate} refuses"
    )


def prediction_sets_rule(classifier: Classifier) -> str:
    """How the prediction sets are made, at the coverage served, or why there are none."""
    fitted = classifier.engine.sets
    if fitted is None:
        single = len(classifier.members) == 1 or classifier.engine.ensemble is not None
        return "none (not fitted for this model)" if single else "none (an ensemble)"
    coverage, quantile = fitted.quantile(classifier.engine.coverage)
    return (
        f"split-conformal sets ({fitted.method.upper()}) at {coverage:.0%} coverage (quantile {quantile:.4f}), "
        f"fitted on {fitted.source} with {fitted.library}: {coverage_words(coverage)}"
    )


def metadata_inputs(classifier: Classifier) -> list[str]:
    """Patient fields any ensemble member reads, in the usual order (empty for image-only models)."""
    read = {name for member in classifier.members for name in member.meta.metadata_inputs}
    return [name for name in METADATA_FIELDS if name in read]


def scalar_rows(tree: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    """Flatten nested metrics into (dotted name, formatted value) rows, skipping per-class tables."""
    rows: list[tuple[str, str]] = []
    if not isinstance(tree, dict) or depth > 4:
        return rows
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if key in ("per_class", "confusion_matrix"):
            continue
        if isinstance(value, dict):
            rows += scalar_rows(value, name, depth + 1)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int | float):
            rows.append((name, f"{value:.4g}" if isinstance(value, float) else str(value)))
        elif isinstance(value, str) and len(value) <= 120:
            rows.append((name, value))
    return rows


def per_class_tables(tree: Any, prefix: str = "", depth: int = 0) -> list[dict[str, Any]]:
    """Every ``per_class`` table in the metrics: {title, metrics: [names], rows: [(class, {metric: v})]}."""
    found: list[dict[str, Any]] = []
    if not isinstance(tree, dict) or depth > 4:
        return found
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if key == "per_class" and isinstance(value, dict) and value:
            metrics = [
                m
                for m in ("recall", "precision", "f1", "auc")
                if any(isinstance(v, dict) and isinstance(v.get(m), int | float) for v in value.values())
            ]
            rows = [
                (code, {m: v.get(m) for m in metrics}) for code, v in value.items() if isinstance(v, dict)
            ]
            found.append({"title": prefix or "metrics", "metrics": metrics, "rows": rows})
        elif isinstance(value, dict):
            found += per_class_tables(value, name, depth + 1)
    return found
