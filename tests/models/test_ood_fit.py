"""Fitting the OOD gate (issue #34): no diagnosis refused much more often than nevi on images the
fit never saw, non-dermoscopy still refused, and gates fitted before the rule score as they did."""

from __future__ import annotations

import numpy as np

from dermalens.artifact.ood import OodGate
from dermalens.models.ood_fit import _class_scale, fit_gate

DIM = 32


def _class(rng: np.random.Generator, k: int, n: int) -> np.ndarray:
    """Class 0: common and compact (nevi); 1: wider (keratoses); 2: rare, wider still and
    heavy-tailed (multivariate t, 10 dof: vascular lesions). Means 10 apart, spreads overlapping."""
    z = rng.normal(size=(n, DIM)) * (1.0, 1.12, 1.25)[k]
    if k == 2:
        z /= np.sqrt(rng.chisquare(10, (n, 1)) / 10)
    if k:
        z[:, k] += 10.0
    return z.astype(np.float32)


def _sample(rng: np.random.Generator, counts: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([_class(rng, k, n) for k, n in enumerate(counts)]), np.repeat(np.arange(3), counts)


def test_no_class_is_refused_more_than_twice_as_often_as_the_common_one_on_new_images():
    """30 validation and 150 training images of the rare class, as HAM10000 + ISIC 2019 have of
    vascular lesions. (Over 30 seeds this holds in 28; radii from the validation images alone,
    chosen by the least scaled distance as before, broke it in 28.)"""
    rng = np.random.default_rng(0)
    train, labels = _sample(rng, (3000, 600, 150))
    val, val_labels = _sample(rng, (800, 150, 30))
    gate = fit_gate(train, labels, val, 0.99, val_labels=val_labels)
    held_out, truth = _sample(rng, (4000, 4000, 4000))
    refused = gate.score(held_out) > 1.0
    rates = [float(refused[truth == k].mean()) for k in range(3)]
    assert max(rates) <= max(2 * rates[0], 0.02), rates
    not_dermoscopy = _class(rng, 0, 500) * 2.0  # far wider than any class: another kind of image
    assert (gate.score(not_dermoscopy) > 1.0).mean() >= 0.98


def test_a_class_with_few_images_gets_the_conformal_rank_of_its_distances():
    """ceil((n + 1)·q) of n: with 30 images at q = 0.99 that is beyond the largest, so the largest."""
    distances = np.concatenate([np.arange(1.0, 31.0), np.full(970, 1.0)])
    labels = np.repeat([0, 1], [30, 970])
    scale = _class_scale(distances, labels, np.arange(2), 0.99)
    assert scale[0] == np.float32(30.0 / np.quantile(distances, 0.99))


def _two_class_gate(nearest_by: str) -> OodGate:
    means = np.asarray([[0.0, 0.0], [0.5, 0.0]], np.float32)
    gate = OodGate(means, np.eye(2, dtype=np.float32), 1.0, class_scale=np.asarray([1.0, 1.5], np.float32))
    gate.nearest_by = nearest_by
    return gate


def test_the_nearest_mean_chooses_the_radius_not_the_widest_class():
    """Class means a little apart, one class wider: the old rule measured everything in the wider
    radius; the new one measures an image in the radius of the class it is nearest to."""
    probe = np.asarray([[0.0, 1.2]], np.float32)  # d² = 1.44 to class 0, 1.69 to class 1
    assert _two_class_gate("distance").nearest(probe)[1][0] == 0
    assert _two_class_gate("distance").distances(probe)[0] == np.float32(1.44)
    assert _two_class_gate("scaled").nearest(probe)[1][0] == 1


def test_a_gate_saved_before_the_rule_loads_and_scores_as_before(tmp_path):
    old, new = _two_class_gate("scaled"), _two_class_gate("distance")
    old.save(tmp_path / "old.npz")
    new.save(tmp_path / "new.npz")
    with np.load(tmp_path / "old.npz") as data:
        assert "nearest_by" not in data  # the file an old gate wrote
    probe = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    loaded = OodGate.load(tmp_path / "old.npz")
    assert loaded.nearest_by == "scaled" and "own validation radius" in loaded.method
    assert np.array_equal(loaded.score(probe), old.score(probe))
    again = OodGate.load(tmp_path / "new.npz")
    assert again.nearest_by == "distance" and "nearest class mean" in again.method
    assert np.array_equal(again.score(probe), new.score(probe))


def test_a_gate_recentred_on_a_shifted_clinic_accepts_its_lesions_and_still_refuses_the_far():
    """Another camera shifts every embedding alike: the gate fitted elsewhere refuses most of the
    clinic's images; re-centred on some of them (`shift_gate`) it accepts new ones as it accepted
    its own validation images, while a point far from every class stays refused."""
    from dermalens.models.ood_fit import shift_gate

    rng = np.random.default_rng(3)
    train, labels = _sample(rng, (600, 300, 150))
    val, val_labels = _sample(rng, (200, 100, 50))
    gate = fit_gate(train, labels, val, 0.99, val_labels=val_labels)
    offset = np.full(DIM, 1.0, np.float32)
    clinic, clinic_labels = _sample(rng, (200, 100, 50))
    new, _ = _sample(rng, (200, 100, 50))
    assert (gate.score(new + offset) > 1).mean() > 0.5
    for known in (clinic_labels, None):  # labelled, or each image's nearest class
        shifted = shift_gate(gate, clinic + offset, labels=known)
        assert (shifted.score(new + offset) > 1).mean() < 0.05
        far = gate.means[:1] + offset + 6.0
        assert shifted.score(far)[0] > 1 and np.array_equal(shifted.precision, gate.precision)
    assert np.array_equal(gate.means, fit_gate(train, labels, val, 0.99, val_labels=val_labels).means)
