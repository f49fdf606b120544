"""`dermalens artifact show | verify` on an ensemble artifact: its members, and a tampered member
named in the error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dermalens.cli import main


def test_show_lists_the_members_and_the_ensemble_s_decision(
    hand_ensemble: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["artifact", "show", str(hand_ensemble)]) == 0
    out = capsys.readouterr().out
    assert "ensemble of 2 networks: probabilities averaged, the primary's gate alone refuses" in out
    assert "member 0      (primary, this folder) hand-" in out
    assert "member 1      members/other: tiny-other-" in out
    assert "threshold     0.2000 (by hand)" in out


def test_show_of_a_single_model_has_no_ensemble_lines(
    tiny_artifact: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["artifact", "show", str(tiny_artifact)]) == 0
    assert "ensemble" not in capsys.readouterr().out


def test_verify_checks_every_member(
    hand_ensemble: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["artifact", "verify", str(hand_ensemble)]) == 0
    assert "member members/other:" in capsys.readouterr().out
    folder = Path(shutil.copytree(hand_ensemble, tmp_path / "copy"))
    graph = folder / "members/other/model.onnx"
    graph.write_bytes(graph.read_bytes()[:-1])
    assert main(["artifact", "verify", str(folder)]) == 2
    assert "members/other/model.onnx: SHA-256" in capsys.readouterr().err
