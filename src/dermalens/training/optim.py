"""What a training stage optimises, and how: its frozen parts, parameter groups (layer-wise learning
rates), learning-rate schedule and loss."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from dermalens.training.config import StageConfig, TrainConfig
from dermalens.training.data import class_weights
from dermalens.training.loop import WeightedLoss


def frozen_parts(model: nn.Module, stage: StageConfig) -> list[nn.Module]:
    """What a stage keeps fixed: the whole backbone (`freeze_backbone`), or its stem and first
    `freeze_blocks` blocks (timm EfficientNet/ResNet-style `conv_stem`, `bn1`, `blocks`)."""
    if stage.freeze_backbone:
        return [backbone(model)]
    if not stage.freeze_blocks:
        return []
    net = getattr(model, "backbone", model)
    blocks = getattr(net, "blocks", None)
    if blocks is None or stage.freeze_blocks > len(blocks):
        raise ValueError(
            f"stage {stage.name!r}: freeze_blocks {stage.freeze_blocks} needs a backbone with at least "
            f"that many `blocks` ({type(net).__name__} has {len(blocks) if blocks is not None else 'none'})"
        )
    return [net.conv_stem, net.bn1, *blocks[: stage.freeze_blocks]]


def param_groups(model: nn.Module, stage: StageConfig, weight_decay: float) -> list[dict[str, Any]]:
    """Everything but the frozen parts; layer-wise lr decay over the backbone's blocks."""
    head = set(id(p) for p in model.get_classifier().parameters())  # type: ignore[operator]
    fixed = {id(p) for part in frozen_parts(model, stage) for p in part.parameters()} - head
    for p in model.parameters():
        p.requires_grad = id(p) not in fixed
    # LesionNet nests the timm network under "backbone."; layer depth reads the timm names.
    named = [(n.removeprefix("backbone."), p) for n, p in model.named_parameters() if p.requires_grad]
    if stage.layer_decay >= 1.0 or stage.freeze_backbone:
        return [{"params": [p for _, p in named], "lr": stage.lr, "weight_decay": weight_decay}]
    depth = max((int(n.split(".")[1]) for n, _ in named if n.startswith("blocks.")), default=0) + 2
    groups: dict[int, list[torch.Tensor]] = {}
    for name, param in named:
        layer = (
            0
            if name.startswith(("conv_stem", "bn1"))
            else (int(name.split(".")[1]) + 1 if name.startswith("blocks.") else depth)
        )
        groups.setdefault(layer, []).append(param)
    return [
        {
            "params": params,
            "lr": stage.lr * stage.layer_decay ** (depth - layer),
            "weight_decay": weight_decay,
        }
        for layer, params in sorted(groups.items())
    ]


def backbone(model: nn.Module) -> nn.Module:
    """The feature extractor: LesionNet's `backbone`; for a bare timm network, everything but the
    classifier (its modules except the head)."""
    if hasattr(model, "backbone"):
        return model.backbone  # type: ignore[return-value]
    head = model.get_classifier()  # type: ignore[operator]
    return nn.ModuleList([m for m in model.children() if m is not head])


def frozen_in_eval(model: nn.Module, stage: StageConfig) -> nn.Module | None:
    """The frozen parts whose BatchNorm statistics stay fixed too: always for frozen blocks (their
    batch statistics would otherwise drift from the running ones that inference uses); for a
    frozen backbone only with `backbone_eval` (linear probing)."""
    if stage.freeze_backbone and not stage.backbone_eval:
        return None
    parts = frozen_parts(model, stage)
    return nn.ModuleList(parts) if parts else None


def scheduler_for(optimizer: torch.optim.Optimizer, stage: StageConfig, steps_per_epoch: int) -> Any:
    total = max(1, stage.epochs * steps_per_epoch)
    warm = int(stage.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1 + np.cos(np.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def criterion_for(config: TrainConfig, targets: list[int], n_classes: int) -> nn.Module:
    balance = config.balance
    weight = None
    if balance.method in ("class_weights", "focal"):
        weight = torch.tensor(class_weights(targets, n_classes, balance.power), dtype=torch.float32)
    gamma = balance.focal_gamma if balance.method == "focal" else 0.0
    return WeightedLoss(weight, config.label_smoothing, gamma)
