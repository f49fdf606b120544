"""`dermalens adapt`: refit a model's calibration, threshold, decision rule, prediction sets, OOD gate
and (`--head`) last layer on a clinic's own labelled images (lesion-grouped k-fold says which steps
help); print before → after."""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    adapt = sub.add_parser("adapt", help="fit a model to a clinic's own labelled images (a new artifact)")
    adapt.add_argument(
        "--model",
        help="model artifact (default: the bundled model); left unchanged; an ensemble artifact: its "
        "primary network, adapted into one network",
    )
    adapt.add_argument(
        "--data", type=Path, required=True, help="the clinic's labelled images, any reader layout"
    )
    adapt.add_argument(
        "--split", type=Path, help="split file: use only --split-name of it (default: all images)"
    )
    adapt.add_argument("--split-name", default="train", help="split of --split to adapt on (default train)")
    adapt.add_argument("--out", type=Path, required=True, help="new artifact folder (must not exist)")
    adapt.add_argument("--folds", type=int, default=5, help="lesion-grouped folds inside the clinic's data")
    adapt.add_argument(
        "--head",
        action="store_true",
        help="also refit the last layer on frozen features (pulled towards the original; kept if it helps)",
    )
    adapt.add_argument(
        "--unlabelled",
        type=Path,
        help="folder of the clinic's unlabelled images: re-estimate batch-norm and gate statistics (AdaBN;"
        " needs weights.pt), kept if it helps out of fold on --data",
    )
    adapt.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples for the intervals")
    adapt.add_argument("--no-progress", action="store_true")
    adapt.set_defaults(func=run_adapt)


def _cell(report: dict[str, Any], side: str, key: str) -> str:
    value, interval = report[side]["figures"][key], report[side]["ci"].get(key)
    if math.isnan(value):
        return "n/a"
    return f"{value:.3f}" + (f" ({interval[0]:.3f}-{interval[1]:.3f})" if interval else "")


def _unlabelled(args: argparse.Namespace, model: Path, work: Path) -> tuple[Any, dict[str, Any]]:
    """AdaBN measured out of fold on --data; print it; the model the labelled steps start from."""
    from dermalens.training.adabn_run import adapt_unlabelled

    start, measured = adapt_unlabelled(
        model, args.unlabelled, args.data, args.split, args.split_name, args.folds, work,
        progress=not args.no_progress,
    )  # fmt: skip
    print(
        f"--unlabelled ({measured['images']} images): batch-norm and gate statistics, out of fold on --data:"
    )
    for key in ("auc", "balanced_accuracy", "recall_bcc", "ece", "refused"):
        print(f"  {key:<18} {measured['before'][key]:.3f} -> {measured['after'][key]:.3f}")
    print(
        "  kept"
        if measured["kept"]
        else "  left out (out of fold: AUC lower, more refused, or no better named)"
    )
    return start, measured


def run_adapt(args: argparse.Namespace) -> int:
    from dermalens.evaluation.adapt import MIN_REFUSED
    from dermalens.evaluation.adapt_run import adapt, one_network

    if Path(args.out).exists():  # before minutes of work, not after
        raise ValueError(f"{args.out} exists; choose a new folder for the adapted model")
    with tempfile.TemporaryDirectory(prefix="dermalens-adapt-") as work, one_network(args.model) as folder:
        model, unlabelled = folder, None  # an ensemble: its primary alone, said once (`one_network`)
        if args.unlabelled is not None:
            model, unlabelled = _unlabelled(args, folder, Path(work))
        report = adapt(
            model, args.data, args.out, split_file=args.split, split_name=args.split_name,
            folds=args.folds, n_boot=args.n_boot, head=args.head, unlabelled=unlabelled,
            progress=not args.no_progress,
        )  # fmt: skip
    if "head" in report["kept"]:
        from dermalens.training.adapt_weights import sync_head_weights

        sync_head_weights(args.out)
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
    for step, trial in report["left"].items():
        few = trial.get("not_dermoscopy_refused", 1.0) < MIN_REFUSED
        why = "it refuses too few non-dermoscopy images" if few else "no better out of fold"
        print(f"  {step}: left as it was ({why})")
    print(f"artifact: {args.out}")
    return 0
