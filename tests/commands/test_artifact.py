"""`dermalens artifact …` (issue #30): one group for every command that reads or changes an
artifact, run here on a real small artifact; the old top-level names still run, with a note."""

from __future__ import annotations

import argparse
import json
import shutil

from test_extras import without_extras

from dermalens.artifact.meta import OOD_FILE
from dermalens.cli import build_parser, main
from dermalens.commands.artifact import SUBCOMMANDS


def test_show_prints_what_the_artifact_says(tiny_artifact, capsys):
    assert main(["artifact", "show", str(tiny_artifact)]) == 0
    printed = capsys.readouterr().out
    assert "kind          network" in printed and "tiny-test" in printed and OOD_FILE in printed
    assert main(["artifact", "show", str(tiny_artifact), "--json"]) == 0
    stored = json.loads(capsys.readouterr().out)
    assert stored["kind"] == "network" and set(stored["files"]) >= {"model.onnx", OOD_FILE}


def test_verify_passes_a_whole_artifact_and_names_a_damaged_file(tiny_artifact, tmp_path, capsys):
    assert main(["artifact", "verify", str(tiny_artifact)]) == 0
    assert "files match their SHA-256" in capsys.readouterr().out
    damaged = shutil.copytree(tiny_artifact, tmp_path / "damaged")
    with open(damaged / OOD_FILE, "ab") as handle:
        handle.write(b"\0")
    assert main(["artifact", "verify", str(damaged)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("dermalens artifact verify: error:") and f"{OOD_FILE}: SHA-256" in error


def test_export_runs_in_the_group(tiny_artifact, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert (
        main(["artifact", "export", "--model", str(tiny_artifact), "--format", "onnx", "--out", str(out)])
        == 0
    )
    assert out.stat().st_size > 1_000_000
    assert "is now" not in capsys.readouterr().err


def test_an_old_name_runs_the_same_code_with_a_one_line_note(tiny_artifact, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", "--model", str(tiny_artifact), "--format", "onnx", "--out", str(out)]) == 0
    assert out.stat().st_size > 1_000_000
    note = capsys.readouterr().err.strip().splitlines()
    assert note == [
        "note: `dermalens export` is now `dermalens artifact export`; the old name goes in the next release"
    ]


def test_every_old_name_is_still_a_command():
    action = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    assert isinstance(action, argparse._SubParsersAction)
    old = {c.old_name for c in SUBCOMMANDS if c.old_name}
    assert old == {
        "calibrate",
        "fit-decision",
        "refit-gate",
        "conformal",
        "export",
        "quantize",
        "soup",
        "import",
    }
    assert old | {"artifact"} <= set(action.choices)
    group = action.choices["artifact"]._subparsers._group_actions[0]  # type: ignore[union-attr]
    assert set(group.choices) == {c.name for c in SUBCOMMANDS} >= {"show", "verify"}


def test_a_group_command_without_its_extra_names_the_extra():
    ran = without_extras("artifact", "export", "--format", "onnx", "--out", "unused.onnx")
    assert ran.returncode == 2, ran.stderr
    assert "dermalens artifact export needs the `train` extra" in ran.stderr and "Traceback" not in ran.stderr


def test_export_of_an_ensemble_writes_its_primary_and_a_member_folder_is_explained(
    hand_ensemble, tmp_path, capsys
):
    out = tmp_path / "m.onnx"
    assert main(["artifact", "export", "--model", str(hand_ensemble), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "is an ensemble of 2 networks" in err and "export writes its primary network alone" in err
    assert out.stat().st_size > 1_000_000
    member = hand_ensemble / "members" / "other"
    assert main(["artifact", "export", "--model", str(member), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "no weights.pt (an ensemble's member folders are copied without it)" in capsys.readouterr().err
