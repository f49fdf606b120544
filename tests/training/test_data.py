from collections import Counter

import numpy as np

from conftest import lesion_like
from dermalens.training.config import AugmentConfig, BalanceConfig
from dermalens.training.data import augment, class_weights, epoch_order


def test_augment_is_seeded_and_keeps_shape():
    image = lesion_like(0, (64, 48))
    cfg = AugmentConfig()
    a = augment(image, cfg, np.random.default_rng((1, 2, 3)))
    b = augment(image, cfg, np.random.default_rng((1, 2, 3)))
    c = augment(image, cfg, np.random.default_rng((1, 2, 4)))
    assert a.shape == image.shape and np.array_equal(a, b) and not np.array_equal(a, c)


def test_balancing_orders():
    targets = [0] * 90 + [1] * 10
    weights = class_weights(targets, 3, 1.0)
    assert weights[1] / weights[0] == 9 and weights[2] == 1.0
    under = epoch_order(targets, 2, BalanceConfig(method="undersample"), 0, 0)
    assert Counter(targets[i] for i in under) == {0: 10, 1: 10}
    sampled = epoch_order(targets, 2, BalanceConfig(method="sampler"), 0, 0)
    assert 30 < Counter(targets[i] for i in sampled)[1] < 70
    plain = epoch_order(targets, 2, BalanceConfig(method="none"), 0, 5)
    assert sorted(plain) == list(range(100)) and plain == epoch_order(
        targets, 2, BalanceConfig(method="none"), 0, 5
    )


def test_device_augmentations_are_seeded_and_keep_shape():
    from dermalens.training.augment import dark_rim, jpeg_roundtrip, ruler, zoom_out

    image = lesion_like(3, (96, 72))
    cfg = AugmentConfig(rescale=1.0, jpeg=1.0, blur=1.0, rim=1.0, ruler=1.0, zoom_out=1.0)
    a = augment(image, cfg, np.random.default_rng(5))
    assert a.shape == image.shape and np.array_equal(a, augment(image, cfg, np.random.default_rng(5)))
    from PIL import Image

    pil = Image.fromarray(image)
    rim = np.asarray(dark_rim(pil, np.random.default_rng(0)))
    assert rim[0, 0].max() < 40 and rim.shape == image.shape  # corners go dark
    assert abs(int(rim[36, 48].mean()) - int(image[36, 48].mean())) < 3  # the centre is kept
    ruled = np.asarray(ruler(pil, np.random.default_rng(1)))
    assert (ruled != image).any(axis=2).mean() > 0.03
    wide = np.asarray(zoom_out(pil, 0.5, np.random.default_rng(2)))
    dark = (wide.mean(axis=2) < 120).mean()
    assert dark < (image.mean(axis=2) < 120).mean()  # the lesion fills less of the frame
    assert np.abs(np.asarray(jpeg_roundtrip(pil, 30), dtype=int) - image).mean() > 1


def test_rescale_range_reaches_the_smallest_training_files():
    """rescale_min 0.35 of 224 px is 78 px wide: BCN's 84-px files are inside the range."""
    cfg = AugmentConfig()
    assert cfg.rescale_min * 224 < 84
