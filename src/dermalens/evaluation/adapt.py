"""`dermalens adapt`: fit an artifact's validation-fitted parts to one clinic's own labelled images.

A clinic's dermatoscope, light and case mix differ from the training clinics', so probabilities
calibrated elsewhere are off there (binary ECE 0.06 on Derm7pt) although they still rank well. What
needs no retraining is refitted on the clinic's images: the temperature (on the served
log-probabilities, so the new temperature is the old one times the fitted factor), the operating
threshold at the artifact's target sensitivity, the diagnosis decision rule (`evaluation.decision`)
and the prediction sets' quantile (`evaluation.conformal`).

Whether a step helps is judged out of fold only: lesion-grouped k-fold inside the clinic's data,
each fold's steps fitted on the other folds. A step whose pooled out-of-fold figure is not better
than before (temperature: binary ECE; threshold: distance of the sensitivity to its target;
decision rule: balanced accuracy; sets: distance of the coverage to the stated one) is left as it
was, and the card says so. The kept steps are then refitted on all the clinic's images.

Two steps need the network's features. The gate (`models.ood_fit.shift_gate`: its class and
mid-level means re-centred on the clinic's images) is kept if it refuses fewer held-out lesions.
`--head` (`evaluation.adapt_head`: the last layer refitted on frozen features, pulled towards the
original) is judged last, against the other kept steps: kept only if the AUC is not lower, the BCC
recall not lower and the balanced accuracy higher out of fold; within a fold the rules are refitted
on what the fold's new head serves.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sklearn.model_selection import GroupKFold

from dermalens.artifact.meta import ArtifactMeta
from dermalens.artifact.ood import OodGate
from dermalens.evaluation.calibration import fit_temperature, threshold_for_sensitivity
from dermalens.evaluation.conformal import fit_quantiles
from dermalens.evaluation.decision import fit_tau, training_prior
from dermalens.evaluation.metrics import expected_calibration_error
from dermalens.inference.conformal import shown_sets
from dermalens.inference.probabilities import softmax, top_class

STEPS = ("temperature", "threshold", "decision", "conformal")
#: Steps that need the network's pooled features: re-centring the OOD gate, refitting the head.
FEATURE_STEPS = ("gate", "head")
#: Fewer labelled images than this: nothing is refitted (a 5-fold split leaves < 20 per fold).
MIN_IMAGES = 100
#: Share of non-dermoscopy images a re-centred gate must still refuse (`benchmarks/ood_gate.py`'s target).
MIN_REFUSED = 0.98
#: The share of non-dermoscopy images a given gate refuses.
Probe = Callable[[OodGate], float]


@dataclass(frozen=True)
class Rules:
    """What adaptation may change: a temperature factor on the served log-probabilities, the
    threshold, the decision offsets and the sets' quantile."""

    scale: float
    threshold: float
    bias: np.ndarray
    quantile: float | None

    def apply(self, logp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(probabilities, named diagnosis, set membership or None) of rows of log-probabilities."""
        probs = softmax(logp, self.scale)
        named = top_class(probs, self.bias)
        sets = None if self.quantile is None else shown_sets(probs, self.quantile, named)
        return probs, named, sets


def target_sensitivity(meta: ArtifactMeta) -> float:
    """The sensitivity the artifact's threshold was chosen for ("≥95% sensitivity ..."), or 0.95."""
    found = re.search(r"(\d+(?:\.\d+)?)%\s*sensitivity", meta.threshold_rule)
    return float(found.group(1)) / 100 if found else 0.95


def served_rules(meta: ArtifactMeta) -> Rules:
    """The artifact's own rules, as they are served."""
    quantile = meta.conformal.quantile()[1] if meta.conformal else None
    return Rules(1.0, meta.threshold, np.asarray(meta.decision_bias), quantile)


def fit_rules(meta: ArtifactMeta, logp: np.ndarray, targets: np.ndarray, steps: Sequence[str]) -> Rules:
    """`steps` refitted on labelled log-probabilities; the others as the artifact serves them."""
    rules = served_rules(meta)
    if "temperature" in steps:
        rules = replace(rules, scale=fit_temperature(logp, targets))
    probs = softmax(logp, rules.scale)
    malignant = np.isin(targets, meta.malignant_indices).astype(int)
    if "threshold" in steps:
        p_mal = probs[:, meta.malignant_indices].sum(axis=1)
        rules = replace(
            rules, threshold=threshold_for_sensitivity(malignant, p_mal, target_sensitivity(meta))
        )
    if "decision" in steps and meta.head == "dx":
        prior = training_prior(meta)
        tau, _ = fit_tau(probs, targets, ["clinic"] * len(targets), prior)
        rules = replace(rules, bias=-tau * np.log(prior))
    if "conformal" in steps and meta.conformal is not None:
        key = f"{meta.conformal.coverage:.2f}"
        rules = replace(rules, quantile=fit_quantiles(probs, targets, [meta.conformal.coverage])[key])
    return rules


def figures(
    meta: ArtifactMeta,
    probs: np.ndarray,
    named: np.ndarray,
    sets: np.ndarray | None,
    targets: np.ndarray,
    threshold: np.ndarray,
    refused: np.ndarray,
) -> dict[str, float]:
    """The figures a clinic reads, on labelled rows (threshold per row: out of fold it varies)."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    p_mal = probs[:, meta.malignant_indices].sum(axis=1)
    truth = np.isin(targets, meta.malignant_indices)

    def recall(code: str) -> float:
        rows = targets == meta.classes.index(code) if code in meta.classes else np.zeros(len(targets), bool)
        return float((named[rows] == targets[rows]).mean()) if rows.any() else float("nan")

    two = 0 < truth.sum() < len(truth)
    with warnings.catch_warnings():  # a resample or fold without some class: expected, not news
        warnings.simplefilter("ignore", UserWarning)
        balanced = float(balanced_accuracy_score(targets, named))
    return {
        "auc": float(roc_auc_score(truth, p_mal)) if two else float("nan"),
        "balanced_accuracy": balanced,
        "recall_bcc": recall("bcc"),
        "recall_mel": recall("mel"),
        "ece": expected_calibration_error(truth.astype(int), p_mal),
        "sensitivity": float((p_mal[truth] >= threshold[truth]).mean()) if truth.any() else float("nan"),
        "refused": float(refused.mean()),
        "coverage": float(sets[np.arange(len(targets)), targets].mean())
        if sets is not None
        else float("nan"),
        "mean_set_size": float(sets.sum(axis=1).mean()) if sets is not None else float("nan"),
    }


@dataclass
class Clinic:
    """A clinic's labelled images as the model serves them: log-probabilities (the artifact's own
    temperature applied), class indices, lesion groups and the gate's refusals; for the steps that
    need them (`FEATURE_STEPS`), the network's pooled and mid-level features, each image's refusal
    score that no gate change lowers (the colour check), the original head and the gate."""

    logp: np.ndarray
    targets: np.ndarray
    groups: np.ndarray
    refused: np.ndarray
    features: np.ndarray | None = None
    level: np.ndarray | None = None
    floor: np.ndarray | None = None
    head: tuple[np.ndarray, np.ndarray] | None = None
    gate: OodGate | None = None
    #: Each row's image (path), for steps that run the network again (`--unlabelled`).
    images: np.ndarray | None = None

    def available(self, head: bool) -> tuple[str, ...]:
        """The steps this clinic's data allows (`head`: whether --head was asked for)."""
        gate = ("gate",) if self.gate is not None and self.features is not None else ()
        fine_tune = ("head",) if head and self.head is not None and self.features is not None else ()
        return STEPS + gate + fine_tune


