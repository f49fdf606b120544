"""The options of the travelling recipe (issue #17): frozen blocks, class-by-source balance,
distillation from a teacher, and the one-pass colour and geometry augmentation."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from conftest import lesion_like
from dermalens.training.augment import augment, colour_matrix
from dermalens.training.config import AugmentConfig, BalanceConfig, StageConfig
from dermalens.training.data import class_by_source_weights, epoch_order
from dermalens.training.loop import Distillation
from dermalens.training.optim import frozen_in_eval, param_groups


def test_frozen_blocks_keep_weights_and_batchnorm_statistics():
    from dermalens.models.factory import create_model

    model = create_model("tf_efficientnet_lite0", num_classes=7, pretrained=False)
    stage = StageConfig("finetune", 1, 1e-2, freeze_blocks=2)
    optimizer = torch.optim.AdamW(param_groups(model, stage, 0.0))
    frozen = frozen_in_eval(model, stage)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    assert frozen is not None
    frozen.eval()
    loss = model(torch.randn(4, 3, 48, 64)).logsumexp(1).mean()
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    fixed = ("conv_stem.", "bn1.", "blocks.0.", "blocks.1.")
    for key, value in after.items():
        if key.startswith(fixed):  # weights and running statistics alike
            assert torch.equal(value, before[key]), key
    assert not torch.equal(after["blocks.2.0.conv_pw.weight"], before["blocks.2.0.conv_pw.weight"])
    assert not torch.equal(after["blocks.2.0.bn1.running_mean"], before["blocks.2.0.bn1.running_mean"])
    assert not torch.equal(after["classifier.weight"], before["classifier.weight"])


def test_freezing_more_blocks_than_the_backbone_has_says_so():
    from dermalens.models.factory import create_model

    model = create_model("tf_efficientnet_lite0", num_classes=7, pretrained=False)
    with pytest.raises(ValueError, match="freeze_blocks 9"):
        param_groups(model, StageConfig("s", 1, 1e-3, freeze_blocks=9), 0.0)


def test_class_by_source_gives_every_source_the_pooled_mix():
    # Source "a" is mostly class 0, source "b" mostly class 1; "c" has only classes 0 and 2.
    targets = [0] * 80 + [1] * 20 + [0] * 10 + [1] * 90 + [0] * 30 + [2] * 10
    sources = ["a"] * 100 + ["b"] * 100 + ["c"] * 40
    weights = class_by_source_weights(targets, sources)
    pooled = Counter(targets)
    for source, present in (("a", (0, 1)), ("b", (0, 1)), ("c", (0, 2))):
        rows = [i for i, s in enumerate(sources) if s == source]
        mass = {c: sum(weights[i] for i in rows if targets[i] == c) for c in present}
        total = sum(pooled[c] for c in present)
        for c in present:
            assert mass[c] / sum(mass.values()) == pytest.approx(pooled[c] / total)
        assert sum(mass.values()) == pytest.approx(len(rows))  # the source's own weight is unchanged
    order = epoch_order(targets, 3, BalanceConfig(class_by_source=True, epoch_size=20000), 0, 0, sources)
    drawn_a = Counter(targets[i] for i in order if sources[i] == "a")
    assert 0.45 < drawn_a[0] / (drawn_a[0] + drawn_a[1]) < 0.55  # pooled share of 0 over {0, 1}: 0.5


def test_distillation_is_the_temperature_scaled_kl_on_rows_with_soft_labels():
    term = Distillation(weight=2.0, temperature=3.0)
    logits = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    none = torch.zeros(2, 3)
    assert float(term(logits, none)) == 0.0
    teacher = torch.tensor([[0.7, 0.2, 0.1], [0.0, 0.0, 0.0]])  # only the first row has a teacher
    student = torch.softmax(logits[0] / 3.0, dim=0)
    kl = float((teacher[0] * (teacher[0].log() - student.log())).sum())
    assert float(term(logits, teacher)) == pytest.approx(2.0 * 9.0 * kl / 2)  # averaged over the batch
    assert float(term(logits, torch.stack([torch.softmax(logits[0] / 3.0, 0), none[1]]))) == pytest.approx(
        0, abs=1e-6
    )


def test_colour_matrix_is_the_identity_without_colour_augmentation_and_keeps_grey_grey():
    still = AugmentConfig(brightness=0, contrast=0, saturation=0, hue=0, color_cast=0)
    matrix = colour_matrix(still, np.random.default_rng(0), np.array([120.0, 80.0, 60.0]))
    assert np.allclose(matrix, np.hstack([np.eye(3), np.zeros((3, 1))]))
    turned = colour_matrix(AugmentConfig(hue=0.05, color_cast=0), np.random.default_rng(1), np.full(3, 100.0))
    grey = turned @ np.array([90.0, 90.0, 90.0, 1.0])
    assert np.ptp(grey) < 1e-6  # saturation, hue and contrast move grey along the grey axis only


def test_augmented_rotation_fills_corners_with_skin_not_black():
    image = lesion_like(2, (96, 72))
    cfg = AugmentConfig(
        rotate=45, scale=(1.0, 1.0), hflip=False, vflip=False, brightness=0, contrast=0, saturation=0, hue=0,
        color_cast=0,
    )  # fmt: skip
    out = augment(image, cfg, np.random.default_rng(3))
    corner = out[:3, :3].reshape(-1, 3).mean(axis=0)
    assert corner.min() > 40  # the mean colour of the image, never a black wedge
