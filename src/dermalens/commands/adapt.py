"""`dermalens adapt`: refit a model's calibration, threshold, decision rule and prediction sets on a
clinic's own labelled images (lesion-grouped k-fold says which steps help); print before → after."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    adapt = sub.add_parser("adapt", help="fit a model to a clinic's own labelled images (a new artifact)")
    adapt.add_argument("--model", help="model artifact (default: the bundled model); left unchanged")
    adapt.add_argument(
        "--data", type=Path, required=True, help="the clinic's labelled images, any reader layout"
    )
    adapt.add_argument(
        "--split", type=Path, help="split file: use only --split-name of it (default: all images)"
    )
    adapt.add_argument("--split-name", default="train", help="split of --split to adapt on (default train)")
    adapt.add_argument("--out", type=Path, required=True, help="new artifact folder (must not exist)")
    adapt.add_argument("--folds", type=int, default=5, help="lesion-grouped folds inside the clinic's data")
    adapt.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples for the intervals")
    adapt.add_argument("--no-progress", action="store_true")
    adapt.set_defaults(func=run_adapt)


def _cell(report: dict[str, Any], side: str, key: str) -> str:
    value, interval = report[side]["figures"][key], report[side]["ci"].get(key)
    if math.isnan(value):
        return "n/a"
    return f"{value:.3f}" + (f" ({interval[0]:.3f}-{interval[1]:.3f})" if interval else "")


def run_adapt(args: argparse.Namespace) -> int:
    from dermalens.evaluation.adapt_run import adapt

    report = adapt(
        args.model, args.data, args.out, split_file=args.split, split_name=args.split_name,
        folds=args.folds, n_boot=args.n_boot, progress=not args.no_progress,
    )  # fmt: skip
    if "note" in report:
        print(report["note"])
        return 0
    print(f"{report['n']} labelled images, {report['folds']} lesion-grouped folds; out of fold, pooled:")
    for key in (
        "auc",
        "balanced_accuracy",
        "recall_bcc",
        "recall_mel",
        "ece",
        "sensitivity",
        "refused",
        "coverage",
        "mean_set_size",
    ):
        print(f"  {key:<18} {_cell(report, 'before', key)} -> {_cell(report, 'after', key)}")
    print("adapted: " + (", ".join(report["kept"]) or "nothing"))
    for step in report["left"]:
        print(f"  {step}: left as it was (no better out of fold)")
    print(f"artifact: {args.out}")
    return 0
