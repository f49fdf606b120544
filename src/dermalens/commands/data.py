"""`dermalens data summary|split|duplicates`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dermalens.data.readers import FORMATS, load_dataset


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    data = sub.add_parser("data", help="inspect datasets: summary, split, duplicates")
    verbs = data.add_subparsers(dest="data_command", required=True, metavar="VERB")

    summary = verbs.add_parser("summary", help="counts, groups, sizes, metadata; EDA report with --out")
    _common(summary)
    summary.add_argument("--out", type=Path, help="write an EDA report (eda.html + PNG plots) here")
    summary.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    summary.set_defaults(func=run_summary)

    split = verbs.add_parser("split", help="write a lesion-grouped, stratified train/val/test split file")
    _common(split)
    split.add_argument("--out", type=Path, required=True, help="split JSON file to write")
    split.add_argument("--val", type=float, default=0.15)
    split.add_argument("--test", type=float, default=0.15)
    split.add_argument("--kfold", type=int, default=0, help="k grouped folds instead of train/val/test")
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--no-dedup", action="store_true", help="skip the near-duplicate merge (faster)")
    split.set_defaults(func=run_split)

    dups = verbs.add_parser("duplicates", help="exact and near-duplicate images (within, or across a split)")
    _common(dups)
    dups.add_argument("--split", type=Path, help="also report pairs that cross splits of this split file")
    dups.add_argument("--json", action="store_true")
    dups.set_defaults(func=run_duplicates)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="dataset folder or CSV")
    parser.add_argument("--format", choices=FORMATS, help="force the layout instead of detecting it")
    parser.add_argument("--strict", action="store_true", help="missing or unreadable images are an error")


def run_summary(args: argparse.Namespace) -> int:
    from dermalens.data.summary import format_summary, summarize, write_eda_report

    dataset = load_dataset(args.path, args.format, strict=args.strict, progress=not args.json)
    summary = summarize(dataset)
    if args.out:
        summary["report"] = str(write_eda_report(dataset, summary, args.out))
    print(json.dumps(summary, indent=1) if args.json else format_summary(summary))
    if args.out and not args.json:
        print(f"EDA report: {summary['report']}")
    return 0


def run_split(args: argparse.Namespace) -> int:
    from dermalens.data.duplicates import find_duplicates
    from dermalens.data.splits import kfold_dataset, split_dataset

    dataset = load_dataset(args.path, args.format, strict=args.strict, progress=True)
    links = (
        []
        if args.no_dedup
        else find_duplicates({r.image_id: r.path for r in dataset.records}, progress=True).links()
    )
    if args.kfold:
        split = kfold_dataset(dataset, k=args.kfold, seed=args.seed, linked_pairs=links)
    else:
        split = split_dataset(dataset, val=args.val, test=args.test, seed=args.seed, linked_pairs=links)
    split.save(args.out)
    sizes = {name: len(split.ids(name)) for name in split.names()}
    print(f"wrote {args.out}: {sizes}")
    return 0


def run_duplicates(args: argparse.Namespace) -> int:
    from dermalens.data.duplicates import find_duplicates
    from dermalens.data.splits import Split

    dataset = load_dataset(args.path, args.format, strict=args.strict, progress=not args.json)
    groups = {r.image_id: r.group for r in dataset.records}
    report = find_duplicates({r.image_id: r.path for r in dataset.records}, progress=not args.json)
    crossing = report.across(Split.load(args.split).assignments) if args.split else []
    rows = [
        {"a": p.a, "b": p.b, "kind": p.kind, "distance": p.distance, "same_group": groups[p.a] == groups[p.b]}
        for p in report.pairs
    ]
    if args.json:
        print(json.dumps({"pairs": rows, "across_splits": [(p.a, p.b) for p in crossing]}, indent=1))
        return 0
    print(f"{len(report.exact())} exact and {len(report.near())} near-duplicate pairs")
    for row in rows:
        if not row["same_group"]:
            print(
                f"  {row['kind']:<5} {row['a']} ~ {row['b']} (distance {row['distance']}, DIFFERENT groups)"
            )
    if args.split:
        print(f"{len(crossing)} pairs cross splits of {args.split}")
    return 0
