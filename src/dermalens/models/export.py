"""Export an artifact's network to ONNX (served by ONNX Runtime) or TorchScript.

The ONNX graph has the input ``image`` [N,3,H,W] (batch, height and width dynamic,
so TTA rotations need no crop), plus ``metadata`` [N,M] for metadata-fusion models, and the outputs ``logits``, ``features``,
``cam`` and (EfficientNet) ``level_features``: `models.heads.OUTPUT_NAMES`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from dermalens.models.heads import OUTPUT_NAMES, ExportWrapper, forward_all, uses_metadata

log = logging.getLogger(__name__)
EXPORT_FORMATS = ("onnx", "torchscript")


def export_onnx(model: nn.Module, out: Path, input_size: tuple[int, int], opset: int = 17) -> Path:
    """Write `model` (eval mode, fp32) as ONNX with dynamic batch/height/width."""
    wrapper = ExportWrapper(model.float().eval().to(memory_format=torch.contiguous_format))
    width, height = input_size
    example = _example_inputs(model, 2, height, width)
    inputs = ["image", "metadata"][: len(example)]
    out.parent.mkdir(parents=True, exist_ok=True)
    dynamic = {"image": {0: "batch", 2: "height", 3: "width"}, "metadata": {0: "batch"}}
    dynamic = {k: v for k, v in dynamic.items() if k in inputs}
    with torch.no_grad():
        produced = forward_all(wrapper.model, *example)
        outputs = [name for name in OUTPUT_NAMES if name in produced]
        dynamic.update({name: {0: "batch"} for name in outputs})
        torch.onnx.export(
            wrapper,
            example,
            str(out),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=opset,
            dynamo=False,
        )
    return out


def _example_inputs(model: nn.Module, n: int, height: int, width: int) -> tuple[torch.Tensor, ...]:
    """(image,) or, for a metadata-fusion model, (image, metadata)."""
    image = torch.zeros(n, 3, height, width)
    if uses_metadata(model):
        return image, torch.zeros(n, int(model.metadata_dim))  # type: ignore[arg-type]
    return (image,)


def export_torchscript(model: nn.Module, out: Path, input_size: tuple[int, int]) -> Path:
    """Write a traced TorchScript module returning the `OUTPUT_NAMES` tuple."""
    width, height = input_size
    wrapper = ExportWrapper(model.float().eval())
    with torch.no_grad():
        traced = torch.jit.trace(wrapper, _example_inputs(model, 1, height, width), check_trace=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    traced.save(str(out))
    return out


def export(model: nn.Module, out: Path, fmt: str, input_size: tuple[int, int]) -> Path:
    if fmt == "onnx":
        return export_onnx(model, out, input_size)
    if fmt == "torchscript":
        return export_torchscript(model, out, input_size)
    raise ValueError(f"unknown export format {fmt!r}; valid: {', '.join(EXPORT_FORMATS)}")
