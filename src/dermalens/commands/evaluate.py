"""`dermalens evaluate | compare`: parse arguments, call the package, print a short summary (calibrate and
fit-decision: `dermalens artifact`, `commands.artifact_fit`)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    evaluate = sub.add_parser("evaluate", help="metrics with 95%% CIs, predictions.csv and an HTML report")
    evaluate.add_argument(
        "--model",
        action="extend",
        nargs="+",
        metavar="M",
        help="model artifact (default: the bundled model); several = an ensemble",
    )
    _data_options(evaluate)
    evaluate.add_argument("--out", type=Path, help="output folder (default reports/evaluate-<model>-<data>)")
    cut = evaluate.add_mutually_exclusive_group()
    cut.add_argument("--threshold", type=float, help="threshold on p_malignant (default: the artifact's)")
    cut.add_argument(
        "--target-sensitivity",
        type=float,
        metavar="S",
        help="choose the threshold on these images for this sensitivity (optimistic)",
    )
    evaluate.set_defaults(func=run_evaluate)

    compare = sub.add_parser("compare", help="several models side by side, paired AUC test against the first")
    compare.add_argument("models", nargs="+", metavar="M", help="model artifacts; the first is the reference")
    _data_options(compare)
    compare.add_argument("--out", type=Path, help="output folder (default reports/compare-<data>)")
    compare.add_argument("--no-reports", action="store_true", help="skip each model's report.html (faster)")
    compare.set_defaults(func=run_compare)


def _data_options(parser: argparse.ArgumentParser) -> None:
    from dermalens.data.readers import FORMATS

    parser.add_argument("--data", type=Path, required=True, help="dataset: any layout `dermalens data` reads")
    parser.add_argument("--format", choices=FORMATS, help="force the dataset layout instead of detecting it")
    parser.add_argument("--split", type=Path, help="split file; evaluate only --split-name of it")
    parser.add_argument("--split-name", default="test", help="default test")
    parser.add_argument("--tta", type=int, default=1, help="test-time augmentation views, 1-8 (default 1)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for CIs (default 1000)")
    parser.add_argument(
        "--ci-unit",
        choices=("image", "group"),
        default="image",
        help="resample images, or lesion groups (stricter where a lesion has several photos)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def _fmt(value: Any, interval: Any = None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.3f}"
    return text + (f" ({interval[0]:.3f}-{interval[1]:.3f})" if interval else "")


def run_evaluate(args: argparse.Namespace) -> int:
    from dermalens.artifact.store import load_meta
    from dermalens.evaluation.evaluate import evaluate

    name = load_meta(args.model[0] if args.model else None, verify=False)[1].name
    out = args.out or Path("reports") / _slug(f"evaluate-{name}-{args.data.resolve().name}-{args.split_name}")
    metrics = evaluate(
        args.model or [None],
        args.data,
        out,
        args.tta,
        args.threshold,
        args.target_sensitivity,
        args.split,
        args.split_name,
        n_boot=args.n_boot,
        seed=args.seed,
        ci_unit=args.ci_unit,
        data_format=args.format,
        progress=not args.no_progress,
    )
    binary, ci = metrics["binary"], metrics["ci"]["binary"]
    print(
        f"{metrics['n']} images scored, {metrics['n_skipped']} skipped; threshold "
        f"{metrics['threshold']['value']:.4f} ({metrics['threshold']['rule']})"
    )
    for key in ("auc", "sensitivity", "specificity", "ppv", "npv"):
        print(f"  {key:<18} {_fmt(binary[key], ci.get(key))}")
    multi = metrics.get("multiclass")
    if multi:
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "auc_macro"):
            print(f"  {key:<18} {_fmt(multi[key], metrics['ci']['multiclass'].get(key))}")
    print(f"  {'mel_vs_nv_auc':<18} {_fmt(metrics['mel_vs_nv_auc'])}")
    print(f"  refused by the OOD gate: {metrics['ood']['n_flagged']} ({metrics['ood']['rate']:.1%})")
    if len(metrics["by_source"]) > 1:
        from dermalens.evaluation.sources import source_lines

        print("per source:")
        print("\n".join(source_lines(metrics["by_source"])))
    print(f"report: {out / 'report.html'}  (predictions.csv, metrics.json beside it)")
    print(metrics["disclaimer"])
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from dermalens.evaluation.compare import compare, markdown_table

    out = args.out or Path("reports") / _slug(f"compare-{args.data.resolve().name}-{args.split_name}")
    result = compare(
        args.models,
        args.data,
        out,
        tta=args.tta,
        split_file=args.split,
        split_name=args.split_name,
        n_boot=args.n_boot,
        seed=args.seed,
        ci_unit=args.ci_unit,
        reports=not args.no_reports,
        data_format=args.format,
        progress=not args.no_progress,
    )
    print(markdown_table(result["models"]))
    print(f"{result['n_common']} common images; Δ AUC vs {result['reference']}: {result['test']}")
    print(f"comparison: {out / 'comparison.html'} (also .md, .csv, .json)")
    return 0