@dataclass
class Fitted:
    """Steps fitted on some of the clinic's rows: the rules, the new head and gate (None: as
    served), and every row's served log-probabilities under that head."""

    rules: Rules
    head: tuple[np.ndarray, np.ndarray] | None
    gate: OodGate | None
    logp: np.ndarray

    def refused(self, clinic: Clinic, rows: np.ndarray) -> np.ndarray:
        """Whether the (re-centred) gate refuses each of `rows`."""
        if self.gate is None or clinic.features is None or clinic.floor is None:
            return clinic.refused[rows]
        level = clinic.level[rows] if clinic.level is not None else None
        return np.maximum(self.gate.score(clinic.features[rows], None, level), clinic.floor[rows]) > 1.0


def fit_steps(meta: ArtifactMeta, clinic: Clinic, rows: np.ndarray, steps: Sequence[str]) -> Fitted:
    """`steps` fitted on the clinic's `rows`: the head first (the rules are refitted on what it
    serves), the gate independently."""
    from dermalens.evaluation.adapt_head import cross_fitted, fit_head, head_logp
    from dermalens.models.ood_fit import shift_gate

    head, gate, logp, fit_on = None, None, clinic.logp, clinic.logp[rows]
    if "head" in steps and clinic.head is not None and clinic.features is not None:
        head = fit_head(clinic.features[rows], clinic.targets[rows], clinic.head, meta.temperature)
        logp = head_logp(clinic.features, *head, meta.temperature)
        fit_on = cross_fitted(
            clinic.features[rows], clinic.targets[rows], clinic.groups[rows], clinic.head, meta.temperature
        )
    if "gate" in steps and clinic.gate is not None and clinic.features is not None:
        labels = clinic.targets[rows] if len(clinic.gate.means) == len(meta.classes) else None
        level = clinic.level[rows] if clinic.level is not None else None
        gate = shift_gate(clinic.gate, clinic.features[rows], level, labels)
    rules = fit_rules(meta, fit_on, clinic.targets[rows], [s for s in steps if s in STEPS])
    return Fitted(rules, head, gate, logp)


