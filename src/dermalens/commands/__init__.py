"""The command line, one module per area: each parses its arguments and calls the package (the
top layer: it may import everything, nothing imports it but `dermalens.cli`)."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Subcommand:
    """One command of a group (`dermalens artifact …`): its options, what it runs, and the
    top-level name it had before the group (an alias for one release), or None if it is new."""

    name: str
    help: str
    options: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    old_name: str | None = None


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


def command_line() -> str:
    """The command as typed, for an artifact's `training.command` (how it was made)."""
    return "dermalens " + " ".join(shlex.quote(a) for a in sys.argv[1:])
