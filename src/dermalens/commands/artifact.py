"""`dermalens artifact …`: every command that reads or changes a model artifact, in one group.

show and verify read an artifact; calibrate, fit-decision, refit-gate and conformal refit part of
one on validation splits (`commands.artifact_fit`); export, quantize, soup and import make a new
artifact or file from one (`commands.artifact_build`). Each writes through `dermalens.artifact.write`.

The old top-level names (``dermalens calibrate`` …) stay for one release as aliases: the same
options and code, with a one-line note on stderr that names the new command.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from dermalens.commands import Subcommand, artifact_build, artifact_fit

if TYPE_CHECKING:
    from pathlib import Path

    from dermalens.artifact.meta import ArtifactMeta, ConformalSets

GROUP = "artifact"


def _show_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", help="artifact folder (default: bundled)")
    parser.add_argument("--json", action="store_true", help="print artifact.json as it is stored")


def _verify_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", help="artifact folder (default: bundled)")


def run_show(args: argparse.Namespace) -> int:
    from dermalens.artifact.store import load_meta

    folder, meta = load_meta(args.model, verify=False)
    if args.json:
        print(json.dumps(meta.to_dict(), indent=2))
        return 0
    prep = meta.preprocessing
    lines = [
        f"{meta.model_id}  ({folder})",
        f"  kind          {meta.model_kind.name}: {meta.model_kind.description}",
        f"  architecture  {meta.architecture}, head {meta.head}",
        f"  classes       {', '.join(meta.classes)} (malignant: {', '.join(meta.malignant)})",
        f"  input         {prep.input_size[0]}×{prep.input_size[1]}, colour constancy {prep.color_constancy}",
        f"  temperature   {meta.temperature:.4f}",
        f"  threshold     {meta.threshold:.4f} ({meta.threshold_rule})",
        f"  decision      {meta.class_bias_rule or 'the most probable class'}",
        f"  OOD gate      {meta.ood_method or 'none'}",
        f"  sets          {_sets(meta.conformal)}",
        f"  patient data  {', '.join(meta.metadata_inputs) or 'none (images only)'}",
        "  files         " + ", ".join(f"{name} {digest[:12]}…" for name, digest in meta.files.items()),
    ]
    print("\n".join(lines + _ensemble_lines(folder, meta)))
    return 0


def _ensemble_lines(folder: Path, meta: ArtifactMeta) -> list[str]:
    """What an ensemble artifact adds: its members and the decision fitted on their average (the
    lines above are the primary's own)."""
    from dermalens.artifact.store import load_members

    spec = meta.ensemble
    if spec is None:
        return []
    gate = "the primary's gate alone" if spec.gate == "first" else "any member's gate"
    lines = [
        f"ensemble of {len(spec.members) + 1} networks: probabilities averaged, {gate} refuses",
        f"  member 0      (primary, this folder) {meta.model_id}",
    ]
    for k, (path, member) in enumerate(load_members(folder, meta, verify=False), start=1):
        lines.append(
            f"  member {k}      {path.relative_to(folder).as_posix()}: {member.model_id}, {member.architecture}"
        )
    return [
        *lines,
        f"  threshold     {spec.threshold:.4f} ({spec.threshold_rule})",
        f"  decision      {spec.class_bias_rule or 'the most probable class'}",
        f"  sets          {_sets(spec.conformal)}",
        f"  fitted        {spec.fitted.get('date', '?')} on {spec.fitted.get('source', '?')}",
    ]


def _sets(conformal: ConformalSets | None) -> str:
    if conformal is None or not conformal.quantiles:
        return "none (not fitted)"
    return f"coverages {', '.join(sorted(conformal.quantiles))} (default {conformal.coverage:.2f})"


def run_verify(args: argparse.Namespace) -> int:
    from dermalens.artifact.store import load_members, load_meta

    folder, meta = load_meta(args.model, verify=True)  # a mismatch is an ArtifactError: exit 2
    print(f"{folder}: {len(meta.files)} files match their SHA-256 in artifact.json ({meta.model_id})")
    for path, member in load_members(folder, meta, verify=True):
        print(
            f"  member {path.relative_to(folder).as_posix()}: {len(member.files)} files listed, "
            f"those present match ({member.model_id})"
        )
    return 0


SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand(
        "show",
        "what an artifact says of itself: kind, classes, calibration, gate, files",
        _show_options,
        run_show,
    ),
    Subcommand("verify", "check every file of an artifact against its SHA-256", _verify_options, run_verify),
    *artifact_fit.SUBCOMMANDS,
    *artifact_build.SUBCOMMANDS,
)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = sub.add_parser(GROUP, help="show, verify, refit, quantise, export or import model artifacts")
    commands = group.add_subparsers(dest="artifact_command", required=True, metavar="COMMAND")
    for command in SUBCOMMANDS:
        parser = commands.add_parser(command.name, help=command.help)
        command.options(parser)
        parser.set_defaults(func=command.run, command=f"{GROUP} {command.name}")
    for command in SUBCOMMANDS:
        if command.old_name is not None:
            alias = sub.add_parser(command.old_name, help=f"old name of `dermalens {GROUP} {command.name}`")
            command.options(alias)
            alias.set_defaults(func=deprecated(command))


def deprecated(command: Subcommand) -> Callable[[argparse.Namespace], int]:
    """`command.run` behind a one-line note on stderr that names the command's new place."""

    def run(args: argparse.Namespace) -> int:
        print(
            f"note: `dermalens {command.old_name}` is now `dermalens {GROUP} {command.name}`; "
            "the old name goes in the next release",
            file=sys.stderr,
        )
        return command.run(args)

    return run
