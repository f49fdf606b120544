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
