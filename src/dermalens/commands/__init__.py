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
