"""Grad-CAM (Selvaraju et al., ICCV 2017) via pytorch-grad-cam, for networks without an exact CAM.

Exact class activation maps need global average pooling followed by one linear layer
(`models.heads.has_linear_cam`); MobileNetV3, ConvNeXt and ViT-style heads are not of
that form, so their ONNX graphs carry an all-zero CAM. On the PyTorch side this module
fills the gap with Grad-CAM on the last feature stage that timm reports
(``model.feature_info[-1]``). Needs the `train` extra (torch, grad-cam).

Example::

    from dermalens import Classifier
    clf = Classifier.load("runs/mobilenet/artifact", runtime="torch")
    clf.predict("lesion.jpg", heatmap=True).heatmap   # Grad-CAM of the predicted class
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


def target_layer(model: nn.Module) -> nn.Module:
    """The module producing the last feature map (timm's feature_info), or a clear error."""
    info = getattr(model, "feature_info", None)
    if not info:
        raise ValueError(f"{type(model).__name__} has no feature_info; pass a target layer explicitly")
    name = info[-1]["module"]
    modules = dict(model.named_modules())
    if name not in modules:
        raise ValueError(
            f"feature layer {name!r} not found; list layers with [n for n, _ in model.named_modules()]"
        )
    return modules[name]


def grad_cam(model: nn.Module, batch: torch.Tensor, classes: list[int]) -> np.ndarray:
    """[N, H', W'] Grad-CAM maps in [0, 1] (at the input's size) for one class per image.

    The model is put in eval mode and its gradients are restored afterwards; hooks are
    removed when the context ends (pytorch-grad-cam's context manager).
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    was_training = model.training
    model.eval()
    try:
        with GradCAM(model=model, target_layers=[target_layer(model)]) as cam:
            maps = cam(input_tensor=batch, targets=[ClassifierOutputTarget(c) for c in classes])
    finally:
        model.train(was_training)
    return np.asarray(maps, dtype=np.float32)
