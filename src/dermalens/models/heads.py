"""One forward pass that yields logits, pooled features and class activation maps.

For networks whose head is global-average-pool + linear (EfficientNet, ResNet) the
CAM is exact: cam_c = Σ_k w_ck · f_k(x, y) + b_c, and averaging it over space gives
the logit (Zhou et al., "Learning Deep Features for Discriminative Localization",
CVPR 2016). Putting it in the exported graph lets ONNX Runtime produce heatmaps
without torch. Other heads get an all-zero CAM; use Grad-CAM (`models.gradcam`)
for them.
"""

from __future__ import annotations

import torch
from torch import nn

#: timm model classes whose head is exactly global average pooling + linear.
LINEAR_CAM_FAMILIES = ("EfficientNet", "ResNet")


def has_linear_cam(model: nn.Module) -> bool:
    """True when the head is average pooling followed by one linear layer (EfficientNet, ResNet).

    MobileNetV3 (a conv after pooling) and ConvNeXt/ViT (norms after pooling) are not.
    """
    pool_type = getattr(getattr(model, "global_pool", None), "pool_type", "")
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None  # type: ignore[operator]
    return (
        type(model).__name__ in LINEAR_CAM_FAMILIES
        and isinstance(classifier, nn.Linear)
        and pool_type == "avg"
    )


def backbone_maps(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The final feature map and, for EfficientNet, the output of its second-to-last block
    (the OOD gate's mid-level input; `inference.ood`), from one pass through timm's
    `forward_intermediates`.

    Why that block: on the bundled model, pooled features of earlier (stride-8/16) blocks also
    refused every non-skin photo, but refused 59-86 % of HAM10000 test lesions after a Gaussian
    blur (σ 1.5 px), against 17 % for the final embedding and 19 % for this block.
    """
    if type(net).__name__ == "EfficientNet":
        index = len(net.blocks) - 1  # type: ignore[arg-type]  # extra_blocks: 0 = stem, k = blocks[k-1]
        fmap, (mid,) = net.forward_intermediates(x, indices=[index], extra_blocks=True)  # type: ignore[operator]
        return fmap, mid
    return net.forward_features(x), None  # type: ignore[operator]


def uses_metadata(model: nn.Module) -> bool:
    """True for a `LesionNet` with a metadata branch (its forward takes a second tensor)."""
    return getattr(getattr(model, "module", model), "metadata_dim", 0) > 0


def call_model(model: nn.Module, x: torch.Tensor, metadata: torch.Tensor | None) -> torch.Tensor:
    """Training-time forward (logits) for any dermalens network, DDP-wrapped or not."""
    return model(x, metadata) if uses_metadata(model) else model(x)


def forward_all(
    model: nn.Module, x: torch.Tensor, metadata: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """``{"logits": [N,C], "features": [N,D], "cam": [N,C,h,w]}`` for a batch `x`, plus
    ``"level_features"`` [N,Dl] (pooled second-to-last block) for EfficientNet backbones.

    `metadata` [N,M] is read only by models with a metadata branch (`models.fusion`)."""
    own = getattr(model, "forward_all", None)  # a network that computes its own (models.fusion.LesionNet)
    if own is not None:
        return own(x, metadata if getattr(model, "metadata_dim", 0) else None)  # type: ignore[no-any-return]
    if has_linear_cam(model):
        fmap, mid = backbone_maps(model, x)
        classifier: nn.Linear = model.get_classifier()  # type: ignore[operator,assignment]
        features = fmap.mean(dim=(2, 3))
        logits = classifier(features)
        cam = torch.einsum("cd,ndhw->nchw", classifier.weight, fmap) + classifier.bias[None, :, None, None]
        return {"logits": logits, "features": features, "cam": cam} | level_output(mid)
    fmap = model.forward_features(x)  # type: ignore[operator]
    logits = model.forward_head(fmap)  # type: ignore[operator]
    features = model.forward_head(fmap, pre_logits=True)  # type: ignore[operator]
    cam = torch.zeros(x.shape[0], logits.shape[1], 1, 1, dtype=logits.dtype)
    return {"logits": logits, "features": features.flatten(1), "cam": cam}


def level_output(mid: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """``{"level_features": pooled mid-level map}``, or nothing for backbones without one."""
    return {} if mid is None else {"level_features": mid.mean(dim=(2, 3))}


#: Output names of `forward_all`, in export order (the last is absent for some backbones).
OUTPUT_NAMES = ("logits", "features", "cam", "level_features")


class ExportWrapper(nn.Module):
    """Wraps a model so that tracing/ONNX export sees the outputs as a tuple (`OUTPUT_NAMES` order)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, metadata: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        out = forward_all(self.model, image, metadata)
        return tuple(out[name] for name in OUTPUT_NAMES if name in out)