@dataclass
class _Pooled:
    """Out-of-fold results gathered fold by fold (each row predicted by steps fitted without it)."""

    probs: np.ndarray
    named: np.ndarray
    sets: np.ndarray | None
    threshold: np.ndarray
    fold: np.ndarray
    refused: np.ndarray


def out_of_fold(
    meta: ArtifactMeta, clinic: Clinic, steps: Sequence[str], folds: int, seed: int = 0
) -> _Pooled:
    """Every row predicted by `steps` fitted on the other lesion-grouped folds (none: as served)."""
    n, c = clinic.logp.shape
    pooled = _Pooled(
        np.zeros((n, c)), np.zeros(n, int), None, np.zeros(n), np.zeros(n, int), np.zeros(n, bool)
    )
    splitter = GroupKFold(folds, shuffle=True, random_state=seed)
    for k, (train, test) in enumerate(splitter.split(clinic.logp, clinic.targets, clinic.groups)):
        fitted = fit_steps(meta, clinic, train, steps)
        probs, named, sets = fitted.rules.apply(fitted.logp[test])
        pooled.probs[test], pooled.named[test], pooled.threshold[test], pooled.fold[test] = (
            probs,
            named,
            fitted.rules.threshold,
            k,
        )
        pooled.refused[test] = fitted.refused(clinic, test)
        if sets is not None:
            pooled.sets = pooled.sets if pooled.sets is not None else np.zeros((n, c), bool)
            pooled.sets[test] = sets
    return pooled


def _score(meta: ArtifactMeta, clinic: Clinic, pooled: _Pooled, rows: np.ndarray) -> dict[str, float]:
    sets = pooled.sets[rows] if pooled.sets is not None else None
    return figures(
        meta,
        pooled.probs[rows],
        pooled.named[rows],
        sets,
        clinic.targets[rows],
        pooled.threshold[rows],
        pooled.refused[rows],
    )


def helps(step: str, before: dict[str, float], after: dict[str, float], meta: ArtifactMeta) -> bool:
    """Whether a step's pooled out-of-fold figure is better than without it. The head (compared
    with the other kept steps, not with the served model) must not lower the AUC or the BCC recall
    and must raise the balanced accuracy."""
    if step == "temperature":
        return after["ece"] < before["ece"]
    if step == "threshold":
        target = target_sensitivity(meta)
        return abs(after["sensitivity"] - target) < abs(before["sensitivity"] - target)
    if step == "decision":
        return after["balanced_accuracy"] > before["balanced_accuracy"]
    if step == "gate":  # and, where it was measured, still refusing what is not dermoscopy
        return (
            after["refused"] < before["refused"] and after.get("not_dermoscopy_refused", 1.0) >= MIN_REFUSED
        )
    if step == "adabn":  # unlabelled statistics: they must not cost ranking or refusals, and must name better
        named = after["balanced_accuracy"] > before["balanced_accuracy"]
        return after["auc"] >= before["auc"] and named and after["refused"] <= before["refused"]
    if step == "head":
        bcc_kept = not after["recall_bcc"] < before["recall_bcc"]  # no BCC in the clinic: nan, no veto
        return (
            after["auc"] >= before["auc"]
            and after["balanced_accuracy"] > before["balanced_accuracy"]
            and bcc_kept
        )
    stated = meta.conformal.coverage if meta.conformal else 0.0
    return abs(after["coverage"] - stated) < abs(before["coverage"] - stated)


