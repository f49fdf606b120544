"""The head-only fine-tune of `dermalens adapt --head`, on the bundled model's real features of
HAM10000 test images: the prior holds where it should, and the class-balanced fit names the
classes the clinic has better than the original head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from dermalens.artifact.meta import ONNX_FILE
from dermalens.artifact.store import BUNDLED_DIR, load_meta
from dermalens.data.readers import load_dataset
from dermalens.data.splits import Split
from dermalens.evaluation.adapt_head import fit_head, head_logp
from dermalens.evaluation.outputs import collect_outputs
from dermalens.models.onnx_head import read_head

pytestmark = pytest.mark.realdata
SPLIT = Path(__file__).resolve().parents[2] / "configs/splits/ham10000-seed0.json"


@pytest.fixture(scope="module")
def clinic(ham10000: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, class indices and served probabilities of 200 HAM10000 test images through the
    bundled graph."""
    _, meta = load_meta(BUNDLED_DIR)
    records = load_dataset(ham10000).subset(sorted(Split.load(SPLIT).ids("test"))[:200]).records
    out = collect_outputs(BUNDLED_DIR, records)
    label = {r.image_id: meta.classes.index(r.label) for r in records}
    assert out.features is not None
    return out.features, np.asarray([label[i] for i in out.image_ids]), out.probabilities()


def test_the_fit_stays_at_the_prior_when_pulled_hard_and_serves_as_the_graph(clinic) -> None:
    features, targets, served = clinic
    _, meta = load_meta(BUNDLED_DIR)
    prior = read_head(BUNDLED_DIR / ONNX_FILE)
    assert np.allclose(np.exp(head_logp(features, *prior, meta.temperature)), served, atol=1e-4)
    weight, bias = fit_head(features, targets, prior, meta.temperature, l2=1e6)
    assert np.abs(weight - prior[0]).max() < 1e-3 and np.abs(bias - prior[1]).max() < 1e-3


def test_the_class_balanced_fit_names_the_clinics_classes_better(clinic) -> None:
    features, targets, _ = clinic
    _, meta = load_meta(BUNDLED_DIR)
    prior = read_head(BUNDLED_DIR / ONNX_FILE)
    before = head_logp(features, *prior, meta.temperature).argmax(axis=1)
    after = head_logp(features, *fit_head(features, targets, prior, meta.temperature), meta.temperature)
    assert balanced_accuracy_score(targets, after.argmax(axis=1)) > balanced_accuracy_score(targets, before)
    assert np.allclose(np.exp(after).sum(axis=1), 1.0)
