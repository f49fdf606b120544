"""The OOD gate's arithmetic: distances, the two-part threshold, persistence, and the fast
colour helpers it shares with preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import lesion_like
from dermalens.artifact.ood import OodGate
from dermalens.core.preprocess import Preprocessing, normalize, shades_of_gray
from dermalens.models.ood import colour_score
from dermalens.models.ood_fit import fit_gate


def _blobs(seed: int, n: int, dim: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, dim)) * np.linspace(0.5, 2.0, dim) + shift).astype(np.float32)


def test_distances_are_the_mahalanobis_distance_to_the_nearest_mean():
    train, labels = _blobs(0, 300, 12), np.arange(300) % 3
    gate = fit_gate(train, labels, _blobs(1, 100, 12))
    probe = _blobs(2, 20, 12, shift=1.0)
    precision = gate.precision.astype(np.float64)
    direct = np.min(
        [np.einsum("nd,de,ne->n", probe - m, precision, probe - m) for m in gate.means.astype(np.float64)],
        axis=0,
    )
    np.testing.assert_allclose(gate.distances(probe), direct, rtol=1e-4)


def test_distances_survive_a_precision_that_float32_made_indefinite():
    rng = np.random.default_rng(0)
    vectors = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    precision = (
        vectors * np.array([1e6, 1.0, 1.0, 1.0, 1.0, -1e-3])
    ) @ vectors.T  # one tiny negative eigenvalue
    gate = OodGate(np.zeros((1, 6), np.float32), precision.astype(np.float32), 1.0)
    probe = rng.normal(size=(4, 6)).astype(np.float32)
    direct = np.einsum("nd,de,ne->n", probe, precision, probe)
    distances = gate.distances(probe)
    assert np.all(np.isfinite(distances)) and np.all(distances >= 0)
    np.testing.assert_allclose(distances, np.maximum(direct, 0), rtol=1e-3, atol=1e-2)


def test_two_part_gate_refuses_the_chosen_share_and_catches_what_one_part_misses(tmp_path):
    train, labels, val = _blobs(0, 400, 8), np.arange(400) % 2, _blobs(1, 200, 8)
    level_train, level_val = _blobs(2, 400, 5), _blobs(3, 200, 5)
    gate = fit_gate(train, labels, val, 0.9, level_train, level_val)
    assert gate.uses_level and "mid-level" in gate.method
    refused = gate.score(val, level_features=level_val) > 1.0
    assert abs(refused.mean() - 0.1) < 0.02  # the quantile holds for both parts together
    # an input that looks normal in the embedding but not in the mid-level features is refused
    odd = gate.score(val[:5], level_features=level_val[:5] + 25.0)
    assert (odd > 1.0).all() and (gate.distances(val[:5]) / gate.threshold < odd).all()
    with pytest.raises(ValueError, match="mid-level"):
        gate.score(val[:5])
    gate.save(tmp_path / "ood.npz")
    loaded = OodGate.load(tmp_path / "ood.npz")
    np.testing.assert_allclose(
        loaded.score(val, level_features=level_val), gate.score(val, level_features=level_val), rtol=1e-5
    )


def test_gate_without_level_part_ignores_level_features(tmp_path):
    gate = fit_gate(_blobs(0, 200, 6), np.arange(200) % 2, _blobs(1, 50, 6))
    gate.save(tmp_path / "ood.npz")
    loaded = OodGate.load(tmp_path / "ood.npz")
    assert not loaded.uses_level
    probe = _blobs(4, 10, 6)
    np.testing.assert_allclose(
        loaded.score(probe, [0.0] * 10, _blobs(5, 10, 3)), gate.score(probe), rtol=1e-5
    )


def test_colour_score_flags_grey_images_only():
    assert colour_score(np.full((48, 64, 3), 128, np.uint8)) > 1.0
    assert colour_score(lesion_like(3, (64, 48))) < 1.0


def _reference_shades_of_gray(rgb: np.ndarray, power: float = 6.0) -> np.ndarray:
    """The per-pixel formula (Finlayson & Trezzi 2004) that the lookup-table version implements."""
    pixels = rgb.astype(np.float64)
    norm = 255.0 * np.mean((pixels / 255.0) ** power, axis=(0, 1)) ** (1.0 / power)
    gain = np.sqrt(3.0) * norm / np.sqrt(np.sum(norm**2))
    return np.clip(pixels / gain, 0, 255).astype(np.uint8)


def test_shades_of_gray_table_matches_the_per_pixel_formula():
    rgb = (lesion_like(11).astype(float) * [1.2, 0.9, 0.7]).clip(0, 255).astype(np.uint8)
    ours, reference = shades_of_gray(rgb).astype(int), _reference_shades_of_gray(rgb).astype(int)
    assert np.abs(ours - reference).max() <= 1 and (ours != reference).mean() < 0.01
    with pytest.raises(ValueError, match="uint8"):
        shades_of_gray(rgb.astype(np.float32))


def test_normalize_table_is_bit_identical_to_the_formula():
    spec = Preprocessing(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    rgb = np.asarray(Image.fromarray(lesion_like(12)).resize((64, 48)))
    mean = np.asarray(spec.mean, np.float32).reshape(3, 1, 1)
    std = np.asarray(spec.std, np.float32).reshape(3, 1, 1)
    formula = (rgb.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0) - mean) / std
    assert np.array_equal(normalize(rgb, spec), formula)


def test_gate_threshold_keeps_every_source_below_its_quantile():
    """A small, unusual source must not be refused more than the quantile allows (issue #14)."""
    from dermalens.models.ood_fit import fit_gate

    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, (400, 6))
    labels = np.arange(400) % 2
    common = rng.normal(0, 1, (500, 6))
    shifted = rng.normal(0.8, 1.3, (60, 6))  # another clinic: a little off the training cloud
    val = np.concatenate([common, shifted])
    groups = np.asarray(["big"] * 500 + ["small"] * 60)
    pooled = fit_gate(train, labels, val, 0.95)
    per_source = fit_gate(train, labels, val, 0.95, val_groups=groups)
    refused_small = lambda gate: float((gate.distances(shifted) > gate.threshold).mean())  # noqa: E731
    assert refused_small(pooled) > 0.1
    assert refused_small(per_source) <= 0.05 + 1e-9
    assert (per_source.distances(common) > per_source.threshold).mean() <= 0.05


