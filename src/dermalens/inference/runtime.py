"""Runtimes that execute an artifact's network: ONNX Runtime (default, no torch) and PyTorch.

Both return the same three arrays for a float32 N×3×H×W batch: ``logits`` [N,C],
``features`` [N,D] (pooled embedding, for the OOD gate) and ``cam`` [N,C,h,w]
(class activation maps). The PyTorch runtime exists for training-side use and for
parity tests; serving uses ONNX Runtime.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dermalens.artifact.meta import ONNX_FILE, WEIGHTS_FILE, ArtifactError, ArtifactMeta

RUNTIMES = ("onnx", "torch")


class Runtime(Protocol):
    def run(self, batch: np.ndarray, metadata: np.ndarray | None = None) -> dict[str, np.ndarray]: ...


def _metadata_input(metadata: np.ndarray | None, n: int, dim: int) -> np.ndarray:
    """The [N, dim] metadata batch; a model that reads metadata must be given it (the predictor
    encodes unknown values explicitly rather than leaving them out)."""
    if metadata is None:
        raise ValueError(f"this model reads patient metadata: pass a [{n}, {dim}] metadata array")
    array = np.ascontiguousarray(metadata, dtype=np.float32)
    if array.shape != (n, dim):
        raise ValueError(f"metadata has shape {array.shape}; this model expects ({n}, {dim})")
    return array


class OnnxRuntime:
    """An ONNX Runtime session over ``model.onnx``; thread-safe for concurrent `run` calls."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        # Nothing about a patient's use may leave through ORT's own telemetry (on Windows builds it
        # logs session events to ETW); dermalens writes only the log the user configured.
        ort.disable_telemetry_events()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # One thread per run by default: the engine runs one session call per lane, in parallel
        # (`inference.engine.Engine.load` gives the measurements).
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # ORT's worker threads busy-wait after each run by default. On a small CPU they then take the
        # cores from the decoding and preprocessing that run between two inferences: measured on
        # 2 cores, one 600×450 JPEG end to end went from p50 43 ms to 19 ms with spinning off.
        # DERMALENS_ORT_SPIN=1 restores it (e.g. a dedicated inference box running only batches).
        spin = os.environ.get("DERMALENS_ORT_SPIN", "0")
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin == "1" else "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # ORT raises its own exception types for bad files
            raise ArtifactError(f"{path}: ONNX Runtime cannot load the model ({err})") from None
        self.outputs = [o.name for o in self.session.get_outputs()]
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.metadata_dim = int(inputs["metadata"].shape[1]) if "metadata" in inputs else 0

    def run(self, batch: np.ndarray, metadata: np.ndarray | None = None) -> dict[str, np.ndarray]:
        feed = {"image": np.ascontiguousarray(batch, dtype=np.float32)}
        if self.metadata_dim:
            feed["metadata"] = _metadata_input(metadata, len(batch), self.metadata_dim)
        values = self.session.run(self.outputs, feed)
        return dict(zip(self.outputs, values, strict=True))


class TorchRuntime:
    """The same network in eager PyTorch (needs the `train` extra)."""

    def __init__(self, folder: Path, meta: ArtifactMeta) -> None:
        if not (folder / WEIGHTS_FILE).is_file():  # the wheel's bundled model leaves the weights out
            raise ArtifactError(
                f"{folder}: no {WEIGHTS_FILE} for the PyTorch runtime; this copy serves through ONNX Runtime only"
            )
        import torch

        from dermalens.models.factory import build_from_meta

        self.torch = torch
        self.model = build_from_meta(meta, folder / WEIGHTS_FILE).eval()

    def run(self, batch: np.ndarray, metadata: np.ndarray | None = None) -> dict[str, np.ndarray]:
        from dermalens.models.heads import forward_all, has_linear_cam, uses_metadata

        tensor = self.torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        extra = None
        if uses_metadata(self.model):
            dim = int(self.model.metadata_dim)  # type: ignore[arg-type]
            extra = self.torch.from_numpy(_metadata_input(metadata, len(batch), dim))
        with self.torch.inference_mode():
            out = {k: v.float().numpy() for k, v in forward_all(self.model, tensor, extra).items()}
        if not has_linear_cam(self.model) and not hasattr(
            self.model, "backbone"
        ):  # no exact CAM: Grad-CAM of the top class in every channel
            from dermalens.models.gradcam import grad_cam

            maps = grad_cam(self.model, tensor.clone(), out["logits"].argmax(axis=1).tolist())
            out["cam"] = np.repeat(maps[:, None], out["logits"].shape[1], axis=1)
        return out


def create_runtime(folder: Path, meta: ArtifactMeta, runtime: str = "onnx", threads: int = 1) -> Any:
    """Open the artifact's network with the named runtime; errors list the valid names."""
    if not meta.model_kind.network:  # a classical baseline: plain arrays, no network
        from dermalens.inference.baseline import BaselineRuntime

        return BaselineRuntime(folder, meta)
    if runtime == "onnx":
        if not (folder / ONNX_FILE).is_file():
            raise ArtifactError(f"{folder}: no {ONNX_FILE}; export one with `dermalens export --format onnx`")
        return OnnxRuntime(folder / ONNX_FILE, threads)
    if runtime == "torch":
        return TorchRuntime(folder, meta)
    raise ValueError(f"unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")
