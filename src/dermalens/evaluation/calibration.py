"""Calibration and operating point: temperature scaling and a threshold for a target sensitivity.

Why temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML
2017): one scalar fitted on validation logits makes softmax outputs honest
probabilities without changing any prediction's rank, so accuracy and AUC stay the same.
Why a sensitivity target: in screening, missing a melanoma costs far more than a
benign referral, so the operating threshold is the highest one that still finds the
target share (default 95 %) of malignant validation lesions.

Both are fitted on the *validation* split and stored in the artifact, which every
prediction path (CLI, Python API, server, evaluation) reads; the test split stays unseen.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

from dermalens.artifact.meta import ArtifactMeta
from dermalens.artifact.store import load_meta
from dermalens.artifact.write import write_meta
from dermalens.core.taxonomy import BINARY_LABELS, binary_label
from dermalens.evaluation.metrics import expected_calibration_error, malignant_truth, operating_point
from dermalens.inference.probabilities import softmax

log = logging.getLogger(__name__)

#: Temperatures outside this range mean broken logits, not miscalibration.
T_BOUNDS = (0.05, 20.0)


def _views(logits: np.ndarray) -> np.ndarray:
    """[N, C] or [V, N, C] logits as [V, N, C]."""
    logits = np.asarray(logits, dtype=np.float64)
    return logits[None] if logits.ndim == 2 else logits


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of integer `targets` under softmax(logits / T)."""
    logp = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return float(-logp[np.arange(len(targets)), np.asarray(targets, dtype=int)].mean())


def fit_temperature(logits: np.ndarray, targets: Sequence[int] | np.ndarray) -> float:
    """The temperature minimising validation NLL (L-BFGS-B on log T, analytic gradient).

    `logits` is [N, C], or [V, N, C] for TTA views (each view is scored as a sample).
    Optimising log T keeps T positive and makes the problem well scaled.
    """
    views = _views(logits)
    targets = np.asarray(targets, dtype=int)
    if len(targets) == 0:
        raise ValueError("no validation images with a label the model predicts: cannot fit a temperature")
    z = views.reshape(-1, views.shape[-1])
    y = np.tile(targets, views.shape[0])
    true_logit = z[np.arange(len(y)), y]
    # d/dT of -log softmax(z/T)_y is (z_y − E_p[z]) / T², so d/d(log T) is (z_y − E_p[z]) / T.

    def loss_and_grad(log_t: np.ndarray) -> tuple[float, np.ndarray]:
        t = float(np.exp(log_t[0]))
        logp = log_softmax(z / t, axis=1)
        expected = (np.exp(logp) * z).sum(axis=1)
        loss = float(-logp[np.arange(len(y)), y].mean())
        grad = float(np.mean(true_logit - expected) / t)  # d loss / d log T
        return loss, np.array([grad])

    result = minimize(
        loss_and_grad, x0=np.zeros(1), jac=True, method="L-BFGS-B", bounds=[tuple(np.log(T_BOUNDS))]
    )
    return float(np.exp(result.x[0]))


def threshold_for_sensitivity(
    y_binary: Sequence[int] | np.ndarray, p_malignant: np.ndarray, target: float = 0.95
) -> float:
    """Highest threshold on p_malignant whose sensitivity on (y, p) is ≥ `target` (decision p ≥ t)."""
    y = np.asarray(y_binary, dtype=int)
    if not 0 < y.sum() < len(y):
        raise ValueError(
            f"a threshold needs malignant and benign images; got {int(y.sum())} malignant of {len(y)}"
        )
    if not 0 < target <= 1:
        raise ValueError(f"target sensitivity {target}; valid: a fraction in (0, 1]")
    threshold, _ = operating_point(y, np.asarray(p_malignant, dtype=float), target)
    return threshold


@dataclass
class OperatingPoint:
    """A fitted malignancy threshold, the rule in words, and its figures on the images it was fitted on."""

    threshold: float
    rule: str
    figures: dict[str, Any]


def fit_operating_point(
    labels: Sequence[str], p_malignant: np.ndarray, target: float, source: str
) -> OperatingPoint:
    """The threshold for `target` sensitivity on labelled calibrated p_malignant (one model's, or
    an ensemble's combined), with its rule and its sensitivity and specificity there."""
    y = malignant_truth(labels)
    threshold = threshold_for_sensitivity(y, p_malignant, target)
    decision = np.asarray(p_malignant) >= threshold
    figures = {
        "n": len(labels),
        "n_malignant": int(y.sum()),
        "target_sensitivity": target,
        "threshold": threshold,
        "sensitivity": float(decision[y == 1].mean()),
        "specificity": float((~decision[y == 0]).mean()),
    }
    return OperatingPoint(threshold, f"≥{target:.0%} sensitivity for malignancy on {source}", figures)


