"""Turn a trained torch model into a complete artifact folder (weights, ONNX, OOD gate, metadata)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from dermalens.artifact.meta import ONNX_FILE, WEIGHTS_FILE, ArtifactMeta
from dermalens.artifact.ood import OodGate
from dermalens.artifact.write import put_file, save_gate, write_meta
from dermalens.models.export import export_onnx


def save_artifact(
    model: nn.Module, folder: str | Path, meta: ArtifactMeta, gate: OodGate | None = None
) -> Path:
    """Write weights.pt, model.onnx, ood.npz (if `gate`) and artifact.json (with hashes) into `folder`:
    the weights and graph are made here (torch), each handed to `artifact.write` to place."""
    folder = Path(folder)
    model = model.float().eval()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    put_file(folder, WEIGHTS_FILE, lambda path: torch.save(state, path))
    put_file(folder, ONNX_FILE, lambda path: export_onnx(model, path, meta.preprocessing.input_size))
    if gate is not None:
        save_gate(folder, meta, gate)
    write_meta(folder, meta)
    return folder


def random_gate(dim: int, n_classes: int, seed: int = 0) -> OodGate:
    """A gate with unit covariance around random means (tests and untrained smoke artifacts only)."""
    rng = np.random.default_rng(seed)
    return OodGate(
        rng.normal(size=(n_classes, dim)).astype(np.float32), np.eye(dim, dtype=np.float32), float(dim) * 4
    )
