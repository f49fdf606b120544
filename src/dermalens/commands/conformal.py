"""`dermalens conformal`: fit an artifact's prediction sets on validation splits; print what was stored."""

from __future__ import annotations

import argparse
from pathlib import Path

from dermalens.commands import data_split_pairs


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    conformal = sub.add_parser(
        "conformal",
        help="fit prediction sets with a stated coverage (split-conformal, APS) on validation splits",
    )
    conformal.add_argument("--model", required=True, help="model artifact (changed in place)")
    conformal.add_argument(
        "--data", type=Path, action="append", required=True, help="dataset; repeat with one --split each"
    )
    conformal.add_argument(
        "--split", type=Path, action="append", required=True, help="split file of each --data"
    )
    conformal.add_argument("--split-name", default="val", help="split to fit on (default val)")
    conformal.add_argument(
        "--coverage", type=float, default=0.9, help="the coverage shown by default (default 0.90)"
    )
    conformal.add_argument("--out", type=Path, help="write the changed copy here (model left unchanged)")
    conformal.add_argument("--no-progress", action="store_true")
    conformal.set_defaults(func=run_conformal)


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
