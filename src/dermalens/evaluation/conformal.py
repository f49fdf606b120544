"""Fitting and measuring the prediction sets (`inference.conformal`): the quantile, with MAPIE.

Why MAPIE: its split-conformal classifier computes the finite-sample quantile
(the ⌈(n + 1)(1 − α)⌉-th smallest score) and its prediction rule is the reference our serving
rule is tested against. Why this APS score: MAPIE's APS subtracts a *random* share u·p(true) from
each calibration score, which is exact only with randomised sets (a set may then be empty, and the
same image may get another set on another day). With the deterministic sets a clinic needs
(``include_last_label=True``: never empty), that score over-covers (0.94 for a stated 0.90 on our
validation splits). Taking u = 1 (the cumulative probability of the classes ranked *above* the
true one) makes the deterministic set exact: the true class is in the set exactly when its score
is at most the quantile, so coverage is the stated one, not more.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from dermalens.artifact.meta import ArtifactMeta, ConformalSets
from dermalens.artifact.store import load_meta
from dermalens.artifact.write import write_meta
from dermalens.evaluation.bootstrap import bootstrap_ci
from dermalens.evaluation.run import label_targets
from dermalens.inference.combined import Combined
from dermalens.inference.conformal import shown_sets
from dermalens.inference.probabilities import top_class

log = logging.getLogger(__name__)

#: The coverages fitted into an artifact (any may be asked for at prediction time).
COVERAGES = (0.8, 0.85, 0.9, 0.95, 0.99)
DEFAULT_COVERAGE = 0.9


def deterministic_aps() -> Any:
    """MAPIE's APS score with u = 1: the probability of the classes ranked above the true one (see
    the module). Made on demand, so that importing this module does not import MAPIE."""
    from mapie.conformity_scores import APSConformityScore

    class DeterministicAPS(APSConformityScore):  # type: ignore[misc]
        def get_conformity_scores(
            self, y: np.ndarray, y_pred: np.ndarray, y_enc: np.ndarray | None = None, **kwargs: Any
        ) -> np.ndarray:
            cumulative, self.cutoff = self.get_true_label_cumsum_proba(y, y_pred, self.classes)
            return cumulative - np.take_along_axis(y_pred, np.asarray(y_enc).reshape(-1, 1), axis=1)

    return DeterministicAPS()


class _Probabilities(ClassifierMixin, BaseEstimator):
    """The model's calibrated probabilities as MAPIE's prefit classifier (X *is* the probabilities)."""

    def __init__(self, n_classes: int = 7) -> None:
        self.n_classes = n_classes

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Probabilities:
        self.classes_ = np.arange(self.n_classes)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x).argmax(axis=1)


def check_coverage(coverage: float) -> float:
    """`coverage` as stored (two decimals), or a `ValueError` that says what is accepted."""
    if not 0.5 <= coverage < 1 or round(coverage, 2) != coverage:
        raise ValueError(f"coverage {coverage}; valid: a fraction from 0.50 to 0.99 in steps of 0.01")
    return round(coverage, 2)


def fit_quantiles(
    probs: np.ndarray, targets: np.ndarray, coverages: Sequence[float] = COVERAGES
) -> dict[str, float]:
    """{"0.90": quantile, ...} of the deterministic APS score on labelled calibrated probabilities."""
    from mapie.classification import SplitConformalClassifier

    levels = sorted({check_coverage(c) for c in coverages})
    targets = np.asarray(targets, dtype=int)
    needed = max(int(np.ceil(1 / (1 - c))) for c in levels)
    if len(targets) < needed:
        raise ValueError(f"{len(targets)} labelled images; a {max(levels):.0%} set needs at least {needed}")
    estimator = _Probabilities(probs.shape[1]).fit(probs, targets)
    mapie = SplitConformalClassifier(estimator, levels, deterministic_aps(), prefit=True)
    mapie.conformalize(probs, targets)
    mapie.predict_set(probs[:1])  # MAPIE computes its quantiles when it first predicts
    quantiles = mapie._mapie_classifier.conformity_score_function_.quantiles_
    return {f"{c:.2f}": float(q) for c, q in zip(levels, quantiles, strict=True)}


def set_figures(
    sets: np.ndarray,
    targets: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    groups: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Empirical coverage and mean set size of `sets` ([N, C] membership), with 95 % bootstrap
    intervals (by lesion when `groups` is given)."""
    covered = sets[np.arange(len(targets)), np.asarray(targets, dtype=int)].astype(float)
    sizes = sets.sum(axis=1).astype(float)

    def statistic(rows: np.ndarray) -> dict[str, float]:
        return {"coverage": float(covered[rows].mean()), "mean_set_size": float(sizes[rows].mean())}

    return {
        "n": len(covered),
        **statistic(np.arange(len(covered))),
        "singletons": float((sizes == 1).mean()) if len(sizes) else float("nan"),
        "ci": bootstrap_ci(statistic, len(covered), n_boot=n_boot, seed=seed, groups=groups),
    }


