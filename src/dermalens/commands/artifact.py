"""`dermalens import`: a Keras or ONNX classifier made into a dermalens artifact."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    imp = sub.add_parser(
        "import",
        help="turn your own Keras (.keras) or ONNX classifier into an artifact that predict, evaluate, "
        "compare and serve take like any model (alone or as an ensemble member)",
    )
    imp.add_argument("source", nargs="?", type=Path, help="model.keras or model.onnx (not with --preset)")
    imp.add_argument("--out", type=Path, required=True, help="new artifact folder")
    imp.add_argument(
        "--preset",
        choices=("sklesion",),
        help="a known network: sklesion = the installed sklesion 0.2.2 wheel",
    )
    imp.add_argument("--classes", help="the network's output classes in its order, comma-separated")
    imp.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"), default=(224, 224))
    imp.add_argument("--resize", choices=("stretch", "crop_to_aspect"), default="stretch")
    imp.add_argument(
        "--mean", type=float, nargs=3, default=(0.0, 0.0, 0.0), help="per channel, on 0-1 pixels (default 0)"
    )
    imp.add_argument(
        "--std",
        type=float,
        nargs=3,
        default=(1.0, 1.0, 1.0),
        help="per channel, on 0-1 pixels (1/255 = raw 0-255)",
    )
    imp.add_argument("--color-constancy", choices=("none", "shades_of_gray"), default="none")
    imp.add_argument("--outputs", choices=("probabilities", "logits"), default="probabilities")
    imp.add_argument(
        "--layout", choices=("nchw", "nhwc"), default="nchw", help="an ONNX graph's image layout"
    )
    imp.add_argument(
        "--fixed-input",
        action="append",
        default=[],
        metavar="INDEX=V1,V2,...",
        help="Keras: a constant for the model's extra input at INDEX (e.g. a metadata branch)",
    )
    imp.add_argument("--features-layer", help="Keras: the layer whose output is the pooled feature vector")
    imp.add_argument("--name", default="imported")
    imp.add_argument("--license", default="see the original model's licence")
    imp.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> int:
    from dermalens.core.preprocess import Preprocessing
    from dermalens.training.importer import ImportSpec, import_model, sklesion_spec

    if args.preset == "sklesion":
        source, spec = sklesion_spec()
    elif args.source is None or not args.classes:
        raise ValueError("give the model file and --classes (its output order), or a --preset")
    else:
        source = args.source
        spec = ImportSpec(
            classes=[c.strip() for c in args.classes.split(",")],
            preprocessing=Preprocessing(
                input_size=tuple(args.input_size),
                mean=tuple(args.mean),
                std=tuple(args.std),
                color_constancy=args.color_constancy,
                resize=args.resize,
            ),
            outputs=args.outputs,
            layout=args.layout,
            fixed_inputs=dict(_fixed(item) for item in args.fixed_input),
            features_layer=args.features_layer,
            name=args.name,
            license=args.license,
        )
    out = import_model(source, spec, args.out)
    print(f"imported {source} as {out}: classes and preprocessing in {out / 'artifact.json'}")
    return 0


def _fixed(item: str) -> tuple[int, list[float]]:
    index, _, values = item.partition("=")
    try:
        return int(index), [float(v) for v in values.split(",")]
    except ValueError:
        raise ValueError(f"--fixed-input {item!r}: write INDEX=V1,V2,... (numbers)") from None
