"""Turn a trained torch model into a complete artifact folder (weights, ONNX, OOD gate, metadata)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from dermalens.models.artifact import ONNX_FILE, OOD_FILE, WEIGHTS_FILE, ArtifactMeta, write_meta
from dermalens.models.export import export_onnx
from dermalens.models.ood import OodGate


def save_artifact(
    model: nn.Module, folder: str | Path, meta: ArtifactMeta, gate: OodGate | None = None
) -> Path:
    """Write weights.pt, model.onnx, ood.npz (if `gate`) and artifact.json (with hashes) into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = model.float().eval()
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, folder / WEIGHTS_FILE)
    export_onnx(model, folder / ONNX_FILE, meta.preprocessing.input_size)
    if gate is not None:
        save_gate(folder, meta, gate)
    write_meta(folder, meta)
    return folder


def save_gate(folder: Path, meta: ArtifactMeta, gate: OodGate) -> None:
    """Write ood.npz and record the gate's threshold and method in `meta` (then call `write_meta`)."""
    gate.save(folder / OOD_FILE)
    meta.ood_threshold = gate.threshold
    meta.ood_method = gate.method


def random_gate(dim: int, n_classes: int, seed: int = 0) -> OodGate:
    """A gate with unit covariance around random means (tests and untrained smoke artifacts only)."""
    rng = np.random.default_rng(seed)
    return OodGate(
        rng.normal(size=(n_classes, dim)).astype(np.float32), np.eye(dim, dtype=np.float32), float(dim) * 4
    )