def _targets(labels: Sequence[str], classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(row mask, class indices) of the labels the model's head can score."""
    binary_head = classes == list(BINARY_LABELS)
    mapped = [binary_label(label) if binary_head else label for label in labels]
    mask = np.asarray([m in classes for m in mapped], dtype=bool)
    return mask, np.asarray([classes.index(m) for m, k in zip(mapped, mask, strict=True) if k], dtype=int)


def calibrate_artifact(
    artifact_path: str | os.PathLike[str],
    val_logits: np.ndarray,
    val_labels: Sequence[str],
    target_sensitivity: float = 0.95,
    *,
    source: str = "the validation split",
    meta: ArtifactMeta | None = None,
) -> ArtifactMeta:
    """Fit T and the threshold on validation outputs and store them (and the evidence) in the artifact.

    `meta`: the artifact's metadata when the caller has already opened (and verified) it.

    `val_logits` is [N, C] or [V, N, C] (TTA views), rows aligned with `val_labels`
    (dx codes, or benign/malignant). Labels the head cannot score (e.g. ``scc`` for a
    7-class model) are left out of the temperature fit but kept for the threshold.
    """

    folder = Path(artifact_path)
    if meta is None:
        folder, meta = load_meta(artifact_path)
    views = _views(val_logits)
    if views.shape[1] != len(val_labels) or views.shape[2] != len(meta.classes):
        raise ValueError(
            f"logits {views.shape} do not match {len(val_labels)} labels × {len(meta.classes)} classes"
        )
    mask, targets = _targets(val_labels, meta.classes)
    before = meta.temperature
    temperature = fit_temperature(views[:, mask], targets)
    probs = np.mean([softmax(v, temperature) for v in views], axis=0)
    p_mal = probs[:, meta.malignant_indices].sum(axis=1)
    y = malignant_truth(val_labels)
    point = fit_operating_point(val_labels, p_mal, target_sensitivity, source)
    old_p = np.mean([softmax(v, before) for v in views], axis=0)[:, meta.malignant_indices].sum(axis=1)
    meta.temperature = temperature
    meta.threshold = point.threshold
    meta.threshold_rule = point.rule
    meta.metrics["calibration"] = {
        "source": source,
        "tta_views": int(views.shape[0]),
        "temperature_before": before,
        "temperature": temperature,
        "nll_before": float(np.mean([nll(v[mask], targets, before) for v in views])),
        "nll_after": float(np.mean([nll(v[mask], targets, temperature) for v in views])),
        "ece_malignant_before": expected_calibration_error(y, old_p),
        "ece_malignant_after": expected_calibration_error(y, p_mal),
        **point.figures,
    }
    write_meta(folder, meta)
    log.info("calibrated %s: T %.3f → %.3f, threshold %.4f", folder, before, temperature, point.threshold)
    return meta


def calibrate(
    model: str | os.PathLike[str] | None,
    data_path: str | os.PathLike[str],
    split_file: str | os.PathLike[str],
    *,
    split_name: str = "val",
    target_sensitivity: float = 0.95,
    tta: int = 1,
    out: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Calibrate an artifact (in place, or a copy at `out`) on a dataset's split; return the evidence."""
    from dermalens.data.readers import load_dataset
    from dermalens.data.splits import Split
    from dermalens.evaluation.outputs import collect_outputs, refit_target
    from dermalens.inference.engine import Engine

    folder = refit_target(model, out)
    split = Split.load(Path(split_file))
    ids = split.ids(split_name)
    if not ids:
        raise ValueError(f"{split_file}: split {split_name!r} is empty; names: {split.names()}")
    dataset = load_dataset(data_path, verify=False).subset(ids)
    engine = Engine.load(folder)
    outputs = collect_outputs(engine, dataset.records, tta, progress=progress)
    by_id = {r.image_id: r.label for r in dataset.records}
    labels = [by_id[i] for i in outputs.image_ids]
    source = f"split {split_name!r} of {Path(split_file).name} ({len(labels)} images)"
    meta = calibrate_artifact(
        folder, outputs.logits, labels, target_sensitivity, source=source, meta=engine.meta
    )
    summary = dict(meta.metrics["calibration"])
    summary["artifact"] = str(folder)
    summary["skipped"] = [i for i, _ in outputs.failed] + [m for m in dataset.missing if m in ids]
    return summary