def coverage_figures(
    labels: Sequence[str],
    sources: Sequence[str],
    combined: Combined,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    groups: Sequence[str] | None = None,
) -> dict[str, Any] | None:
    """The prediction sets' coverage and size on labelled images: all of them, those the gate
    accepts (what a user is shown), and per source; None where the model has no sets."""
    if combined.conformal is None:
        return None
    keep, targets = label_targets(labels, combined.classes)
    if not keep.any():
        return None
    sets = shown_sets(combined.probs, combined.conformal[1], combined.top)[keep]
    accepted = ~combined.ood[keep]
    keyed = np.asarray(sources, dtype=object)[keep]
    grouped = np.asarray(groups, dtype=object)[keep] if groups is not None else None

    def figures(rows: np.ndarray) -> dict[str, Any]:
        picked = None if grouped is None else list(grouped[rows])
        return set_figures(sets[rows], targets[rows], n_boot=n_boot, seed=seed, groups=picked)

    return {
        "coverage_stated": combined.conformal[0],
        "quantile": combined.conformal[1],
        "all": figures(np.ones(len(targets), bool)),
        "accepted": figures(accepted) if accepted.any() else None,
        "by_source": {str(s): figures(keyed == s) for s in sorted(set(keyed.tolist()))},
    }


def fit_sets(
    meta: ArtifactMeta,
    probs: np.ndarray,
    targets: np.ndarray,
    source: str,
    coverage: float = DEFAULT_COVERAGE,
    bias: Sequence[float] | None = None,
) -> tuple[ConformalSets, dict[str, Any]]:
    """Fit the quantiles on calibrated held-out probabilities ([N, C], class indices `targets`) of
    the model `meta` describes (a "dx" head only), `coverage` the default: the sets, and their
    coverage and size on those images with the diagnosis named by `bias` (default: `meta`'s rule)."""
    from importlib.metadata import version

    if meta.head != "dx":
        raise ValueError(
            f"{meta.name}: prediction sets need a 7-class diagnosis head; this one is {meta.head!r}"
        )
    default = check_coverage(coverage)
    quantiles = fit_quantiles(probs, targets, sorted({*COVERAGES, default}))
    sets = ConformalSets(
        quantiles=quantiles,
        coverage=default,
        source=source,
        n=len(targets),
        library=f"MAPIE {version('mapie')} SplitConformalClassifier, APS score with u = 1",
    )
    named = top_class(probs, np.asarray(meta.decision_bias if bias is None else bias))
    figures = set_figures(shown_sets(probs, quantiles[f"{default:.2f}"], named), targets, n_boot=200)
    return sets, figures


def set_conformal(
    meta: ArtifactMeta,
    probs: np.ndarray,
    targets: np.ndarray,
    source: str,
    coverage: float = DEFAULT_COVERAGE,
) -> None:
    """`fit_sets`, written into `meta`: the sets and the evidence."""
    meta.conformal, meta.metrics["conformal"] = fit_sets(meta, probs, targets, source, coverage)


def fit_conformal_artifact(
    artifact_path: str | os.PathLike[str],
    probs: np.ndarray,
    labels: Sequence[str],
    *,
    coverage: float = DEFAULT_COVERAGE,
    source: str = "the validation splits",
    meta: ArtifactMeta | None = None,
) -> ArtifactMeta:
    """`set_conformal` on dx `labels` (those the model cannot name are left out), stored in the artifact."""
    folder = Path(artifact_path)
    if meta is None:
        folder, meta = load_meta(artifact_path)
    keep, targets = label_targets(labels, meta.classes)
    set_conformal(meta, probs[keep], targets, source, coverage)
    write_meta(folder, meta)
    log.info("prediction sets of %s fitted on %s", folder, source)
    return meta


def fit_conformal(
    model: str | os.PathLike[str] | None,
    datasets: Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    *,
    split_name: str = "val",
    coverage: float = DEFAULT_COVERAGE,
    out: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Fit the prediction sets (in place, or on a copy at `out`) on the `split_name` split of every
    (dataset, split file) pair, pooled; return what was stored."""
    from dermalens.evaluation.outputs import Pooled, refit_on_splits

    check_coverage(coverage)

    def fit(folder: Path, pooled: Pooled, meta: ArtifactMeta) -> ArtifactMeta:
        return fit_conformal_artifact(
            folder, pooled.probs, pooled.labels, coverage=coverage, source=pooled.text, meta=meta
        )

    folder, meta = refit_on_splits(model, datasets, fit, split_name=split_name, out=out, progress=progress)
    fitted = asdict(meta.conformal) if meta.conformal is not None else {}
    return {"artifact": str(folder), **fitted, "validation": meta.metrics["conformal"]}
