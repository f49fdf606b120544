"""`dermalens adapt --unlabelled DIR`: AdaBN (`training.adabn`) plus the gate re-centred on the
clinic's images, measured out of fold on the clinic's labelled images before it is kept.

Measured as the labelled steps are: lesion-grouped folds of the labelled clinic images; in each,
the statistics are re-estimated on the other folds' images *treated as unlabelled* (their labels
are never read), the gate re-centred on their features (each image's nearest class), and the
held-out fold served by the new graph with the artifact's own rules. Kept only if the pooled
out-of-fold AUC is not lower, the share refused by the gate not higher and the balanced accuracy
higher (`evaluation.adapt.helps`); then
the statistics are re-estimated on all of DIR's images, and the labelled steps are fitted on top.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import GroupKFold

from dermalens.artifact.meta import OOD_FILE
from dermalens.artifact.store import load_meta
from dermalens.artifact.write import put_file, write_meta
from dermalens.core.decode import IMAGE_SUFFIXES
from dermalens.evaluation.adapt import Clinic, figures, helps, served_rules
from dermalens.evaluation.adapt_run import read_clinic
from dermalens.inference.engine import Engine
from dermalens.models.ood_fit import shift_gate
from dermalens.training.adabn import adabn_copy

PathLike = str | os.PathLike[str]


def unlabelled_images(folder: PathLike) -> list[Path]:
    """Every image file under `folder` (any depth), sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"--unlabelled {folder}: not a folder (give a folder of the clinic's images)")
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise ValueError(f"--unlabelled {folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return found


def recentre(folder: Path, images: list[Any]) -> None:
    """Re-centre the gate of the artifact at `folder` (in place) on `images`, as its graph serves
    them (each image's nearest class: no labels)."""
    engine = Engine.load(folder)
    out = engine.run(images).members[0]
    gate = engine.members[0].gate
    if gate is None or out.features is None:
        return
    shifted = shift_gate(gate, out.features, out.level_features)
    put_file(folder, OOD_FILE, shifted.save)
    _, meta = load_meta(folder, verify=False)
    meta.ood_method = (
        f"{shifted.method}; class and mid-level means re-centred on {len(out.image_ids)} clinic images"
    )
    write_meta(folder, meta)


def _fold(
    folder: Path, clinic: Clinic, train: np.ndarray, test: np.ndarray, work: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out log-probabilities and refusals of `test` under AdaBN + gate fitted on `train`
    (the re-centred gate is the copy's own, so its refusals include the colour check)."""
    assert clinic.images is not None
    copy = adabn_copy(folder, list(clinic.images[train]), work)
    recentre(copy, list(clinic.images[train]))
    engine = Engine.load(copy)
    out = engine.run(list(clinic.images[test]), ids=[str(i) for i in test]).members[0]
    rows = np.asarray([int(i) for i in out.image_ids])
    if len(rows) != len(test):
        raise ValueError(f"{len(test) - len(rows)} clinic images could not be read again")
    return np.log(np.maximum(out.probabilities(), 1e-12)), out.ood_score > 1.0


def measure(model: PathLike | None, clinic: Clinic, folds: int) -> dict[str, Any]:
    """Out-of-fold figures before and after AdaBN + gate, pooled and per fold, and whether kept."""
    folder, meta = load_meta(model, verify=False)
    n = len(clinic.targets)
    logp, refused, fold = np.zeros_like(clinic.logp), np.zeros(n, bool), np.zeros(n, int)
    with tempfile.TemporaryDirectory(prefix="adabn-") as work:
        splitter = GroupKFold(folds, shuffle=True, random_state=0)
        for k, (train, test) in enumerate(splitter.split(clinic.logp, clinic.targets, clinic.groups)):
            logp[test], refused[test] = _fold(folder, clinic, train, test, Path(work) / f"fold{k}")
            fold[test] = k

    def score(values: np.ndarray, refusals: np.ndarray, rows: np.ndarray) -> dict[str, float]:
        probs, named, sets = served_rules(meta).apply(values[rows])
        threshold = np.full(len(rows), meta.threshold)
        return figures(meta, probs, named, sets, clinic.targets[rows], threshold, refusals[rows])

    every = np.arange(n)
    before, after = score(clinic.logp, clinic.refused, every), score(logp, refused, every)
    return {
        "kept": helps("adabn", before, after, meta),
        "before": before,
        "after": after,
        "per_fold": [
            {
                "before": score(clinic.logp, clinic.refused, every[fold == k]),
                "after": score(logp, refused, every[fold == k]),
            }
            for k in range(folds)
        ],
    }


def adapt_unlabelled(
    model: PathLike | None,
    unlabelled: PathLike,
    data_path: PathLike,
    split_file: PathLike | None,
    split_name: str,
    folds: int,
    work: Path,
    progress: bool = False,
) -> tuple[PathLike | None, dict[str, Any]]:
    """The model the labelled steps start from (an AdaBN copy under `work`, or `model` itself
    where AdaBN did not help out of fold) and the measurement for the card."""
    clinic, _ = read_clinic(
        Engine.load(load_meta(model, verify=False)[0]), data_path, split_file, split_name, progress
    )
    report = measure(model, clinic, folds)
    images = unlabelled_images(unlabelled)
    report |= {"images": len(images), "source": Path(unlabelled).name}
    if not report["kept"]:
        return model, report
    copy = adabn_copy(model, images, work / "adabn")
    recentre(copy, list(images))
    return copy, report
