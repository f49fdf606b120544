"""AdaBN for `dermalens adapt --unlabelled`: the network's batch-norm statistics re-estimated on a
clinic's own (unlabelled) images, and the ONNX graph re-exported.

Why: batch norm standardises every channel with the mean and variance it saw on the training
clinics; another dermatoscope's colour, light and sharpness move those statistics, and everything
downstream reads shifted inputs. Replacing only the running statistics with the clinic's
(Li et al., "Revisiting Batch Normalization For Practical Domain Adaptation", 2016) needs no labels
and changes no learned weight. It needs the artifact's PyTorch weights: an artifact without
weights.pt (or an INT8 one, whose graph is not re-exported) cannot be adapted this way. An
ensemble artifact's primary network is adapted alone, into one network (its ensemble's decision was
fitted on the members' average, which new statistics would change).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dermalens.artifact.meta import ONNX_FILE, WEIGHTS_FILE
from dermalens.artifact.store import ensemble_words, load_meta
from dermalens.artifact.write import primary_copy, put_file, writable_copy, write_meta
from dermalens.core.decode import ImageInput
from dermalens.inference.engine import Engine
from dermalens.inference.member import Member
from dermalens.models.export import export_onnx
from dermalens.models.factory import build_from_meta
from dermalens.models.heads import call_model, uses_metadata

log = logging.getLogger(__name__)

#: Images per forward pass while the statistics are gathered.
BATCH = 32


def reestimate(model: nn.Module, inputs: Iterable[np.ndarray]) -> int:
    """Replace every batch norm's running mean and variance by their average over `inputs`
    (preprocessed 3×H×W arrays, as served); learned weights untouched. Returns the image count."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over all batches, not an exponential one
        norm.train()
    seen, batch = 0, []
    metadata_dim = int(getattr(model, "metadata_dim", 0)) if uses_metadata(model) else 0
    with torch.no_grad():
        for array in [*inputs, None]:
            if array is not None:
                batch.append(array)
            if batch and (array is None or len(batch) == BATCH):
                x = torch.from_numpy(np.stack(batch))
                call_model(model, x, torch.zeros(len(batch), metadata_dim) if metadata_dim else None)
                seen, batch = seen + len(batch), []
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.eval()
    return seen


def adabn_copy(
    model: str | os.PathLike[str] | None, images: Sequence[ImageInput], out: str | os.PathLike[str]
) -> Path:
    """A copy of `model` at `out` whose batch-norm statistics are `images`' (weights.pt and the
    re-exported graph; the gate and everything else as they were)."""
    folder, meta = load_meta(model, verify=False)
    if meta.ensemble is not None:  # a changed primary would leave the ensemble's decision stale
        log.warning(
            "%s; AdaBN adapts its primary network alone, into one network", ensemble_words(folder, meta)
        )
    if meta.training.get("quantized"):
        raise ValueError(
            f"{folder}: an INT8 artifact's graph is not re-exported; AdaBN needs the float model"
        )
    if not (folder / WEIGHTS_FILE).is_file():
        raise ValueError(
            f"{folder}: no {WEIGHTS_FILE}; --unlabelled re-estimates the network's batch-norm statistics "
            "and needs the PyTorch weights (adapt an artifact that has them, or leave --unlabelled out)"
        )
    network = build_from_meta(meta, folder / WEIGHTS_FILE)
    if reestimate(network, Engine([Member.open(folder)]).network_inputs(images)) < 2:  # the primary's input
        raise ValueError("--unlabelled: fewer than 2 readable images; nothing to estimate statistics on")
    if meta.ensemble is None:
        target = writable_copy(folder, out)
    else:  # its primary's files and metadata, without the ensemble (`primary_copy`)
        target = primary_copy(folder, out)
        _, meta = load_meta(target, verify=False)
    put_file(target, WEIGHTS_FILE, lambda tmp: torch.save(network.state_dict(), tmp))
    put_file(target, ONNX_FILE, lambda tmp: export_onnx(network, tmp, meta.preprocessing.input_size))
    write_meta(target, meta)
    return target
