"""The `dermalens` command: a thin layer that parses arguments and calls the package.

Each area registers its own sub-commands (``dermalens.<area>.commands``), so this
file stays a table of contents: data, train, evaluate/compare, adapt, predict, serve, artifact
(show, verify, calibrate, fit-decision, refit-gate, conformal, export, quantize, soup, import), tokens, erasure.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from dermalens import __version__
from dermalens.commands.extras import install_hint
from dermalens.inference.results import DISCLAIMER

#: Modules with `register(subparsers)`; each imports its area lazily, inside the command, so
#: `dermalens --help` stays fast and lists every command in the base install, and a command whose
#: extra is missing says which one to install (`dermalens.commands.extras`).
COMMAND_MODULES = (
    "dermalens.commands.data",
    "dermalens.commands.train",
    "dermalens.commands.evaluate",
    "dermalens.commands.adapt",
    "dermalens.commands.predict",
    "dermalens.commands.serve",
    "dermalens.commands.artifact",
    "dermalens.commands.tokens",
    "dermalens.commands.erasure",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dermalens",
        description="Dermoscopy lesion classifier (research/education only; not a diagnosis).",
        epilog=DISCLAIMER,
    )
    parser.add_argument("--version", action="version", version=f"dermalens {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:  # each imports only base dependencies until a command runs
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except ModuleNotFoundError as err:  # an optional dependency: name the extra; anything else is a bug
        hint = install_hint(args.command, err)
        if hint is None:
            raise
        print(hint, file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"dermalens {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
