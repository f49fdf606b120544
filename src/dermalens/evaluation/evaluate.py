"""`evaluate`: one model (or ensemble) on one dataset → predictions.csv, metrics.json, report.html.

Why three files: ``predictions.csv`` is the evidence (one row per image, full-precision
probabilities, so anyone can recompute every figure with scikit-learn), ``metrics.json``
the figures with their intervals for machines and model cards, ``report.html`` the
same for people. Images that are listed but missing, or that do not decode, are
counted and named in ``metrics.json``; they never stop an evaluation.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dermalens import __version__
from dermalens.data.records import Record
from dermalens.evaluation.bootstrap import metric_intervals
from dermalens.evaluation.metrics import (
    compute_metrics,
    jsonable,
    malignant_truth,
    one_vs_auc,
    operating_point,
)
from dermalens.evaluation.outputs import ArtifactPath, Combined, Outputs, collect
from dermalens.evaluation.sources import source_metrics
from dermalens.evaluation.subgroups import age_band, subgroup_metrics
from dermalens.inference.engine import Engine
from dermalens.inference.results import DISCLAIMER
from dermalens.taxonomy import BENIGN, MALIGNANT_LABEL, to_ham

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


@dataclass
class EvalData:
    """The records to score, and those listed but not found (counted as skipped)."""

    records: list[Record]
    missing: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalRun:
    """Everything one evaluation produced (`compare` and the report reuse it)."""

    records: list[Record]  # aligned with the rows of `combined`
    combined: Combined
    metrics: dict[str, Any]
    out_dir: Path


def load_eval_data(
    data_path: PathLike,
    split_file: PathLike | None = None,
    split_name: str = "test",
    data_format: str | None = None,
) -> EvalData:
    """Read a dataset (any layout) and keep one split; decoding is checked later, once, by inference."""
    from dermalens.data.readers import load_dataset
    from dermalens.data.splits import Split

    dataset = load_dataset(data_path, data_format, verify=False)
    info: dict[str, Any] = {"path": str(data_path), "format": dataset.format}
    missing = list(dataset.missing)
    records = list(dataset.records)
    if split_file is not None:
        split = Split.load(Path(split_file))
        ids = split.ids(split_name)
        if not ids:
            raise ValueError(f"{split_file}: split {split_name!r} is empty or absent; names: {split.names()}")
        records = [r for r in records if r.image_id in ids]
        missing = [m for m in missing if m in ids]
        unknown = len(ids) - len(records) - len(missing)
        if unknown:
            log.warning("%d image ids of split %r are not in %s", unknown, split_name, data_path)
        info.update(split_file=str(split_file), split_name=split_name, split_ids_not_in_data=unknown)
    if not records:
        where = f" in split {split_name!r}" if split_file else ""
        raise ValueError(f"{data_path}: no images to evaluate{where}")
    return EvalData(records, missing, info)


def model_label(label: str, classes: Sequence[str]) -> str:
    """A record's label in the model's terms: itself, or its 7-class fold (SCC → akiec,
    `taxonomy.HAM_FOLD`) for a model without that class; the benign/malignant truth is unchanged."""
    if label in classes:
        return label
    return to_ham(label) or label


def resolve_threshold(
    combined: Combined,
    labels: Sequence[str],
    threshold: float | None,
    target_sensitivity: float | None,
    members: Sequence[Outputs],
) -> dict[str, Any]:
    """The operating threshold and where it comes from (given, tuned here, or the artifact's)."""
    if threshold is not None and target_sensitivity is not None:
        raise ValueError("give either a threshold or a target sensitivity, not both")
    if threshold is not None:
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold {threshold}; valid: 0 to 1")
        return {"value": float(threshold), "source": "given", "rule": "given on the command line"}
    if target_sensitivity is not None:
        cut, _ = operating_point(malignant_truth(labels), combined.p_malignant, target_sensitivity)
        if np.isnan(cut):
            raise ValueError("--target-sensitivity needs malignant and benign images in the data")
        return {
            "value": cut,
            "source": "target_sensitivity",
            "rule": f"≥{target_sensitivity:.0%} sensitivity on these same images (optimistic: tuned on the "
            "data it is scored on; use `dermalens calibrate` on a validation split for an honest threshold)",
        }
    rules = sorted({m.meta.threshold_rule for m in members})
    return {"value": combined.threshold, "source": "artifact", "rule": "; ".join(rules)}


def write_predictions(path: Path, records: Sequence[Record], combined: Combined, threshold: float) -> Path:
    """One row per image; probabilities at full precision (repr), so metrics recompute exactly.

    A binary-head model's class column ``p_malignant`` already is the malignancy probability,
    so it is not written twice.
    """
    class_columns = [f"p_{c}" for c in combined.classes]
    aggregate = "p_malignant" not in class_columns
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "image",
                "source",
                "label",
                *class_columns,
                *(["p_malignant"] if aggregate else []),
                "prediction",
                "decision",
                "ood",
                "ood_score",
            ]
        )
        predicted, ood = combined.prediction, combined.ood
        for k, record in enumerate(records):
            p_mal = float(combined.p_malignant[k])
            writer.writerow(
                [
                    record.image_id,
                    record.source,
                    record.label,
                    *(repr(float(p)) for p in combined.probs[k]),
                    *([repr(p_mal)] if aggregate else []),
                    predicted[k],
                    MALIGNANT_LABEL if p_mal >= threshold else BENIGN,
                    int(ood[k]),
                    repr(float(combined.ood_score[k])),
                ]
            )
    return path


