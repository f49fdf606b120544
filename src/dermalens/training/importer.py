"""Bring your own network: turn a Keras (.keras) or ONNX classifier into a dermalens artifact.

Why: researchers arrive with their own classifiers, many of them Keras. Once a network is an
artifact (an ONNX graph with the input ``image`` [N,3,H,W] and the output ``logits`` in the
project's class order, plus its own declared preprocessing), the engine runs it like any model:
alone, or as an ensemble member beside the bundled one (each member reads the image with its own
preprocessing), in predict, evaluate, compare, serve, and as a distillation teacher.

What the import does to the graph:
  * Keras: the model is loaded with Keras 3 on the torch backend (no TensorFlow) and exported
    through torch's ONNX exporter, channels-first in, with any extra input (a metadata branch)
    held at a declared constant; its pooled features become the ``features`` output when a layer
    is named.
  * ONNX: the graph is used as it is, with an NHWC input transposed in the graph.
  * Both: probabilities become log-probabilities (``softmax(log p) = p``, so temperature and
    the engine's arithmetic are unchanged), and the classes are re-ordered into the project's
    order (`core.taxonomy.DX_CODES`) inside the graph.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dermalens.artifact.kinds import IMPORTED_ARCHITECTURE
from dermalens.artifact.meta import ONNX_FILE, ArtifactMeta
from dermalens.artifact.write import put_file, write_meta
from dermalens.core.preprocess import Preprocessing
from dermalens.core.taxonomy import DX_CODES, MALIGNANT, normalize_label

log = logging.getLogger(__name__)
IMPORTED = IMPORTED_ARCHITECTURE  # the name that makes `artifact.kinds` read the artifact as "imported"


@dataclass
class ImportSpec:
    """What a user declares about a network that dermalens did not train."""

    #: The network's output classes, in its own order (any spelling `normalize_label` knows).
    classes: list[str]
    preprocessing: Preprocessing
    #: "probabilities" (a softmax output) or "logits".
    outputs: Literal["probabilities", "logits"] = "probabilities"
    #: Image input layout of an ONNX graph (Keras models are always channels-last).
    layout: Literal["nchw", "nhwc"] = "nchw"
    #: Keras only: constant values for the model's extra inputs, by input position (e.g. a metadata
    #: branch fed "unknown"), and a layer whose output is the pooled feature vector.
    fixed_inputs: dict[int, list[float]] = field(default_factory=dict)
    features_layer: str | None = None
    name: str = "imported"
    license: str = "see the original model's licence"
    notes: dict[str, Any] = field(default_factory=dict)


def import_model(source: Path, spec: ImportSpec, out: Path) -> Path:
    """Write an artifact folder at `out` (must not exist) for the network at `source`."""
    if out.exists():
        raise ValueError(f"{out} exists; choose a new folder for the imported model")
    order = _class_order(spec.classes)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        if source.suffix == ".keras":
            _keras_to_onnx(source, spec, raw)
            layout = "nchw"
        elif source.suffix == ".onnx":
            raw, layout = source, spec.layout
        else:
            raise ValueError(f"{source}: import reads .keras or .onnx files, not {source.suffix or 'this'}")
        put_file(out, ONNX_FILE, lambda path: _adapt_graph(raw, path, order, spec.outputs, layout))
    classes = [c for c in DX_CODES if c in {normalize_label(x) for x in spec.classes}]
    meta = ArtifactMeta(
        name=spec.name,
        architecture=IMPORTED,
        classes=classes,
        malignant=[c for c in classes if c in MALIGNANT],
        preprocessing=spec.preprocessing,
        threshold_rule="default 0.5 (not tuned; fit one with dermalens calibrate)",
        license=spec.license,
        training={"imported_from": source.name, "outputs": spec.outputs, **spec.notes},
    )
    write_meta(out, meta)
    return out


def _class_order(classes: Sequence[str]) -> list[int]:
    """For each project class the network has, in project order, its index in the network's output."""
    codes = [normalize_label(c) for c in classes]
    unknown = [c for c, code in zip(classes, codes, strict=True) if code not in DX_CODES]
    if unknown or len(set(codes)) != len(codes):
        raise ValueError(
            f"classes {list(classes)}: each must name one distinct class of {', '.join(DX_CODES)}"
            + (f" ({unknown} do not)" if unknown else "")
        )
    return [codes.index(c) for c in DX_CODES if c in codes]


def _keras_to_onnx(source: Path, spec: ImportSpec, out: Path) -> None:
    """Keras 3 on the torch backend → torch.onnx (dynamo exporter, dynamic batch)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        raise ImportError("importing a .keras model needs Keras 3: pip install 'keras>=3.3'") from None
    if keras.backend.backend() != "torch":
        raise ImportError(
            f"Keras runs on the {keras.backend.backend()} backend here; set KERAS_BACKEND=torch"
        )
    import torch

    model = keras.models.load_model(source, compile=False)
    outputs = [model.outputs[0]]
    if spec.features_layer:
        # the layer's call in *this* graph (a nested model's own `.output` is its inner graph's)
        outputs.append(model.get_layer(spec.features_layer)._inbound_nodes[-1].outputs[0])
    wrapper = _keras_wrapper(keras.Model(model.inputs, outputs), spec.fixed_inputs, len(model.inputs))
    width, height = spec.preprocessing.input_size
    example = (torch.rand(2, 3, height, width) * 255,)
    names = ["scores", "features"][: len(outputs)]
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            example,
            str(out),
            input_names=["image"],
            output_names=names,
            dynamic_shapes=({0: torch.export.Dim.AUTO},),
            dynamo=True,
            external_data=False,
        )


def _keras_wrapper(model: Any, fixed: dict[int, list[float]], n_inputs: int) -> Any:
    """A torch module around the Keras model (torch backend), in eval mode, ready to export."""
    import torch

    class KerasWrapper(torch.nn.Module):
        """Channels-first image in; the Keras model's extra inputs held at constants."""

        def __init__(self, model: Any, fixed: dict[int, list[float]], n_inputs: int) -> None:
            super().__init__()
            missing = [i for i in range(1, n_inputs) if i not in fixed]
            if missing:
                raise ValueError(
                    f"the Keras model has extra inputs {missing}: give each a --fixed-input value"
                )
            self.model = model
            self.n_inputs = n_inputs
            for i, values in fixed.items():
                self.register_buffer(f"fixed_{i}", torch.tensor([values], dtype=torch.float32))

        def forward(self, image: torch.Tensor) -> Any:
            x = image.permute(0, 2, 3, 1)
            extra = [getattr(self, f"fixed_{i}").expand(x.shape[0], -1) for i in range(1, self.n_inputs)]
            out = self.model([x, *extra] if extra else x, training=False)
            return tuple(out) if isinstance(out, list | tuple) else out

    return KerasWrapper(model, fixed, n_inputs).eval()


