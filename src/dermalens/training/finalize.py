"""Turn a trained run into a model artifact: calibration, operating threshold, decision rule, OOD
gate, prediction sets, card data.

All five are fitted on the *validation* split (the test split is never touched here):
temperature scaling on validation logits, the threshold that reaches the target
sensitivity for malignancy on validation, the diagnosis decision rule (`evaluation.decision`:
the prior correction with the best mean per-source balanced accuracy), and the OOD threshold at
a validation quantile, and the prediction sets' conformal quantiles (`evaluation.conformal`).
"""

from __future__ import annotations

import logging
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from dermalens.artifact.meta import ArtifactMeta
from dermalens.data.records import Record
from dermalens.inference.probabilities import softmax
from dermalens.models.build import save_artifact
from dermalens.models.ood_fit import fit_gate
from dermalens.training.config import TrainConfig
from dermalens.training.data import LesionDataset, cache_images
from dermalens.training.loop import predict_outputs, quick_metrics
from dermalens.training.prepare import (
    StageData,
    load_stage_data,
    metadata_encoding,
    targets_for,
)

log = logging.getLogger(__name__)


def network_outputs(
    model: nn.Module, images: np.ndarray, records: list[Record], targets: list[int], config: TrainConfig
) -> Any:
    """Logits, pooled features and targets of `model` on cached `images` (eval, no augmentation),
    fed each record's patient metadata when the run uses it."""
    encoding = metadata_encoding(config)
    metadata = [r.patient for r in records] if encoding else None
    dataset = LesionDataset(images, targets, config.preprocessing, metadata=metadata, encoding=encoding)
    loader = DataLoader(dataset, batch_size=config.batch_size * 2, num_workers=0)
    return predict_outputs(model, loader, channels_last=config.channels_last)


def build_artifact(
    model: nn.Module,
    config: TrainConfig,
    out_dir: Path,
    *,
    command: str = "",
    wall_seconds: float = 0.0,
    notes: dict[str, Any] | None = None,
) -> Path:
    """Calibrate on validation, fit the OOD gate, and write the artifact folder."""
    from dermalens.evaluation.calibration import fit_temperature, threshold_for_sensitivity

    classes, malignant = targets_for(config.model.head)
    data: StageData = load_stage_data(config, config.stages[-1], classes)
    model = model.float().eval().to(memory_format=torch.contiguous_format)
    train = network_outputs(
        model, cache_images(data.train, config.preprocessing), data.train, data.train_targets, config
    )
    val = network_outputs(
        model, cache_images(data.val, config.preprocessing), data.val, data.val_targets, config
    )
    mal_idx = [classes.index(c) for c in malignant]
    temperature = float(fit_temperature(val.logits, val.targets))
    p_mal = softmax(val.logits, temperature)[:, mal_idx].sum(1)
    is_mal = np.isin(val.targets, mal_idx)
    threshold = float(threshold_for_sensitivity(is_mal, p_mal, config.target_sensitivity))
    gate = fit_gate(
        train.features,
        train.targets,
        val.features,
        config.ood_quantile,
        train.level_features,
        val.level_features,
        np.asarray([r.source for r in data.val]),
        val.targets,
    )
    meta = artifact_meta(config, data, temperature, threshold)
    meta.training.update(
        command=command,
        wall_seconds=round(wall_seconds, 1),
        **({"notes": notes} if notes else {}),
    )
    meta.metrics = {"validation": quick_metrics(val.logits, val.targets, mal_idx)}
    _fit_rules(meta, softmax(val.logits, temperature), val.targets, [r.source for r in data.val])
    return save_artifact(model, out_dir, meta, gate)


def _fit_rules(meta: ArtifactMeta, probs: np.ndarray, targets: np.ndarray, sources: list[str]) -> None:
    """The diagnosis decision rule and the prediction sets, on calibrated validation probabilities;
    either left out, with a warning, where the validation split cannot support it."""
    from dermalens.evaluation.conformal import set_conformal
    from dermalens.evaluation.decision import set_decision

    try:
        set_decision(meta, probs, targets, sources, "the validation split")
    except ValueError as err:  # e.g. a validation split with one diagnosis: keep the plain argmax
        log.warning("decision rule not fitted (%s); the diagnosis is the most probable class", err)
    try:
        set_conformal(meta, probs, targets, "the validation split")
    except ValueError as err:  # a binary head, or too few validation images for the coverage
        log.warning("prediction sets not fitted (%s); results carry no set", err)


def artifact_meta(config: TrainConfig, data: StageData, temperature: float, threshold: float) -> ArtifactMeta:
    """What the artifact says of itself: classes, preprocessing, calibration, data and training."""
    classes, malignant = targets_for(config.model.head)
    encoding = metadata_encoding(config)
    return ArtifactMeta(
        name=config.name,
        architecture=config.model.architecture,
        classes=classes,
        malignant=malignant,
        preprocessing=config.preprocessing,
        head=config.model.head,
        metadata_inputs=list(encoding.fields) if encoding else [],
        metadata_encoding=encoding.to_dict() if encoding else {},
        metadata_branch="linear" if config.model.fusion == "late" else "mlp",
        temperature=temperature,
        threshold=threshold,
        threshold_rule=f"≥{config.target_sensitivity:.0%} sensitivity for malignancy on the validation split",
        data={
            "source": " + ".join(s.path for s in config.data.source_list()),
            "sources": data.dataset.source_counts(),
            "split": {name: len(data.split.ids(name)) for name in data.split.names()},
            "split_rule": "per source: stratified by source and diagnosis, grouped by lesion_id "
            "(near-duplicates merged), seeded",
            "train_images": len(data.train),
            "val_images": len(data.val),
        },
        training={
            "config": config.to_dict(),
            "hardware": f"{platform.machine()}, {torch.get_num_threads()} torch threads"
            + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", CPU only"),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
    )
