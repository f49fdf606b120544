"""`dermalens artifact calibrate | fit-decision | refit-gate | conformal`: refit one part of an
artifact on validation splits (in place, or into a copy with --out); print what was stored."""

from __future__ import annotations

import argparse
from pathlib import Path

from dermalens.commands import Subcommand, add_data_split_options, data_split_pairs


def _calibrate_options(calibrate: argparse.ArgumentParser) -> None:
    calibrate.add_argument("--model", required=True, help="model artifact to calibrate (changed in place)")
    calibrate.add_argument("--data", type=Path, required=True, help="dataset folder or CSV")
    calibrate.add_argument("--split", type=Path, required=True, help="split file (dermalens data split)")
    calibrate.add_argument("--split-name", default="val", help="split to calibrate on (default val)")
    calibrate.add_argument("--target-sensitivity", type=float, default=0.95, help="default 0.95")
    calibrate.add_argument("--tta", type=int, default=1, help="test-time augmentation views")
    calibrate.add_argument("--out", type=Path, help="write a calibrated copy here (model left unchanged)")


def run_calibrate(args: argparse.Namespace) -> int:
    from dermalens.evaluation.calibration import calibrate

    summary = calibrate(
        args.model,
        args.data,
        args.split,
        split_name=args.split_name,
        target_sensitivity=args.target_sensitivity,
        tta=args.tta,
        out=args.out,
    )
    print(f"calibrated {summary['artifact']} on {summary['source']}")
    print(
        f"  temperature {summary['temperature_before']:.3f} -> {summary['temperature']:.3f} "
        f"(NLL {summary['nll_before']:.4f} -> {summary['nll_after']:.4f})"
    )
    print(
        f"  threshold {summary['threshold']:.4f}: sensitivity {summary['sensitivity']:.3f}, "
        f"specificity {summary['specificity']:.3f} on that split "
        f"(target {summary['target_sensitivity']:.0%})"
    )
    if summary["skipped"]:
        print(f"  {len(summary['skipped'])} image(s) skipped (missing or unreadable)")
    return 0


def _decision_options(decision: argparse.ArgumentParser) -> None:
    add_data_split_options(decision, "fit")


def run_fit_decision(args: argparse.Namespace) -> int:
    from dermalens.evaluation.decision import fit_decision

    summary = fit_decision(args.model, data_split_pairs(args), split_name=args.split_name, out=args.out)
    print(f"decision rule of {summary['artifact']} fitted on {summary['source']}: tau {summary['tau']:.2f}")
    for source, before in summary["balanced_accuracy_before"].items():
        after = summary["balanced_accuracy_after"][source]
        print(f"  {source:<14} balanced accuracy {before:.3f} -> {after:.3f}")
    return 0


def _refit_gate_options(refit: argparse.ArgumentParser) -> None:
    refit.add_argument("--model", help="artifact folder (default: bundled)")
    refit.add_argument(
        "--data", type=Path, action="append", required=True,
        help="dataset: any layout `dermalens data` reads; repeat with one --split each",
    )  # fmt: skip
    refit.add_argument(
        "--split", type=Path, action="append", required=True,
        help="split file of each --data: fit on its train part, threshold on val",
    )  # fmt: skip
    refit.add_argument(
        "--quantile", type=float, default=0.99, help="share of validation images accepted (default 0.99)"
    )
    refit.add_argument("--out", type=Path, help="write a copy here instead of changing the artifact")
    refit.add_argument("--no-progress", action="store_true")


def run_refit_gate(args: argparse.Namespace) -> int:
    from dermalens.training.refit_gate import refit_gate

    if not 0.5 <= args.quantile < 1.0:
        raise ValueError(f"--quantile {args.quantile}: use a value in [0.5, 1), e.g. 0.99")
    folder, gate = refit_gate(
        args.model,
        data_split_pairs(args),
        quantile=args.quantile,
        out=args.out,
        progress=not args.no_progress,
    )
    print(f"OOD gate of {folder} refitted: {gate.method}")
    return 0


def _conformal_options(conformal: argparse.ArgumentParser) -> None:
    add_data_split_options(conformal, "fit")
    sets_options(conformal)


def sets_options(parser: argparse.ArgumentParser) -> None:
    """The prediction sets' default coverage (conformal, ensemble), and quiet progress."""
    parser.add_argument(
        "--coverage", type=float, default=0.9, help="the coverage shown by default (default 0.90)"
    )
    parser.add_argument("--no-progress", action="store_true")


def run_conformal(args: argparse.Namespace) -> int:
    from dermalens.evaluation.conformal import fit_conformal

    summary = fit_conformal(
        args.model,
        data_split_pairs(args),
        split_name=args.split_name,
        coverage=args.coverage,
        out=args.out,
        progress=not args.no_progress,
    )
    figures = summary["validation"]
    print(f"prediction sets of {summary['artifact']} fitted on {summary['source']} ({summary['n']} images)")
    print("  quantiles: " + ", ".join(f"{c}: {q:.4f}" for c, q in summary["quantiles"].items()))
    print(
        f"  at {summary['coverage']:.0%}: coverage {figures['coverage']:.3f}, "
        f"mean set size {figures['mean_set_size']:.2f} on those images"
    )
    return 0


SUBCOMMANDS = (
    Subcommand(
        "calibrate", "fit temperature and threshold on a validation split", _calibrate_options, run_calibrate,
        "calibrate",
    ),
    Subcommand(
        "fit-decision", "fit the diagnosis decision rule (prior correction) on validation splits",
        _decision_options, run_fit_decision, "fit-decision",
    ),
    Subcommand(
        "refit-gate",
        "refit an artifact's out-of-distribution gate on a dataset (e.g. your own clinic's images)",
        _refit_gate_options, run_refit_gate, "refit-gate",
    ),
    Subcommand(
        "conformal", "fit prediction sets with a stated coverage (split-conformal, APS) on validation splits",
        _conformal_options, run_conformal, "conformal",
    ),
)  # fmt: skip
