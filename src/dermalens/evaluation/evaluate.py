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
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dermalens import __version__
from dermalens.data.records import Record
from dermalens.evaluation.bootstrap import metric_intervals
from dermalens.evaluation.conformal import coverage_figures
from dermalens.evaluation.metrics import (
    compute_metrics,
    jsonable,
    malignant_truth,
    one_vs_auc,
    operating_point,
)
from dermalens.evaluation.outputs import ArtifactPath, Combined, Outputs, collect
from dermalens.evaluation.report import write_report
from dermalens.evaluation.run import EvalData, EvalRun, PathLike, load_eval_data, model_label
from dermalens.evaluation.sources import source_metrics
from dermalens.evaluation.subgroups import age_band, subgroup_metrics
from dermalens.inference.combined import threshold_rule
from dermalens.inference.engine import Engine
from dermalens.inference.results import DISCLAIMER
from dermalens.inference.rows import set_cell

log = logging.getLogger(__name__)


def resolve_threshold(
    combined: Combined,
    labels: Sequence[str],
    threshold: float | None,
    target_sensitivity: float | None,
    rule: str,
) -> dict[str, Any]:
    """The operating threshold and where it comes from (given, tuned here, or the artifact's,
    chosen by `rule`)."""
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
    return {"value": combined.threshold, "source": "artifact", "rule": rule}


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
                "prediction_set",
                "set_size",
                "decision",
                "ood",
                "ood_score",
            ]
        )
        predicted, ood, verdicts = combined.prediction, combined.ood, combined.verdicts(threshold)
        # A refused image's set is kept, as its prediction is (the `ood` column says it was refused).
        shown = combined.sets
        sets: list[list[str] | None] = list(shown) if shown is not None else [None] * len(records)
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
                    set_cell(sets[k]) or "",
                    len(sets[k] or []) or "",
                    verdicts[k],
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


def figures(
    records: Sequence[Record],
    labels: Sequence[str],
    combined: Combined,
    cut: float,
    *,
    n_boot: int,
    seed: int,
    ci_unit: str,
) -> dict[str, Any]:
    """Every figure of metrics.json: overall with intervals, per subgroup, on the images the gate
    accepts, per source, and the melanoma AUCs."""
    classes, malignant, probs = combined.classes, combined.malignant, combined.probs
    bias = combined.class_bias  # empty or all zeros: the plain argmax (`top_class`)
    groups = [r.group for r in records] if ci_unit == "group" else None
    attributes: dict[str, Sequence[str | None]] = {
        "age": [age_band(r.age) for r in records],
        "sex": [r.sex for r in records],
        "site": [r.site for r in records],
    }
    accepted = ~combined.ood
    kept = [label for label, keep in zip(labels, accepted, strict=True) if keep]
    return {
        **compute_metrics(labels, probs, classes, malignant, cut, bias),
        "ci": metric_intervals(
            labels, probs, classes, malignant, cut, n_boot=n_boot, seed=seed, groups=groups, class_bias=bias
        ),
        "subgroups": subgroup_metrics(labels, probs, classes, malignant, cut, attributes, class_bias=bias),
        "ood": {
            "n_flagged": int(combined.ood.sum()),
            "rate": float(combined.ood.mean()),
            "note": "refused images are still scored here, for analysis; the app gives them no verdict",
            # What a user of the app sees: the figures on the images the gate lets through.
            "accepted": compute_metrics(kept, probs[accepted], classes, malignant, cut, bias)
            if accepted.any()
            else None,
        },
        "by_source": source_metrics(
            [r.source for r in records],
            labels,
            probs,
            combined.ood,
            classes,
            malignant,
            cut,
            n_boot=n_boot,
            seed=seed,
            groups=groups,
            class_bias=bias,
        ),
        "prediction_sets": coverage_figures(
            labels, [r.source for r in records], combined, n_boot=n_boot, seed=seed, groups=groups
        ),
        "mel_vs_nv_auc": one_vs_auc(labels, probs, classes, "mel", against=("nv",)),
        "mel_vs_rest_auc": one_vs_auc(labels, probs, classes, "mel"),
    }


def _header(
    data: EvalData,
    records: Sequence[Record],
    labels: Sequence[str],
    failed: dict[str, str],
    members: Sequence[Outputs],
    tta: int,
) -> dict[str, Any]:
    """What was scored and with what: counts, the images skipped and why, the models."""
    first = members[0].meta
    return {
        "n": len(records),
        "n_skipped": len(data.missing) + len(failed),
        "skipped": {
            "missing": list(data.missing),
            "unreadable": [{"image": i, "reason": why} for i, why in failed.items()],
        },
        "labels": dict(sorted(Counter(labels).items())),
        "data": data.info,
        "model": {
            "members": [_member_info(m) for m in members],
            "classes": list(first.classes),
            "malignant": list(first.malignant),
            "tta": tta,
        },
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
    rule = threshold_rule([m.meta for m in engine.members], engine.ensemble)
    chosen = resolve_threshold(combined, labels, threshold, target_sensitivity, rule)
    cut = chosen["value"]
    write_predictions(out / "predictions.csv", records, combined, cut)

    metrics = {
        **_header(data, records, labels, failed, members, tta),
        "threshold": chosen,
        **figures(records, labels, combined, cut, n_boot=n_boot, seed=seed, ci_unit=ci_unit),
        "dermalens_version": __version__,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(time.time() - started, 1),
        "disclaimer": DISCLAIMER,
    }
    metrics = jsonable(metrics)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    run = EvalRun(records, combined, metrics, out)
    if report:
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
