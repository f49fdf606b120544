"""`dermalens import` (training/importer.py): a Keras or ONNX classifier becomes an artifact whose
ONNX graph gives the project's class order, with the network's own preprocessing, and which the
engine runs like any model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from conftest import lesion_like, save_image
from dermalens.core.preprocess import Preprocessing, prepare
from dermalens.core.taxonomy import DX_CODES
from dermalens.inference.engine import Engine
from dermalens.training.importer import ImportSpec, import_model

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="the import of Keras models needs keras (make install-all)")
#: A network's own order: reversed, so a missing re-ordering shows.
THEIR_ORDER = list(reversed(DX_CODES))
RAW = Preprocessing(
    input_size=(40, 30), mean=(0, 0, 0), std=(1 / 255,) * 3, color_constancy="none", resize="stretch"
)


def _tiny_keras(path: Path) -> tuple[Path, object]:
    """Two inputs (image, a 3-value metadata vector), a softmax over 7 classes, a named pooling layer."""
    keras.utils.set_random_seed(0)
    image = keras.Input((30, 40, 3))
    meta = keras.Input((3,))
    x = keras.layers.Rescaling(1 / 255)(image)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    joined = keras.layers.Concatenate()([pooled, keras.layers.Dense(4)(meta)])
    model = keras.Model([image, meta], keras.layers.Dense(7, activation="softmax")(joined))
    model.save(path)
    return path, model


def test_a_keras_model_imports_with_its_class_order_mapped_and_constant_extra_input(tmp_path: Path):
    source, model = _tiny_keras(tmp_path / "m.keras")
    spec = ImportSpec(THEIR_ORDER, RAW, fixed_inputs={1: [0.0, 1.0, 0.5]}, features_layer="pool", name="tiny")
    artifact = import_model(source, spec, tmp_path / "artifact")
    image = save_image(tmp_path / "x.jpg", lesion_like(3, (80, 60)), "JPEG")
    run = Engine.load(artifact).run([image])
    x = prepare(image, RAW).transpose(1, 2, 0)[None]  # what the engine feeds, channels-last
    theirs = np.asarray(model.predict([x, np.array([[0.0, 1.0, 0.5]], np.float32)], verbose=0))[0]
    ours = run.combined.probs[0]
    assert np.allclose(ours, theirs[[THEIR_ORDER.index(c) for c in DX_CODES]], atol=1e-4)
    assert run.members[0].features is not None and run.members[0].features.shape == (1, 8)
    meta = Engine.load(artifact).meta
    assert meta.classes == list(DX_CODES) and meta.architecture == "imported"
    assert meta.preprocessing == RAW


def test_an_nhwc_onnx_graph_of_probabilities_imports(tmp_path: Path):
    import onnx
    from onnx import TensorProto, helper

    weights = np.random.default_rng(0).normal(size=(3, 7)).astype(np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["input_1"], ["avg"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["avg", "w"], ["z"]),
        helper.make_node("Softmax", ["z"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["n", 30, 40, 3])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", 7])],
        [onnx.numpy_helper.from_array(weights / 255, "w")],
    )  # fmt: skip
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9),
        tmp_path / "m.onnx",
    )
    spec = ImportSpec(THEIR_ORDER, RAW, layout="nhwc")
    artifact = import_model(tmp_path / "m.onnx", spec, tmp_path / "artifact")
    image = save_image(tmp_path / "x.png", lesion_like(5, (40, 30)), "PNG")
    probs = Engine.load(artifact).run([image]).combined.probs[0]
    z = prepare(image, RAW).mean(axis=(1, 2)) @ (weights / 255)
    theirs = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    assert np.allclose(probs, theirs[[THEIR_ORDER.index(c) for c in DX_CODES]], atol=1e-5)


def test_bad_imports_say_what_is_wrong(tmp_path: Path):
    source, _ = _tiny_keras(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="distinct class"):
        import_model(source, ImportSpec(["nv"] * 7, RAW), tmp_path / "a")
    with pytest.raises(ValueError, match="unknown label 'psoriasis'"):
        import_model(source, ImportSpec([*DX_CODES[:6], "psoriasis"], RAW), tmp_path / "b")
    with pytest.raises(ValueError, match="fixed-input"):
        import_model(source, ImportSpec(THEIR_ORDER, RAW), tmp_path / "c")  # the metadata input unfed
    with pytest.raises(ValueError, match=r"\.keras or \.onnx"):
        import_model(tmp_path / "m.h5", ImportSpec(THEIR_ORDER, RAW), tmp_path / "d")
    (tmp_path / "e").mkdir()
    with pytest.raises(ValueError, match="exists"):
        import_model(source, ImportSpec(THEIR_ORDER, RAW), tmp_path / "e")
