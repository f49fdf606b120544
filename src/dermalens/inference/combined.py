"""What the engine gives back for a set of images: each member's raw outputs, and their
combination, where every result is decided once (`Combined.results`): the decision, the refusal,
the top class and the malignancy probability."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dermalens.artifact.meta import ArtifactError, ArtifactMeta, ConformalSets, EnsembleSpec
from dermalens.inference.conformal import set_labels, shown_sets
from dermalens.inference.probabilities import top_class, view_probabilities
from dermalens.inference.results import Prediction, decide


@dataclass
class Outputs:
    """One member's raw outputs on the images that could be read (rows in input order)."""

    folder: Path
    meta: ArtifactMeta
    image_ids: list[str]
    #: [V, N, C]: one slice of raw logits per TTA view (V = 1 without TTA).
    logits: np.ndarray
    #: [N, D] pooled embedding of the first view (what the OOD gate scores), or None.
    features: np.ndarray | None
    #: [N] OOD score of the member's gate (0 where it has none); > 1 means out of distribution.
    ood_score: np.ndarray
    #: (image id, reason) for inputs that failed to decode.
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: [N, Dl] pooled mid-level features of the first view (the gate's second input), or None.
    level_features: np.ndarray | None = None

    def probabilities(self, temperature: float | None = None) -> np.ndarray:
        """[N, C] mean over views of softmax(logits / T); T defaults to the artifact's."""
        return view_probabilities(self.logits, self.meta.temperature if temperature is None else temperature)


@dataclass
class Combined:
    """An ensemble's result: members' calibrated probabilities averaged, gate scores maximised (or
    the primary's alone: `EnsembleSpec.gate`)."""

    image_ids: list[str]
    classes: list[str]
    malignant: list[str]
    probs: np.ndarray  # [N, C], calibrated
    p_malignant: np.ndarray  # [N]
    ood_score: np.ndarray  # [N]
    threshold: float  # the ensemble artifact's, else the members' mean operating threshold
    #: [C] the ensemble artifact's, else the members' mean decision offsets (`ArtifactMeta.class_bias`;
    #: zeros = most probable class)
    class_bias: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: (coverage, APS quantile) of the prediction sets, or None where the model has none fitted
    #: (or for an ensemble of several artifacts: a quantile holds for the one model it was fitted on;
    #: an ensemble artifact has its own, fitted on the combined output).
    conformal: tuple[float, float] | None = None

    @property
    def sets(self) -> list[list[str]] | None:
        """Each image's prediction set (its diagnosis first: `shown_sets`), or None without a quantile."""
        if self.conformal is None:
            return None
        top = self.top
        member = shown_sets(self.probs, self.conformal[1], top)
        return [set_labels(member[j], self.classes, self.probs[j], int(top[j])) for j in range(len(top))]

    @property
    def top(self) -> np.ndarray:
        """[N] each image's diagnosis index under the artifact's decision rule (`top_class`)."""
        return top_class(self.probs, self.class_bias)

    @property
    def prediction(self) -> list[str]:
        """Each image's diagnosis (kept for analysis also when the image is refused)."""
        return [self.classes[i] for i in self.top]

    @property
    def ood(self) -> np.ndarray:
        """True where the gate refuses the image (a score above 1)."""
        return self.ood_score > 1.0

    def verdicts(self, threshold: float | None = None) -> list[str]:
        """benign/malignant at `threshold` (default: the operating one), refused images included:
        what `evaluate`'s predictions.csv records beside its `ood` column."""
        cut = self.threshold if threshold is None else threshold
        return [decide(float(p), False, cut) for p in self.p_malignant]

    def results(self, threshold: float | None = None, model: str = "") -> list[Prediction]:
        """One `Prediction` per row: the decision (refused where the gate refuses), the top class
        and the malignancy probability are decided here, once, for every caller."""
        cut = self.threshold if threshold is None else threshold
        top, refused, sets = self.prediction, self.ood, self.sets
        coverage = self.conformal[0] if self.conformal else None
        return [
            Prediction.decided(
                probabilities={c: float(p) for c, p in zip(self.classes, self.probs[j], strict=True)},
                p_malignant=float(self.p_malignant[j]),
                top_class=top[j],
                decision=decide(float(self.p_malignant[j]), bool(refused[j]), cut),
                threshold=cut,
                ood=bool(refused[j]),
                ood_score=float(self.ood_score[j]),
                model=model,
                ranked_set=sets[j] if sets is not None else None,
                coverage=coverage,
            )
            for j in range(len(top))
        ]


def combine(
    members: Sequence[Outputs], coverage: float | None = None, ensemble: EnsembleSpec | None = None
) -> Combined:
    """Average calibrated probabilities over members (on the images every member could read).

    `ensemble`: the spec of the ensemble artifact these members came from, whose threshold,
    decision rule and prediction sets were fitted on this very average; its gate rule says whose
    OOD score counts ("first": the primary's, "max": the largest). Without it (one model, or
    several artifacts given together) the generic rule: the members' mean threshold and decision
    offsets, the largest OOD score (any member that refuses an image refuses it), and a single
    model's prediction sets, at `coverage` (default: the artifact's)."""
    first = members[0]
    check_classes([m.meta for m in members])
    common = set(first.image_ids).intersection(*(m.image_ids for m in members[1:]))
    ids = [i for i in first.image_ids if i in common]
    probs = np.zeros((len(ids), len(first.meta.classes)))
    ood = np.zeros(len(ids))
    gated = 1 if ensemble is not None and ensemble.gate == "first" else len(members)
    for k, member in enumerate(members):
        index = {image_id: k for k, image_id in enumerate(member.image_ids)}
        rows = [index[i] for i in ids]
        probs += member.probabilities()[rows]
        if k < gated:
            ood = np.maximum(ood, member.ood_score[rows])
    probs /= len(members)
    metas = [m.meta for m in members]
    threshold, bias = operating_rule(metas, ensemble)
    return Combined(
        image_ids=ids,
        classes=list(first.meta.classes),
        malignant=list(first.meta.malignant),
        probs=probs,
        p_malignant=probs[:, first.meta.malignant_indices].sum(axis=1),
        ood_score=ood,
        threshold=threshold,
        class_bias=bias,
        conformal=conformal_for(metas, coverage, ensemble),
    )


def operating_rule(
    metas: Sequence[ArtifactMeta], ensemble: EnsembleSpec | None = None
) -> tuple[float, np.ndarray]:
    """(malignancy threshold, [C] decision offsets): the ensemble artifact's own, else the members' means."""
    if ensemble is not None:
        bias = ensemble.class_bias or [0.0] * len(metas[0].classes)
        return ensemble.threshold, np.asarray(bias, dtype=np.float64)
    threshold = float(np.mean([m.threshold for m in metas]))
    return threshold, np.mean([m.decision_bias for m in metas], axis=0)


def threshold_rule(metas: Sequence[ArtifactMeta], ensemble: EnsembleSpec | None = None) -> str:
    """How the operating threshold was chosen, in words: the ensemble artifact's rule, else each
    member's distinct rule."""
    return (
        ensemble.threshold_rule
        if ensemble is not None
        else "; ".join(sorted({m.threshold_rule for m in metas}))
    )


def fitted_sets(metas: Sequence[ArtifactMeta], ensemble: EnsembleSpec | None = None) -> ConformalSets | None:
    """The prediction sets that hold for these members combined: an ensemble artifact's own, one
    model's, or none (several artifacts given together: no quantile was fitted on their average)."""
    if ensemble is not None:
        return ensemble.conformal
    return metas[0].conformal if len(metas) == 1 else None


def conformal_for(
    metas: Sequence[ArtifactMeta], coverage: float | None, ensemble: EnsembleSpec | None = None
) -> tuple[float, float] | None:
    """The fitted sets' (coverage, quantile) (`fitted_sets`); None where there are none, unless a
    coverage was asked for: then that is an error that says why there is none."""
    fitted = fitted_sets(metas, ensemble)
    if fitted is None:
        if coverage is not None:
            several = len(metas) > 1 and ensemble is None
            why = "an ensemble of several artifacts has none" if several else "this model has none fitted"
            raise ValueError(f"no prediction sets: {why} (fit them with `dermalens conformal`)")
        return None
    return fitted.quantile(coverage)


def check_classes(metas: Sequence[ArtifactMeta]) -> None:
    for meta in metas[1:]:
        if meta.classes != metas[0].classes:
            raise ArtifactError(f"ensemble members disagree on classes: {meta.classes} vs {metas[0].classes}")
