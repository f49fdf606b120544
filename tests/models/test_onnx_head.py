"""Replacing the linear head of the bundled model's ONNX graph (`dermalens adapt --head`): ONNX
Runtime then serves logits from the new head, and the class-activation maps follow it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from conftest import lesion_like
from dermalens.artifact.meta import ONNX_FILE, ArtifactError
from dermalens.artifact.store import BUNDLED_DIR, load_meta
from dermalens.core.preprocess import normalize
from dermalens.models.onnx_head import read_head, write_head


def test_a_new_head_is_what_onnx_runtime_serves(tmp_path: Path) -> None:
    graph = Path(shutil.copy(BUNDLED_DIR / ONNX_FILE, tmp_path / ONNX_FILE))
    weight, bias = read_head(graph)
    assert weight.shape == (7, 1280) and bias.shape == (7,)
    rng = np.random.default_rng(0)
    new_weight, new_bias = weight + rng.normal(0, 0.05, weight.shape), bias + np.arange(7) * 0.1
    write_head(graph, new_weight, new_bias)
    assert np.allclose(read_head(graph)[0], new_weight, atol=1e-6)
    _, meta = load_meta(BUNDLED_DIR)
    width, height = meta.preprocessing.input_size
    batch = np.stack([normalize(lesion_like(s, (width, height)), meta.preprocessing) for s in range(2)])
    out = dict(
        zip(
            ["logits", "features", "cam"],
            ort.InferenceSession(str(graph)).run(["logits", "features", "cam"], {"image": batch}),
            strict=True,
        )
    )
    assert np.allclose(out["logits"], out["features"] @ new_weight.T + new_bias, atol=1e-3)
    assert np.allclose(out["cam"].mean(axis=(2, 3)), out["logits"], atol=1e-3)  # the maps add the new bias


def test_a_graph_without_a_linear_head_is_refused_with_a_reason(tmp_path: Path) -> None:
    import onnx
    from onnx import helper

    node = helper.make_node("Identity", ["features"], ["logits"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [1, 4])],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "m.onnx"))
    with pytest.raises(ArtifactError, match="no Gemm from 'features' to 'logits'"):
        read_head(tmp_path / "m.onnx")
