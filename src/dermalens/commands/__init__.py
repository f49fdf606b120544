"""The command line, one module per area: each parses its arguments and calls the package (the
top layer: it may import everything, nothing imports it but `dermalens.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def data_split_pairs(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """The repeated `--data D --split S` options of a command, paired in order (fit-decision,
    refit-gate); a count that does not match is the user's error, said plainly."""
    if len(args.data) != len(args.split):
        raise SystemExit(f"give one --split per --data ({len(args.data)} --data, {len(args.split)} --split)")
    return list(zip(args.data, args.split, strict=True))


def add_data_split_options(parser: argparse.ArgumentParser, verb: str) -> None:
    """The repeated `--data D --split S` pairs, `--split-name` and `--out` of a command that refits
    part of an artifact on validation splits (fit-decision, conformal)."""
    parser.add_argument("--model", required=True, help="model artifact (changed in place)")
    parser.add_argument(
        "--data", type=Path, action="append", required=True, help="dataset; repeat with one --split each"
    )
    parser.add_argument(
        "--split", type=Path, action="append", required=True, help="split file of each --data"
    )
    parser.add_argument("--split-name", default="val", help=f"split to {verb} on (default val)")
    parser.add_argument("--out", type=Path, help="write the changed copy here (model left unchanged)")