def _choose(
    meta: ArtifactMeta, clinic: Clinic, folds: int, steps: Sequence[str], probe: Probe | None
) -> dict[str, Any]:
    """Which of `steps` are kept: each of the others judged alone against the served model (the
    gate also by `probe`), then the head against the kept ones; the trials of those left out."""
    everything = np.arange(len(clinic.targets))
    base = _score(meta, clinic, out_of_fold(meta, clinic, [], folds), everything)
    alone = [s for s in steps if s != "head"]
    trials = {
        step: _score(meta, clinic, out_of_fold(meta, clinic, [step], folds), everything) for step in alone
    }
    if "gate" in alone and probe is not None:
        gate = fit_steps(meta, clinic, everything, ["gate"]).gate
        trials["gate"]["not_dermoscopy_refused"] = probe(gate) if gate is not None else float("nan")
    kept = [step for step in alone if helps(step, base, trials[step], meta)]
    chosen: dict[str, Any] = {"kept": kept, "left": {s: trials[s] for s in alone if s not in kept}}
    if "gate" in trials:
        chosen["gate_not_dermoscopy_refused"] = trials["gate"].get("not_dermoscopy_refused")
    if "head" in steps:
        without = _score(meta, clinic, out_of_fold(meta, clinic, kept, folds), everything)
        trial = _score(meta, clinic, out_of_fold(meta, clinic, [*kept, "head"], folds), everything)
        chosen["without_head"] = without
        if helps("head", without, trial, meta):
            kept.append("head")
        else:
            chosen["left"]["head"] = trial
    return chosen


def cross_validate(
    meta: ArtifactMeta,
    clinic: Clinic,
    folds: int = 5,
    n_boot: int = 200,
    head: bool = False,
    probe: Probe | None = None,
) -> dict[str, Any]:
    """Which steps help out of fold, and the before → after figures per fold and pooled (with 95 %
    intervals by lesion). `head`: try `--head`; `probe`: the share of non-dermoscopy images a gate
    refuses (a re-centred gate below `MIN_REFUSED` is not kept)."""
    from dermalens.evaluation.bootstrap import bootstrap_ci

    everything = np.arange(len(clinic.targets))
    chosen = _choose(meta, clinic, folds, clinic.available(head), probe)
    before = out_of_fold(meta, clinic, [], folds)
    after = out_of_fold(meta, clinic, chosen["kept"], folds)
    groups = [str(g) for g in clinic.groups]

    def pooled(result: _Pooled) -> dict[str, Any]:
        point = _score(meta, clinic, result, everything)
        ci = bootstrap_ci(
            lambda rows: _score(meta, clinic, result, rows), len(everything), n_boot=n_boot, groups=groups
        )
        return {"figures": point, "ci": ci}

    return {
        "folds": folds,
        "n": len(clinic.targets),
        **chosen,
        "per_fold": [
            {
                "before": _score(meta, clinic, before, before.fold == k),
                "after": _score(meta, clinic, after, after.fold == k),
            }
            for k in range(folds)
        ],
        "before": pooled(before),
        "after": pooled(after),
    }


def adapted_meta(
    meta: ArtifactMeta, clinic: Clinic, report: dict[str, Any], source: str
) -> tuple[ArtifactMeta, Fitted]:
    """`meta` with the kept steps refitted on all the clinic's images and the report on its card;
    and the fit itself (its head and gate are for the graph and ood.npz)."""
    from dermalens.evaluation.conformal import set_conformal

    kept = report["kept"]
    fitted = fit_steps(meta, clinic, np.arange(len(clinic.targets)), kept)
    rules = fitted.rules
    where = f"{source} (dermalens adapt, {report['n']} images)"
    if "temperature" in kept:
        meta.temperature *= rules.scale
    if "threshold" in kept:
        meta.threshold = rules.threshold
        meta.threshold_rule = f"≥{target_sensitivity(meta):.0%} sensitivity for malignancy on {where}"
    if "decision" in kept:
        meta.class_bias = [float(b) for b in rules.bias]
        meta.class_bias_rule = f"log p − τ·log(training prior), τ by balanced accuracy on {where}"
    if "conformal" in kept and meta.conformal is not None:
        set_conformal(meta, softmax(fitted.logp, rules.scale), clinic.targets, where, meta.conformal.coverage)
    if fitted.gate is not None:
        meta.ood_threshold = fitted.gate.threshold
        meta.ood_method = f"{fitted.gate.method}; class and mid-level means re-centred on {where}"
    meta.metrics["adaptation"] = {"source": source, **report}
    return meta, fitted