def test_a_rare_wide_class_is_measured_in_its_own_radius(tmp_path):
    """A class that is rare in training and spreads wider (vascular lesions) was refused far more
    often than nevi under the shared covariance; with each class in units of its own validation
    radius (issue #17) no class is refused more than about the quantile, and far images still are."""
    from dermalens.artifact.ood import OodGate
    from dermalens.models.ood_fit import fit_gate

    rng = np.random.default_rng(1)
    common = rng.normal(0, 1, (900, 8))
    rare = rng.normal(4, 2.2, (60, 8))  # few and wide
    train = np.concatenate([common, rare])
    labels = np.asarray([0] * 900 + [1] * 60)
    val = np.concatenate([rng.normal(0, 1, (400, 8)), rng.normal(4, 2.2, (60, 8))])
    val_labels = np.asarray([0] * 400 + [1] * 60)
    level_train, level_val = train[:, :4] * 2, val[:, :4] * 2  # a mid-level part with the same spread
    shared = fit_gate(train, labels, val, 0.95, level_train, level_val)
    own = fit_gate(train, labels, val, 0.95, level_train, level_val, val_labels=val_labels)

    def refused(gate: OodGate, rows: slice) -> float:
        return float((gate.score(val[rows], None, level_val[rows]) > 1).mean())

    assert refused(shared, slice(400, None)) > 2 * refused(shared, slice(0, 400)) + 0.05
    assert refused(own, slice(400, None)) <= 0.1 and refused(own, slice(0, 400)) <= 0.1
    far = rng.normal(30, 1, (20, 8))
    assert (own.score(far, None, far[:, :4] * 2) > 1).all()
    own.save(tmp_path / "g.npz")
    again = OodGate.load(tmp_path / "g.npz")
    assert np.array_equal(again.score(val, None, level_val), own.score(val, None, level_val))
    assert "that class's radius" in own.method and again.nearest_by == "distance"


def test_a_gate_file_stores_half_of_each_precision_and_reads_the_former_layout(tmp_path):
    train, labels, val = _blobs(4, 300, 6), np.arange(300) % 3, _blobs(5, 100, 6)
    gate = fit_gate(train, labels, val, 0.9, _blobs(6, 300, 4), _blobs(7, 100, 4))
    gate.save(tmp_path / "ood.npz")
    with np.load(tmp_path / "ood.npz") as data:
        assert "precision" not in data and data["precision_upper"].shape == (6 * 7 // 2,)
        assert data["level_precision_upper"].shape == (4 * 5 // 2,)
        former = {k: data[k] for k in data.files if not k.endswith("_upper")}
    loaded = OodGate.load(tmp_path / "ood.npz")
    assert np.array_equal(loaded.precision, loaded.precision.T)
    np.testing.assert_allclose(loaded.precision, gate.precision, rtol=1e-6)
    np.testing.assert_allclose(loaded.level_precision, gate.level_precision, rtol=1e-6)
    symmetric = (gate.precision + gate.precision.T) / 2  # what gate files held before: whole matrices
    np.savez(tmp_path / "former.npz", **former, precision=symmetric, level_precision=gate.level_precision)
    old = OodGate.load(tmp_path / "former.npz")
    np.testing.assert_allclose(old.distances(val), loaded.distances(val), rtol=1e-5)