def _member_info(output: Outputs) -> dict[str, Any]:
    meta = output.meta
    return {
        "name": meta.name,
        "path": str(output.folder),
        "architecture": meta.architecture,
        "model_id": meta.model_id,
        "version": meta.version,
        "temperature": meta.temperature,
        "threshold": meta.threshold,
        "threshold_rule": meta.threshold_rule,
        "ood_gate": meta.ood_threshold is not None,
    }


def evaluate_data(
    model_paths: Sequence[ArtifactPath] | Engine,
    data: EvalData,
    out_dir: PathLike,
    *,
    tta: int = 1,
    threshold: float | None = None,
    target_sensitivity: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    ci_unit: str = "image",
    report: bool = True,
    progress: bool = False,
) -> EvalRun:
    """Score already-read records with a loaded engine or artifact paths (one ensemble); write the
    three files into `out_dir`."""
    if ci_unit not in ("image", "group"):
        raise ValueError(f"ci_unit {ci_unit!r}; valid: image, group")
    started = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    engine = model_paths if isinstance(model_paths, Engine) else Engine.load(list(model_paths) or [None])
    engine_run = collect(engine, data.records, tta, progress=progress)
    members, combined = engine_run.members, engine_run.combined
    if not combined.image_ids:
        raise ValueError(f"none of the {len(data.records)} images could be read (see the warnings)")
    by_id = {r.image_id: r for r in data.records}
    records = [by_id[i] for i in combined.image_ids]
    failed = dict(f for m in members for f in m.failed)
    labels = [model_label(r.label, combined.classes) for r in records]
    chosen = resolve_threshold(combined, labels, threshold, target_sensitivity, members)
    cut = chosen["value"]
    write_predictions(out / "predictions.csv", records, combined, cut)

    metrics: dict[str, Any] = {"n": len(records), "n_skipped": len(data.missing) + len(failed)}
    metrics["skipped"] = {
        "missing": list(data.missing),
        "unreadable": [{"image": i, "reason": why} for i, why in failed.items()],
    }
    metrics["labels"] = dict(sorted(Counter(labels).items()))
    metrics["data"] = data.info
    metrics["model"] = {
        "members": [_member_info(m) for m in members],
        "classes": combined.classes,
        "malignant": combined.malignant,
        "tta": tta,
    }
    metrics["threshold"] = chosen
    metrics.update(compute_metrics(labels, combined.probs, combined.classes, combined.malignant, cut))
    metrics["ci"] = metric_intervals(
        labels,
        combined.probs,
        combined.classes,
        combined.malignant,
        cut,
        n_boot=n_boot,
        seed=seed,
        groups=[r.group for r in records] if ci_unit == "group" else None,
    )
    attributes: dict[str, Sequence[str | None]] = {
        "age": [age_band(r.age) for r in records],
        "sex": [r.sex for r in records],
        "site": [r.site for r in records],
    }
    metrics["subgroups"] = subgroup_metrics(
        labels, combined.probs, combined.classes, combined.malignant, cut, attributes
    )
    accepted = ~combined.ood
    metrics["ood"] = {
        "n_flagged": int(combined.ood.sum()),
        "rate": float(combined.ood.mean()),
        "note": "refused images are still scored here, for analysis; the app gives them no verdict",
        # What a user of the app sees: the figures on the images the gate lets through.
        "accepted": compute_metrics(
            [label for label, keep in zip(labels, accepted, strict=True) if keep],
            combined.probs[accepted],
            combined.classes,
            combined.malignant,
            cut,
        )
        if accepted.any()
        else None,
    }
    metrics["by_source"] = source_metrics(
        [r.source for r in records],
        labels,
        combined.probs,
        combined.ood,
        combined.classes,
        combined.malignant,
        cut,
        n_boot=n_boot,
        seed=seed,
        groups=[r.group for r in records] if ci_unit == "group" else None,
    )
    metrics["mel_vs_nv_auc"] = one_vs_auc(labels, combined.probs, combined.classes, "mel", against=("nv",))
    metrics["mel_vs_rest_auc"] = one_vs_auc(labels, combined.probs, combined.classes, "mel")
    metrics["dermalens_version"] = __version__
    metrics["created"] = time.strftime("%Y-%m-%d %H:%M:%S")
    metrics["seconds"] = round(time.time() - started, 1)
    metrics["disclaimer"] = DISCLAIMER
    metrics = jsonable(metrics)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    run = EvalRun(records, combined, metrics, out)
    if report:
        from dermalens.evaluation.report import write_report

        write_report(run, out / "report.html")
    return run


def evaluate(
    model_paths: Sequence[ArtifactPath] | ArtifactPath,
    data_path: PathLike,
    out_dir: PathLike,
    tta: int = 1,
    threshold: float | None = None,
    target_sensitivity: float | None = None,
    split_file: PathLike | None = None,
    split_name: str = "test",
    **options: Any,
) -> dict[str, Any]:
    """Evaluate a model (None = bundled; several paths = one ensemble); return what metrics.json holds.

    Options: ``n_boot`` (1000), ``seed`` (0), ``ci_unit`` ("image" or "group"), ``report`` (True),
    ``progress`` (False), ``data_format`` (detected).
    """
    if isinstance(model_paths, list | tuple):
        paths: list[ArtifactPath] = list(model_paths)
    else:
        paths = [model_paths]  # type: ignore[list-item]
    data = load_eval_data(data_path, split_file, split_name, options.pop("data_format", None))
    run = evaluate_data(
        paths, data, out_dir, tta=tta, threshold=threshold, target_sensitivity=target_sensitivity, **options
    )
    return run.metrics
