"""`model.checkpoint` read by `training.prepare` (training from an artifact's weights): an ensemble
artifact's own weights.pt is its primary network (said in one line); a member folder holds none,
and the error says so before any data is loaded."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dermalens.artifact.meta import WEIGHTS_FILE
from dermalens.training.prepare import checkpoint_file


def test_an_ensemble_checkpoint_is_its_primary_and_a_member_has_none(
    hand_ensemble: Path, tiny_artifact: Path, caplog
) -> None:
    assert checkpoint_file(None) is None
    with caplog.at_level(logging.WARNING):
        assert checkpoint_file(str(tiny_artifact / WEIGHTS_FILE)) == str(tiny_artifact / WEIGHTS_FILE)
        assert not caplog.records
        primary = str(hand_ensemble / WEIGHTS_FILE)
        assert checkpoint_file(primary) == primary
    assert any("model.checkpoint starts from its primary network" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match=r"not a file \(an ensemble's member folders are copied without"):
        checkpoint_file(str(hand_ensemble / "members" / "other" / WEIGHTS_FILE))
    with pytest.raises(ValueError, match=r"not a file; valid: a PyTorch state dict"):
        checkpoint_file(str(hand_ensemble))  # a folder is not a weights file
