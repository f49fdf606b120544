"""`dermalens adapt` given an ensemble artifact: it adapts the primary network alone and writes one
network (no members, no ensemble decision), says so in one line and on the new artifact's card."""

from __future__ import annotations

import logging
from pathlib import Path

from dermalens import Classifier
from dermalens.artifact.meta import MEMBERS_DIR
from dermalens.artifact.store import load_meta
from dermalens.cli import main


def test_an_ensemble_is_adapted_as_its_primary_network_alone(
    hand_ensemble: Path, tiny_artifact: Path, dataset_csv: Path, tmp_path: Path, caplog, capsys
) -> None:
    out = tmp_path / "clinic"
    with caplog.at_level(logging.WARNING):
        assert main(["adapt", "--model", str(hand_ensemble), "--data", str(dataset_csv), "--out", str(out),
                     "--no-progress"]) == 0  # fmt: skip
    notices = [r.getMessage() for r in caplog.records if "adapt refits its primary" in r.getMessage()]
    assert len(notices) == 1 and "ensemble of 2 networks" in notices[0]
    assert "`dermalens artifact ensemble`" in notices[0]
    assert "nothing was changed" in capsys.readouterr().out  # 42 images: too few to refit
    _, meta = load_meta(out)  # every hash rewritten for the one network left
    primary = load_meta(tiny_artifact)[1]
    assert meta.ensemble is None and not (out / MEMBERS_DIR).exists()
    assert "primary network of the ensemble hand (2 networks)" in meta.training["from_ensemble"]
    # the primary's own rules, fitted on it alone: not the ensemble's (threshold 0.2, set by hand)
    assert (meta.threshold, meta.class_bias) == (primary.threshold, primary.class_bias)
    assert len(Classifier.load(out).engine.members) == 1
    assert load_meta(hand_ensemble)[1].ensemble is not None  # the source is left as it was
