"""Plain functions for one epoch of training and one pass of validation (torchvision-references style)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from dermalens.models.heads import call_model, forward_all

#: What a training/validation loader yields: images, metadata vectors ([N, 0] when unused), targets,
#: and a teacher's soft labels ([N, C], zero rows where a sample has none; [N, 0] when unused).
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class WeightedLoss(nn.Module):
    """Cross-entropy (or focal loss, Lin et al. 2017, with `gamma` > 0) weighted *per sample* by
    the weight of its true class.

    Why not ``F.cross_entropy(weight=...)``: with label smoothing, PyTorch also weights the
    smoothing term by every class's weight, which pushes rare-class probabilities up on
    every image; weighting by the true class only keeps smoothing neutral.
    """

    def __init__(
        self, weight: torch.Tensor | None = None, label_smoothing: float = 0.0, gamma: float = 0.0
    ) -> None:
        super().__init__()
        self.register_buffer("weight", weight if weight is not None else torch.ones(0))
        self.label_smoothing = label_smoothing
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits, target, reduction="none", label_smoothing=self.label_smoothing)
        if self.gamma:
            p_true = torch.softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
            loss = (1 - p_true) ** self.gamma * loss
        weight: torch.Tensor = self.weight  # type: ignore[assignment]
        if weight.numel():
            sample_weight = weight[target]
            return (loss * sample_weight).sum() / sample_weight.sum()
        return loss.mean()


class Distillation(nn.Module):
    """Hinton et al.'s distillation term, T² · KL(teacher_T ‖ student_T), on the samples that have
    soft labels (rows summing to 1), averaged over the whole batch so that its weight against the
    label loss does not depend on how many of a batch's samples carry a teacher's labels."""

    def __init__(self, weight: float, temperature: float) -> None:
        super().__init__()
        self.weight = weight
        self.temperature = temperature

    def forward(self, logits: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
        rows = soft.sum(dim=1) > 0.5
        if not bool(rows.any()):
            return logits.new_zeros(())
        teacher = soft[rows]
        log_student = F.log_softmax(logits[rows] / self.temperature, dim=1)
        kl = (teacher * (teacher.clamp_min(1e-8).log() - log_student)).sum(dim=1)
        return self.weight * self.temperature**2 * kl.sum() / len(soft)


@dataclass
class EpochOutputs:
    loss: float
    logits: np.ndarray
    features: np.ndarray
    targets: np.ndarray
    #: [N, Dl] pooled mid-level features (the OOD gate's second input), None for other backbones.
    level_features: np.ndarray | None = None


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    channels_last: bool,
    device: torch.device | str = "cpu",
    total: int | None = None,
    desc: str = "train",
    progress: bool = True,
    frozen: nn.Module | None = None,
    distill: Distillation | None = None,
) -> float:
    """One pass over `batches`; returns the mean training loss (with the distillation term, when
    given). `frozen` stays in eval mode."""
    model.train()
    if frozen is not None:
        frozen.eval()
    running, seen = 0.0, 0
    bar = tqdm(batches, total=total, desc=desc, disable=not progress, unit="batch", leave=False)
    for images, metadata, targets, soft in bar:
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        logits = call_model(model, images, metadata.to(device))
        loss = criterion(logits, targets)
        if distill is not None and soft.numel():
            loss = loss + distill(logits, soft.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        running += float(loss.detach()) * len(targets)
        seen += len(targets)
        bar.set_postfix(loss=f"{running / seen:.3f}")
    return running / max(seen, 1)


@torch.no_grad()
def predict_outputs(
    model: nn.Module,
    batches: Iterable[Batch],
    *,
    channels_last: bool,
    criterion: nn.Module | None = None,
    progress: bool = False,
    device: torch.device | str = "cpu",
) -> EpochOutputs:
    """Logits, pooled features and targets for every batch (eval mode)."""
    model.eval()
    logits, features, targets, levels = [], [], [], []
    loss_sum, seen = 0.0, 0
    for images, metadata, target, _soft in tqdm(
        batches, desc="eval", disable=not progress, unit="batch", leave=False
    ):
        images, target = images.to(device), target.to(device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        out = forward_all(model, images, metadata.to(device))
        if criterion is not None:
            loss_sum += float(criterion(out["logits"], target)) * len(target)
        seen += len(target)
        logits.append(out["logits"].float().cpu().numpy())
        features.append(out["features"].float().cpu().numpy())
        if "level_features" in out:
            levels.append(out["level_features"].float().cpu().numpy())
        targets.append(target.cpu().numpy())
    return EpochOutputs(
        loss_sum / max(seen, 1),
        np.concatenate(logits) if logits else np.zeros((0, 0)),
        np.concatenate(features) if features else np.zeros((0, 0)),
        np.concatenate(targets) if targets else np.zeros(0, dtype=int),
        np.concatenate(levels) if levels else None,
    )


def quick_metrics(
    logits: np.ndarray,
    targets: np.ndarray,
    malignant: list[int],
    sources: Sequence[str] | None = None,
) -> dict[str, float]:
    """Validation figures for early stopping and curves: accuracy, balanced accuracy, binary AUC,
    and with `sources` the mean of each source's own binary AUC (``source_auc``).

    Why the mean over sources: a pooled AUC is dominated by the largest, easiest source; the mean of
    per-source AUCs is what the replacement rule for the bundled model compares (docs/proxy.md)."""
    from sklearn.metrics import balanced_accuracy_score

    from dermalens.evaluation.metrics import binary_auc

    probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    predicted = probs.argmax(1)
    is_mal = np.isin(targets, malignant)
    p_mal = probs[:, malignant].sum(1)
    out = {
        "accuracy": float((predicted == targets).mean()),
        "balanced_accuracy": float(balanced_accuracy_score(targets, predicted)),
        "auc": binary_auc(is_mal, p_mal),
    }
    if sources is not None:
        keyed = np.asarray(sources, dtype=object)
        per_source = [binary_auc(is_mal[keyed == s], p_mal[keyed == s]) for s in sorted(set(keyed))]
        valid = [a for a in per_source if a == a]
        out["source_auc"] = float(np.mean(valid)) if valid else float("nan")
    return out
