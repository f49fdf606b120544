"""`dermalens artifact export | quantize | ensemble | soup | import`: a new file or artifact made from
artifacts (an ONNX or TorchScript export, an INT8 copy, an ensemble, a weight soup) or from someone
else's classifier."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dermalens.commands import Subcommand, command_line
from dermalens.commands.artifact_fit import sets_options


def _export_options(export: argparse.ArgumentParser) -> None:
    export.add_argument("--model", help="artifact folder (default: bundled)")
    export.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    export.add_argument("--out", type=Path, required=True)


def run_export(args: argparse.Namespace) -> int:
    from dermalens.artifact.meta import ONNX_FILE, WEIGHTS_FILE
    from dermalens.artifact.store import ensemble_words, load_meta
    from dermalens.models.export import export
    from dermalens.models.factory import build_from_meta

    folder, meta = load_meta(args.model)
    if meta.ensemble is not None:  # a graph or TorchScript file is one network; the decision is not in it
        print(f"{ensemble_words(folder, meta)}; export writes its primary network alone", file=sys.stderr)
    if not (folder / WEIGHTS_FILE).is_file():
        raise ValueError(
            f"{folder}: no {WEIGHTS_FILE} (an ensemble's member folders are copied without it); export "
            f"builds the network from its weights: its {ONNX_FILE} is the ONNX graph already, or pass "
            "the artifact the member was built from"
        )
    model = build_from_meta(meta, folder / WEIGHTS_FILE)
    out = export(model, args.out, args.format, meta.preprocessing.input_size)
    print(f"exported {meta.name} ({meta.architecture}) to {out} [{args.format}]")
    return 0


def _quantize_options(quant: argparse.ArgumentParser) -> None:
    quant.add_argument("--model", help="artifact folder (default: bundled)")
    quant.add_argument("--data", type=Path, required=True, help="dataset with the calibration images")
    quant.add_argument("--split", type=Path, help="split file; calibrate on --split-name (default val)")
    quant.add_argument("--split-name", default="val")
    quant.add_argument("--n", type=int, default=200, help="calibration images (spread evenly)")
    quant.add_argument("--out", type=Path, required=True, help="folder of the INT8 artifact")


def run_quantize(args: argparse.Namespace) -> int:
    from dermalens.data.readers import load_dataset
    from dermalens.data.splits import Split
    from dermalens.training.quantize import quantize_artifact

    records = load_dataset(args.data, verify=False).records
    if args.split:
        ids = Split.load(args.split).ids(args.split_name)
        records = [r for r in records if r.image_id in ids]
    step = max(1, len(records) // max(1, args.n))
    paths = [r.path for r in records[::step]][: args.n]
    out = quantize_artifact(args.model, args.out, paths)
    print(f"INT8 artifact: {out} (calibrated on {len(paths)} images); measure it with `dermalens compare`")
    return 0


def _soup_options(soup: argparse.ArgumentParser) -> None:
    soup.add_argument(
        "--model", dest="models", action="append", required=True, help="artifact folder (2 or more)"
    )
    soup.add_argument("--out", type=Path, required=True, help="folder of the new artifact")
    soup.add_argument("--name", help="the new model's name (default: soup-<member names>)")
    soup.add_argument(
        "--input-size",
        nargs=2,
        type=int,
        metavar=("W", "H"),
        help="serve the soup at this input size instead of the members' (refitted there; choose on validation)",
    )


def run_soup(args: argparse.Namespace) -> int:
    from dermalens.training.soup import build_soup

    size = None if args.input_size is None else (args.input_size[0], args.input_size[1])
    out = build_soup(args.models, args.out, name=args.name, command=command_line(), input_size=size)
    print(f"model artifact: {out} (weights averaged over {len(args.models)} models, refitted on validation)")
    return 0


def _import_options(imp: argparse.ArgumentParser) -> None:
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


def _ensemble_options(ensemble: argparse.ArgumentParser) -> None:
    ensemble.add_argument(
        "--model", dest="models", action="append", required=True,
        help="artifact folder, 2 or 3 times; the first is the primary (its gate and heatmaps)",
    )  # fmt: skip
    ensemble.add_argument("--out", type=Path, required=True, help="folder of the new ensemble artifact")
    ensemble.add_argument("--name", help="the ensemble's name (default: the members' names joined by +)")
    ensemble.add_argument(
        "--gate", choices=("first", "max"), default="first",
        help="first: only the primary's OOD gate refuses (default); max: any member's gate refuses",
    )  # fmt: skip
    ensemble.add_argument(
        "--data", type=Path, action="append", required=True, help="dataset; repeat with one --split each"
    )
    ensemble.add_argument(
        "--split", type=Path, action="append", required=True, help="split file of each --data"
    )
    ensemble.add_argument("--split-name", default="val", help="split to fit on (default val)")
    ensemble.add_argument(
        "--target-sensitivity", type=float, default=0.95,
        help="threshold: this sensitivity for malignancy on the pooled splits (default 0.95)",
    )  # fmt: skip
    sets_options(ensemble)


def run_ensemble(args: argparse.Namespace) -> int:
    from dermalens.commands import data_split_pairs
    from dermalens.evaluation.ensemble import build_ensemble

    summary = build_ensemble(
        args.models,
        args.out,
        data_split_pairs(args),
        split_name=args.split_name,
        target_sensitivity=args.target_sensitivity,
        coverage=args.coverage,
        gate=args.gate,
        name=args.name,
        progress=not args.no_progress,
    )
    point = summary["calibration"]
    print(f"ensemble artifact {summary['artifact']}: {', '.join(summary['members'])} (gate: {args.gate})")
    print(
        f"  threshold {point['threshold']:.4f} on {summary['source']}: sensitivity {point['sensitivity']:.3f}, "
        f"specificity {point['specificity']:.3f}"
    )
    if "decision" in summary:
        print(f"  decision rule tau {summary['decision']['tau']:.2f}, prediction sets on {summary['source']}")
    return 0


SUBCOMMANDS = (
    Subcommand("export", "export an artifact's network to ONNX or TorchScript", _export_options, run_export, "export"),
    Subcommand(
        "quantize", "write an INT8 copy of an artifact (static, calibrated on a split)", _quantize_options,
        run_quantize, "quantize",
    ),
    Subcommand(
        "ensemble",
        "one artifact of 2-3 networks whose threshold, decision rule and sets are fitted on their average",
        _ensemble_options, run_ensemble,
    ),
    Subcommand(
        "soup", "average the weights of models fine-tuned from one starting point into one new artifact",
        _soup_options, run_soup, "soup",
    ),
    Subcommand(
        "import",
        "turn your own Keras (.keras) or ONNX classifier into an artifact that predict, evaluate, compare "
        "and serve take like any model (alone or as an ensemble member)",
        _import_options, run_import, "import",
    ),
)  # fmt: skip
