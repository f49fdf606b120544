"""A weight-averaged "soup" of fine-tuned models: one network, the serving cost of one.

Why: runs fine-tuned from the same starting point (here the HAM10000 model, with the same frozen
blocks) stay in one basin of the loss, so the average of their weights is itself a good network,
and usually a better one on data from elsewhere than each run alone (Wortsman et al., "Model
soups: averaging weights of multiple fine-tuned models improves accuracy without increasing
inference time", ICML 2022). An ensemble would buy the same robustness at N× the serving time.

The soup is a new artifact: its calibration, threshold, decision rule and OOD gate are fitted again
on the validation split of the first model's recipe (its saved config), as for any trained run, so
nothing fitted for one member is reused for a network it was not fitted on.

An ensemble artifact given as an ingredient gives its primary network's weights (said in one line):
the soup is one new network either way. A folder without weights.pt (an ensemble's members/NAME)
is refused: it has nothing to average.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dermalens.artifact.meta import WEIGHTS_FILE, ArtifactMeta
from dermalens.artifact.store import ensemble_words, load_meta
from dermalens.models.factory import build_from_meta

log = logging.getLogger(__name__)

#: Smallest input side a soup may be served at (the network's total stride is 32; below 8 px nothing is left).
MIN_SIDE = 8

#: What members must share for their weights to be averaged, and for one artifact to describe them.
SAME = ("architecture", "classes", "malignant", "head", "metadata_inputs", "metadata_branch")


def check_compatible(metas: Sequence[ArtifactMeta]) -> None:
    """`ValueError` naming the first field on which a member differs from the first one."""
    if len(metas) < 2:
        raise ValueError(f"a soup needs at least 2 models; got {len(metas)}")
    first = metas[0]
    for meta in metas[1:]:
        for name in SAME:
            if getattr(meta, name) != getattr(first, name):
                raise ValueError(
                    f"{meta.name} and {first.name} differ in {name} "
                    f"({getattr(meta, name)!r} against {getattr(first, name)!r}); only models of one "
                    "architecture, class list and head can be averaged"
                )
        if meta.preprocessing.to_dict() != first.preprocessing.to_dict():
            raise ValueError(
                f"{meta.name} and {first.name} differ in preprocessing; the soup would be fed one of them"
            )


def average_state(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of floating-point tensors (weights, batch-norm statistics); integer
    buffers (batch-norm step counters) are taken from the first member."""
    keys = list(states[0])
    for state in states[1:]:
        if list(state) != keys:
            missing = sorted(set(keys) ^ set(state))[:5]
            raise ValueError(f"the models' parameters differ (e.g. {missing}); they cannot be averaged")
    averaged = {}
    for key in keys:
        tensors = [s[key] for s in states]
        if any(t.shape != tensors[0].shape for t in tensors):
            raise ValueError(f"parameter {key} has shapes {[tuple(t.shape) for t in tensors]}")
        first = tensors[0]
        averaged[key] = (
            torch.stack([t.float() for t in tensors]).mean(dim=0).to(first.dtype)
            if first.is_floating_point()
            else first.clone()
        )
    return averaged


def load_members(folders: Sequence[str | Path]) -> list[tuple[Path, ArtifactMeta]]:
    """Each artifact's folder and verified metadata, checked to be averageable (`check_compatible`)."""
    loaded = [load_meta(f, verify=True) for f in folders]
    for folder, meta in loaded:
        if not (folder / WEIGHTS_FILE).is_file():
            raise ValueError(
                f"{folder}: no {WEIGHTS_FILE} (an ensemble's member folders are copied without it); "
                "soup averages weights: pass the artifact the member was built from, with its weights"
            )
        if meta.ensemble is not None:
            log.warning("%s; soup averages its primary network's weights", ensemble_words(folder, meta))
    check_compatible([meta for _, meta in loaded])
    return loaded


def soup_network(members: Sequence[tuple[Path, ArtifactMeta]]) -> nn.Module:
    """The averaged network of `load_members`' artifacts (each with its weights.pt)."""
    networks = [build_from_meta(meta, folder / WEIGHTS_FILE) for folder, meta in members]
    model = networks[0]
    model.load_state_dict(average_state([n.state_dict() for n in networks]))
    return model.eval()


def build_soup(
    folders: Sequence[str | Path],
    out: str | Path,
    *,
    name: str | None = None,
    command: str = "",
    input_size: tuple[int, int] | None = None,
) -> Path:
    """Average the artifacts' weights and build a new artifact in `out` (a new folder), fitted on the
    validation split of the first member's recipe (its data, split file and preprocessing).
    Everything that can refuse is checked before the networks are loaded and averaged.

    `input_size` (width, height) serves the soup at another size than it was trained at, with
    calibration, threshold and gate fitted at that size. Why: random-resized-crop training shows
    lesions larger than whole-frame serving does, so a slightly larger test input can match them
    (Touvron et al., "Fixing the train-test resolution discrepancy", NeurIPS 2019); the network is
    fully convolutional with global pooling, so it accepts any size. Choose it on validation."""
    from dermalens.training.config import config_from_data
    from dermalens.training.finalize import build_artifact

    if Path(out).exists():
        raise ValueError(f"{out} exists; choose a new folder for the soup")
    if input_size is not None and min(input_size) < MIN_SIDE:
        raise ValueError(f"input size {input_size}: both sides must be at least {MIN_SIDE} pixels")
    members = load_members(folders)
    metas = [meta for _, meta in members]
    if "config" not in metas[0].training:
        raise ValueError(
            f"{metas[0].name} has no training config in its artifact.json; list first a member built by "
            "`dermalens train`, whose recipe names the validation split the soup is refitted on"
        )
    overrides = [] if input_size is None else [f"preprocessing.input_size=[{input_size[0]}, {input_size[1]}]"]
    config = config_from_data(metas[0].training["config"], overrides)
    at = "" if input_size is None else f"-at{input_size[0]}x{input_size[1]}"
    config.name = name or "soup-" + "-".join(m.name for m in metas) + at
    notes: dict[str, Any] = {"soup_of": [{"name": m.name, "model_id": m.model_id} for m in metas]}
    if input_size is not None:
        notes["trained_input_size"] = list(metas[0].preprocessing.input_size)
    return build_artifact(soup_network(members), config, Path(out), command=command, notes=notes)
