"""Read and replace the linear head of an exported ONNX graph, without torch.

Why: `dermalens adapt --head` refits only the last layer on frozen features, so the adapted
network is the served graph with new numbers in the `Gemm` that makes ``logits`` from
``features``. Rewriting those initializers (and the class-activation map's copy of the bias) keeps
every other weight bit-identical and needs no re-export, so artifacts without weights.pt (or INT8
ones) can be adapted too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dermalens.artifact.meta import ArtifactError


def _head_node(graph: object) -> object:
    """The `Gemm` node whose output is ``logits`` and whose input is ``features``."""
    for node in graph.node:  # type: ignore[attr-defined]
        if node.op_type == "Gemm" and "logits" in node.output and "features" in node.input:
            return node
    raise ArtifactError(
        "the ONNX graph has no Gemm from 'features' to 'logits' (a fusion or hierarchical head?); "
        "only a single linear head can be refitted"
    )


def read_head(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(weight [C, D], bias [C]) of the graph's linear head, as float64."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    node = _head_node(graph)
    arrays = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    if any(name not in arrays for name in node.input[1:3]):  # type: ignore[attr-defined]
        raise ArtifactError(f"{path}: the head's weights are not constants of the graph")
    weight, bias = (arrays[name].astype(np.float64) for name in node.input[1:3])  # type: ignore[attr-defined]
    return weight, bias


def write_head(path: Path, weight: np.ndarray, bias: np.ndarray, out: Path | None = None) -> None:
    """Replace the head's weight and bias in the graph at `path`, saved to `out` (default: in place;
    an artifact's graph goes through `artifact.write.put_file`, which gives `out`). Any other constant that
    equals the old bias (the class-activation map adds it reshaped) is replaced the same way, so
    the maps explain the new logits."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    node = _head_node(model.graph)
    weight_name, bias_name = node.input[1:3]  # type: ignore[attr-defined]
    old_bias = next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name == bias_name)
    for k, init in enumerate(model.graph.initializer):
        array = numpy_helper.to_array(init)
        if init.name == weight_name:
            new = weight.reshape(array.shape)
        elif init.name == bias_name or (
            array.size == old_bias.size and np.array_equal(array.ravel(), old_bias)
        ):
            new = bias.reshape(array.shape)
        else:
            continue
        model.graph.initializer[k].CopyFrom(numpy_helper.from_array(new.astype(array.dtype), init.name))
    onnx.save(model, str(out or path))
