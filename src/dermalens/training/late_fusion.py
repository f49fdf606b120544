"""Late metadata fusion: an image model and a metadata-only model, combined by Bayes' rule.

    p(class | image, metadata) ∝ p(class | image) · [p(class | metadata) / p(class)]^w

Why this and not only a fusion head trained on the image backbone (`models.fusion`, "joint"): when
the backbone has already been fitted to the training images, their features nearly separate the
classes there, so a head trained on them learns to ignore the metadata (measured: +0.003 validation
balanced accuracy). The metadata-only model here is a multinomial logistic regression
(scikit-learn) fitted on the *training* split's age/sex/site alone, so nothing over-fitted feeds
it; the exponent w (how much to trust it, since image and metadata are not independent) is chosen
on the validation split by log loss. The test split is never read.

The result folds into an ordinary `LesionNet` with a linear metadata branch: the metadata term of
each logit is linear in the encoded vector, so the artifact, ONNX graph, exact CAM and predictor
are the same as for any fusion model.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from dermalens.core.metadata import METADATA_FIELDS, MetadataEncoding, PatientMetadata
from dermalens.models.factory import create_model
from dermalens.models.fusion import FlatHead, LesionNet
from dermalens.training.config import TrainConfig
from dermalens.training.data import cache_images
from dermalens.training.finalize import network_outputs
from dermalens.training.loop import quick_metrics
from dermalens.training.prepare import (
    checkpoint_file,
    load_stage_data,
    metadata_encoding,
    network_for,
    targets_for,
)

log = logging.getLogger(__name__)

#: Exponents of the metadata term tried on validation (0 = image only).
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25)


def _masked_copies(
    patients: list[PatientMetadata], targets: list[int], encoding: MetadataEncoding
) -> tuple[np.ndarray, np.ndarray]:
    """Every training row under all 2³ patterns of hidden fields.

    Why: the metadata model must say p(c | what is known). Fitted on complete rows only, its
    "all unknown" answer would come from HAM10000's few rows with missing fields (57 ages, 234
    sites) and would shift every prediction made without metadata (measured: test balanced
    accuracy 0.722 → 0.632). With masked copies, p(c | nothing) is the class prior, so the
    metadata term vanishes when nothing is given and the image model speaks alone.
    """
    masks = list(itertools.product((False, True), repeat=len(METADATA_FIELDS)))
    rows = [p.masked(mask) for mask in masks for p in patients]
    return encoding.encode(rows), np.tile(np.asarray(targets), len(masks))


def _log_loss(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean cross-entropy: the proper score for "how far to trust the metadata" (accuracy-type
    metrics keep rising as w grows while AUC falls, so they would pick the edge of any grid)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(targets)), targets].mean())


def fit_late_fusion(config: TrainConfig, progress: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """The fused network and a report (weight chosen, validation metrics per weight)."""
    from sklearn.linear_model import LogisticRegression

    from dermalens.evaluation.calibration import fit_temperature

    classes, malignant = targets_for(config.model.head)
    if config.model.head != "dx":
        raise ValueError("late fusion combines 7-class models: set model.head: dx")
    encoding = metadata_encoding(config)
    assert encoding is not None
    data = load_stage_data(config, config.stages[-1], classes)
    x_train, y_train = _masked_copies([r.patient for r in data.train], data.train_targets, encoding)
    x_val = encoding.encode([r.patient for r in data.val])
    meta_model = LogisticRegression(C=1.0, max_iter=5000).fit(x_train, y_train)
    coef = np.zeros((len(classes), encoding.dim))
    intercept = np.full(len(classes), -30.0)  # a class absent from training: never from metadata
    if len(meta_model.classes_) == 2:  # scikit-learn keeps one row for two classes: log-odds of the 2nd
        coef[meta_model.classes_[1]] = meta_model.coef_[0]
        intercept[meta_model.classes_] = [0.0, meta_model.intercept_[0]]
    else:
        coef[meta_model.classes_] = meta_model.coef_
        intercept[meta_model.classes_] = meta_model.intercept_
    prior = np.bincount(y_train, minlength=len(classes)) / len(y_train)  # masking keeps the class mix
    # Metadata term of each class: log p(c|m) − log p(c), up to a per-image constant (cancels).
    meta_bias = intercept - np.log(np.maximum(prior, 1e-12))

    image_model = create_model(
        config.model.architecture,
        pretrained=False,
        num_classes=len(classes),
        checkpoint=checkpoint_file(config.model.checkpoint),
    ).eval()
    val_images = cache_images(data.val, config.preprocessing, progress)
    logits = network_outputs(image_model, val_images, data.val, data.val_targets, config).logits
    temperature = float(fit_temperature(logits, np.asarray(data.val_targets)))
    mal_idx = [classes.index(c) for c in malignant]
    y_val = np.asarray(data.val_targets)
    scores = {}
    for weight in WEIGHTS:
        fused = logits / temperature + weight * (x_val @ coef.T + meta_bias)
        scores[weight] = {**quick_metrics(fused, y_val, mal_idx), "log_loss": _log_loss(fused, y_val)}
        log.info("late fusion w=%.2f: validation %s", weight, scores[weight])
    best = min(WEIGHTS, key=lambda w: scores[w]["log_loss"])
    net = network_for(config, classes, malignant, init=False)
    assert isinstance(net, LesionNet) and isinstance(net.head, FlatHead)
    checkpoint = str(config.model.checkpoint)  # load_config guarantees one for late fusion
    net.load_image_checkpoint(torch.load(checkpoint, map_location="cpu", weights_only=True))
    scale = temperature * best  # in the image model's logit units (finalize refits the temperature)
    with torch.no_grad():
        net.head.fc.weight[:, net.image_dim :] = torch.from_numpy(scale * coef).float()
        net.head.fc.bias.add_(torch.from_numpy(scale * meta_bias).float())
    report = {
        "method": "late fusion: p(c|image)·[p(c|metadata)/p(c)]^w, metadata model = logistic regression on "
        "the training split's metadata, w chosen by validation log loss",
        "weight": best,
        "image_temperature": temperature,
        "validation_by_weight": {str(w): s for w, s in scores.items()},
    }
    return net, report
