"""`dermalens artifact quantize` given an ensemble artifact: an INT8 copy of its primary network
alone, one network (INT8 moves its probabilities: the ensemble's decision would no longer hold)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from conftest import lesion_like
from dermalens.artifact.meta import MEMBERS_DIR
from dermalens.artifact.store import load_meta
from dermalens.inference.engine import Engine
from dermalens.training.quantize import quantize_artifact

pytestmark = pytest.mark.slow


def test_an_ensemble_is_quantised_as_its_primary_network_alone(
    hand_ensemble: Path, tiny_artifact: Path, tmp_path: Path, caplog
) -> None:
    images = [lesion_like(s, (64, 48)) for s in range(8)]
    with caplog.at_level(logging.WARNING):
        out = quantize_artifact(hand_ensemble, tmp_path / "int8", images, batch=4)
    assert any("INT8 copy of its primary network alone" in r.getMessage() for r in caplog.records)
    _, meta = load_meta(out)
    assert meta.ensemble is None and not (out / MEMBERS_DIR).exists()
    assert meta.name == "hand-int8" and "quantized" in meta.training and "from_ensemble" in meta.training
    assert meta.threshold == load_meta(tiny_artifact)[1].threshold  # the primary's own, not the ensemble's
    assert len(Engine.load(out).members) == 1
