"""An ensemble artifact: up to three networks in one folder, with a decision fitted on their
combined output (`ArtifactMeta.ensemble`; issue #34 lets the bundled default be one).

Why fitted on the combination: each member's threshold, decision rule and prediction sets were
fitted on its own probabilities; averaged probabilities are another model, with another
distribution of p_malignant and another class mix among its mistakes. So the engine runs once over
the validation split(s) with every member, and the *same* fitting functions the single-model
commands use (`calibration.fit_operating_point`, `decision.fit_rule`, `conformal.fit_sets`) are fed
the combined probabilities. Nothing is fitted twice: the members keep their own temperatures (the
probabilities averaged are each member's calibrated ones) and OOD gates.

All three are fitted on the same images: the validation split(s) of every (dataset, split) pair
given, pooled, as training fits a single model's on its whole validation split (for the bundled
recipe: HAM10000's and ISIC 2019's). The decision rule corrects towards the primary's training
prior (the data the ensemble's first network was trained on).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from dermalens.artifact.meta import MAX_MEMBERS, MEMBERS_DIR, ArtifactMeta, EnsembleSpec
from dermalens.artifact.store import load_meta
from dermalens.artifact.write import write_ensemble
from dermalens.evaluation.calibration import fit_operating_point
from dermalens.evaluation.conformal import DEFAULT_COVERAGE, check_coverage, fit_sets
from dermalens.evaluation.decision import fit_rule
from dermalens.evaluation.outputs import Pooled, pooled_probabilities
from dermalens.evaluation.run import label_targets
from dermalens.inference.combined import check_classes
from dermalens.inference.engine import ArtifactPath, Engine

log = logging.getLogger(__name__)

DataPairs = Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str]]]


def check_count(n: int) -> None:
    """2 to `MAX_MEMBERS` networks, or an error that says why no more."""
    if not 2 <= n <= MAX_MEMBERS:
        raise ValueError(
            f"{n} model(s) given; an ensemble artifact holds 2 to {MAX_MEMBERS}: each network is one "
            f"more run per image, and issue #34's serving budget allows at most {MAX_MEMBERS}"
        )


def open_members(models: Sequence[ArtifactPath]) -> list[tuple[Path, ArtifactMeta]]:
    """Each model read and verified: single networks (not ensembles) that agree on their classes."""
    check_count(len(models))
    opened = [load_meta(m) for m in models]
    for folder, meta in opened:
        if meta.ensemble is not None:
            raise ValueError(f"{folder} is itself an ensemble artifact; give its networks one by one")
    check_classes([meta for _, meta in opened])
    return opened


def member_dirs(metas: Sequence[ArtifactMeta]) -> list[str]:
    """members/<name> for each member after the primary (its name made a safe folder name, made
    unique with a number where two members share one)."""
    taken: list[str] = []
    for k, meta in enumerate(metas[1:], start=1):
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", meta.name).strip("-.") or f"member{k}"
        name = base if f"{MEMBERS_DIR}/{base}" not in taken else f"{base}-{k}"
        taken.append(f"{MEMBERS_DIR}/{name}")
    return taken


def fit_spec(
    primary: ArtifactMeta,
    pooled: Pooled,
    members: list[str],
    *,
    target_sensitivity: float = 0.95,
    coverage: float = DEFAULT_COVERAGE,
    gate: Literal["first", "max"] = "first",
) -> EnsembleSpec:
    """The ensemble's threshold, decision rule and prediction sets, fitted on its combined
    validation probabilities, with what they were fitted on."""
    p_malignant = pooled.probs[:, primary.malignant_indices].sum(axis=1)
    point = fit_operating_point(pooled.labels, p_malignant, target_sensitivity, pooled.text)
    fitted: dict[str, Any] = {
        "source": pooled.text,
        "n": len(pooled.labels),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "calibration": point.figures,
    }
    spec = EnsembleSpec(members, point.threshold, point.rule, gate=gate, fitted=fitted)
    if primary.head != "dx":  # binary and hierarchical heads: the argmax, no sets (as single models)
        return spec
    keep, targets = label_targets(pooled.labels, primary.classes)
    sources = [s for s, k in zip(pooled.sources, keep, strict=True) if k]
    rule = fit_rule(primary, pooled.probs[keep], targets, sources, pooled.text)
    spec.class_bias, spec.class_bias_rule = rule.class_bias, rule.rule
    spec.conformal, figures = fit_sets(
        primary, pooled.probs[keep], targets, pooled.text, coverage, rule.class_bias
    )
    spec.fitted.update(decision=rule.evidence, conformal=figures)  # pydantic keeps its own copy
    return spec


def build_ensemble(
    models: Sequence[ArtifactPath],
    out: str | os.PathLike[str],
    datasets: DataPairs,
    *,
    split_name: str = "val",
    target_sensitivity: float = 0.95,
    coverage: float = DEFAULT_COVERAGE,
    gate: Literal["first", "max"] = "first",
    name: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Fit an ensemble of `models` (the first is the primary) on the `split_name` split of every
    (dataset, split file) pair and write it to `out`: the primary's copy, the others in
    members/<name> without weights.pt, the fitted decision in its artifact.json. Nothing is
    written when a check or a fit fails. Returns what was stored."""
    check_coverage(coverage)
    if gate not in ("first", "max"):
        raise ValueError(f"gate {gate!r}; valid: first (the primary's gate refuses), max (any member's)")
    if Path(out).exists():
        raise ValueError(f"{out} exists; choose a new folder for the ensemble artifact")
    opened = open_members(models)
    if not datasets:
        raise ValueError("no validation data: give at least one --data with its --split")
    engine = Engine.load([folder for folder, _ in opened], verify=False)  # verified just above
    pooled = pooled_probabilities(engine, datasets, split_name, progress=progress)
    dirs = member_dirs([meta for _, meta in opened])
    spec = fit_spec(
        opened[0][1],
        pooled,
        dirs,
        target_sensitivity=target_sensitivity,
        coverage=coverage,
        gate=gate,
    )
    spec.fitted["member_ids"] = {d: meta.model_id for d, (_, meta) in zip(["", *dirs], opened, strict=True)}
    folder = write_ensemble(Path(out), opened[0][0], [f for f, _ in opened[1:]], spec, name)
    Engine.load(folder)  # opens as it will be served: every hash, every member
    log.info("ensemble of %d networks written to %s", len(opened), folder)
    return {"artifact": str(folder), "members": ["(primary)", *dirs], **spec.fitted}
