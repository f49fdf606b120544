"""Keep an adapted artifact's weights.pt in step with its graph.

Why: `dermalens adapt --head` writes the refitted head into the ONNX graph (torch-free, in
`evaluation.adapt_run`); the PyTorch weights beside it must say the same, or a later re-export
(`dermalens refit-gate`, AdaBN) would silently bring the original head back.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dermalens.artifact.meta import ONNX_FILE, WEIGHTS_FILE
from dermalens.artifact.store import load_meta
from dermalens.artifact.write import put_file, write_meta
from dermalens.models.onnx_head import read_head


def sync_head_weights(folder: Path) -> bool:
    """Copy the graph's linear head into weights.pt (`classifier.weight`/`.bias`) and rehash; False
    where the artifact has no weights.pt or no such keys (nothing to keep in step)."""
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        return False
    state = torch.load(weights, map_location="cpu", weights_only=True)
    if "classifier.weight" not in state or "classifier.bias" not in state:
        return False
    weight, bias = read_head(folder / ONNX_FILE)
    for key, value in (("classifier.weight", weight), ("classifier.bias", bias)):
        state[key] = torch.as_tensor(value, dtype=state[key].dtype).reshape(state[key].shape)
    put_file(folder, WEIGHTS_FILE, lambda tmp: torch.save(state, tmp))
    _, meta = load_meta(folder, verify=False)
    write_meta(folder, meta)
    return True
