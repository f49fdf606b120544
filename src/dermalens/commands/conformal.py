"""`dermalens conformal`: fit an artifact's prediction sets on validation splits; print what was stored."""

from __future__ import annotations

import argparse

from dermalens.commands import add_data_split_options, data_split_pairs


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    conformal = sub.add_parser(
        "conformal",
        help="fit prediction sets with a stated coverage (split-conformal, APS) on validation splits",
    )
    add_data_split_options(conformal, "fit")
    conformal.add_argument(
        "--coverage", type=float, default=0.9, help="the coverage shown by default (default 0.90)"
    )
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