def _adapt_graph(
    source: Path, out: Path, order: list[int], outputs: Literal["probabilities", "logits"], layout: str
) -> None:
    """Rename the input to ``image`` (NCHW), turn scores into re-ordered ``logits``; keep ``features``."""
    import onnx
    from onnx import helper, numpy_helper

    graph_model = onnx.load(str(source))
    graph = graph_model.graph
    image = graph.input[0]
    scores = graph.output[0].name
    nodes = []
    if layout == "nhwc":  # the network reads NHWC: transpose the NCHW "image" into its input
        graph.node.insert(0, helper.make_node("Transpose", ["image"], [image.name], perm=[0, 2, 3, 1]))
        _rename_input(graph, image, "image", nchw=True)
    else:
        _rename_input(graph, image, "image", nchw=False)
    tail = scores
    if outputs == "probabilities":
        floor = numpy_helper.from_array(np.asarray(1e-12, np.float32), "import_floor")
        graph.initializer.append(floor)
        nodes.append(helper.make_node("Max", [tail, "import_floor"], ["import_clamped"]))
        nodes.append(helper.make_node("Log", ["import_clamped"], ["import_log"]))
        tail = "import_log"
    graph.initializer.append(numpy_helper.from_array(np.asarray(order, np.int64), "import_order"))
    nodes.append(helper.make_node("Gather", [tail, "import_order"], ["logits"], axis=1))
    features = [o for o in graph.output if o.name != scores][:1]
    for value in (f for f in features if f.name != "features"):  # kept shape, the engine's name
        nodes.append(helper.make_node("Identity", [value.name], ["features"]))
        value.name = "features"
    graph.node.extend(nodes)
    del graph.output[:]
    graph.output.append(
        helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", len(order)])
    )
    graph.output.extend(features)
    onnx.checker.check_model(graph_model)
    onnx.save(graph_model, str(out))


def _rename_input(graph: Any, value: Any, name: str, nchw: bool) -> None:
    """Give the graph input the engine's name; with `nchw`, a new NCHW input feeds the old one."""
    from onnx import helper

    if nchw:
        dims = [d.dim_value or d.dim_param or None for d in value.type.tensor_type.shape.dim]
        shape = [dims[0] or "batch", dims[3], dims[1], dims[2]] if len(dims) == 4 else None
        new = helper.make_tensor_value_info(name, value.type.tensor_type.elem_type, shape)
        graph.input.remove(value)
        graph.input.insert(0, new)
        return
    old = value.name
    for node in graph.node:
        node.input[:] = [name if x == old else x for x in node.input]
    value.name = name


def sklesion_spec(package_dir: Path | None = None) -> tuple[Path, ImportSpec]:
    """The peer sklesion 0.2.2 (MIT, `pip install --no-deps sklesion`): its Xception fine-tuned on
    HAM10000, whole frame squashed to 254×254, raw 0-255 pixels (its own Normalization layer is in
    the graph), metadata branch fed "unknown" (sex unknown, site unknown, age missing = its mean)."""
    if package_dir is None:
        import importlib.util

        found = importlib.util.find_spec("sklesion")
        if found is None or not found.submodule_search_locations:
            raise ImportError("sklesion is not installed: pip install --no-deps sklesion==0.2.2")
        package_dir = Path(next(iter(found.submodule_search_locations)))
    with open(package_dir / "model_props.pkl", "rb") as f:
        props = pickle.load(f)  # the package's own file, shipped inside its wheel
    one_hot = props["oh_map"]
    unknown = [
        *one_hot["sex"]["unknown"],
        *one_hot["loc"]["unknown"],
        props["age_mean"] / props["age_max"],
        1,
    ]
    width, height = (int(v) for v in props["img_shape"][::-1])
    spec = ImportSpec(
        classes=[props["i_cl_map"][i] for i in range(len(props["i_cl_map"]))],
        preprocessing=Preprocessing(
            input_size=(width, height),
            mean=(0.0, 0.0, 0.0),
            std=(1 / 255, 1 / 255, 1 / 255),
            color_constancy="none",
            resize="stretch",
        ),
        fixed_inputs={1: [float(v) for v in unknown]},
        features_layer="xception",
        name="sklesion-0.2.2",
        license="MIT (sklesion 0.2.2, https://pypi.org/project/sklesion/); trained on HAM10000 (CC BY-NC 4.0)",
        notes={"peer": "sklesion 0.2.2: Xception fine-tuned on HAM10000 at 254x254, metadata fed 'unknown'"},
    )
    return package_dir / "model.keras", spec
