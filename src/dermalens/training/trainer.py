"""Run a training config: stages (warm-up, fine-tuning, curriculum), checkpoints, resume, DDP.

A checkpoint (``last.pt``) is written after every epoch with model, optimiser,
scheduler, RNG state, stage/epoch and history; ``--resume RUN_DIR`` continues at
the next epoch. Each stage starts from the previous stage's best weights. Under
``torchrun`` the epoch's sample order is sharded across processes (gloo on CPU).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from dermalens.training.config import StageConfig, TrainConfig, save_config
from dermalens.training.curves import write_curves, write_metrics_log
from dermalens.training.data import LesionDataset, cache_images, epoch_order
from dermalens.training.distill import soft_labels
from dermalens.training.loop import (
    Distillation,
    predict_outputs,
    quick_metrics,
    train_one_epoch,
)
from dermalens.training.optim import criterion_for, frozen_in_eval, param_groups, scheduler_for
from dermalens.training.prepare import (
    StageData,
    load_stage_data,
    metadata_encoding,
    network_for,
    stage_preprocessing,
    targets_for,
)

log = logging.getLogger(__name__)
CHECKPOINT = "last.pt"


@dataclass
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def init_distributed() -> Dist:
    """Join a torchrun group when WORLD_SIZE > 1 (gloo on CPU, nccl with CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Dist(int(os.environ.get("RANK", "0")), world)


@dataclass
class RunState:
    stage_index: int = 0
    epoch: int = -1  # last completed epoch of the current stage
    best: float = -np.inf
    stale: int = 0
    stage_done: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


def _loader(
    dataset: LesionDataset, order: list[int], config: TrainConfig, shuffle_seed: int
) -> DataLoader[Any]:
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=order,
        num_workers=config.workers,
        drop_last=len(order) > config.batch_size,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(shuffle_seed),
    )


class Trainer:
    """Owns one run directory: config, split, checkpoints, metrics log, artifact."""

    def __init__(
        self,
        config: TrainConfig,
        dist_info: Dist | None = None,
        progress: bool = True,
        on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> None:
        #: Told (epochs done in the run, the epoch's metrics row) after each epoch: hyperparameter
        #: search prunes through it (training/tune.py); it may raise to stop the run.
        self.on_epoch = on_epoch
        self.config = config
        self.dist = dist_info or Dist()
        self.progress = progress and self.dist.main
        self.run_dir = config.run_dir()
        self.classes, self.malignant = targets_for(config.model.head)
        wanted = (
            config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        )
        self.device = torch.device(
            f"cuda:{self.dist.rank % max(1, torch.cuda.device_count())}" if wanted == "cuda" else "cpu"
        )

    # ---- checkpoints -------------------------------------------------------------------------
    def _save(self, model: nn.Module, optimizer: Any, scheduler: Any, state: RunState) -> None:
        payload = {
            "model": {k: v.cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "state": state.__dict__,
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),
        }
        tmp = self.run_dir / (CHECKPOINT + ".tmp")
        torch.save(payload, tmp)
        tmp.replace(self.run_dir / CHECKPOINT)  # atomic: a kill never leaves a half-written checkpoint

    def _load_checkpoint(self) -> dict[str, Any] | None:
        path = self.run_dir / CHECKPOINT
        return torch.load(path, map_location="cpu", weights_only=False) if path.is_file() else None

    # ---- main entry --------------------------------------------------------------------------
    def fit(self, *, resume: bool = False, only_stage: str | None = None) -> nn.Module:
        config = self.config
        torch.manual_seed(config.seed)
        np.random.seed(config.seed % 2**32)
        if self.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, self.run_dir / "config.yaml")
        self.dist.barrier()
        model = network_for(config, self.classes, self.malignant, init=True).to(self.device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        checkpoint = self._load_checkpoint() if resume else None
        state = RunState(**checkpoint["state"]) if checkpoint else RunState()
        names = [s.name for s in config.stages]
        if only_stage is not None:
            if only_stage not in names:
                raise ValueError(f"unknown stage {only_stage!r}; stages in this config: {', '.join(names)}")
            state = RunState(stage_index=names.index(only_stage))
            checkpoint = None
        if checkpoint:
            model.load_state_dict(checkpoint["model"])
        elif state.stage_index > 0:
            model.load_state_dict(self._stage_best(state.stage_index - 1))
        while state.stage_index < len(config.stages):
            stage = config.stages[state.stage_index]
            if not state.stage_done:
                self._run_stage(model, stage, state, checkpoint)
            checkpoint = None
            model.load_state_dict(self._stage_best(state.stage_index))
            if only_stage is not None:
                break
            state = RunState(stage_index=state.stage_index + 1, history=state.history)
        return model.cpu()

    def load_final(self) -> nn.Module:
        """The finished run's final weights (the last stage's best), on the CPU."""
        model = network_for(self.config, self.classes, self.malignant, init=False)
        model.load_state_dict(self._stage_best(len(self.config.stages) - 1))
        return model

    def _stage_best(self, index: int) -> dict[str, torch.Tensor]:
        path = self.run_dir / f"stage-{self.config.stages[index].name}-best.pt"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: stage {self.config.stages[index].name!r} has not been trained yet"
            )
        return torch.load(path, map_location="cpu", weights_only=True)

    def _stage_sets(self, stage: StageConfig, data: StageData) -> tuple[LesionDataset, LesionDataset]:
        """The stage's cached, augmented training set (with the teacher's soft labels) and its
        validation set, at the stage's input size."""
        config = self.config
        spec = stage_preprocessing(config, stage)
        encoding = metadata_encoding(config)
        soft = (
            soft_labels(config.distill, data.train, self.classes, config.teacher_cache_dir())
            if self.dist.main
            else None
        )
        if self.dist.world > 1 and config.distill.teacher is not None:
            box: list[Any] = [soft]
            dist.broadcast_object_list(box, src=0)
            soft = box[0]
        train_set = LesionDataset(
            cache_images(data.train, spec, self.progress),
            data.train_targets,
            spec,
            config.augment,
            config.seed,
            metadata=[r.patient for r in data.train] if encoding else None,
            encoding=encoding,
            metadata_dropout=config.model.metadata_dropout,
            soft_targets=soft,
        )
        val_set = LesionDataset(
            cache_images(data.val, spec, self.progress),
            data.val_targets,
            spec,
            metadata=[r.patient for r in data.val] if encoding else None,
            encoding=encoding,
        )
        return train_set, val_set

    def _epoch_order(self, data: StageData, epoch_seed: int) -> list[int]:
        """This process's share of the epoch's (seeded) sample order."""
        config = self.config
        order = epoch_order(
            data.train_targets, len(self.classes), config.balance, config.seed, epoch_seed, data.train_sources
        )
        per_rank = len(order) // self.dist.world
        return order[self.dist.rank :: self.dist.world][:per_rank]

    def _optimiser(
        self, model: nn.Module, stage: StageConfig, steps: int, checkpoint: dict[str, Any] | None
    ) -> tuple[torch.optim.Optimizer, Any]:
        """AdamW over what the stage trains and its schedule; a resumed run's states and RNGs."""
        optimizer = torch.optim.AdamW(param_groups(model, stage, self.config.weight_decay))
        scheduler = scheduler_for(optimizer, stage, steps)
        if checkpoint:
            optimizer.load_state_dict(checkpoint["optimizer"])
            scheduler.load_state_dict(checkpoint["scheduler"])
            torch.set_rng_state(checkpoint["torch_rng"])
            np.random.set_state(checkpoint["numpy_rng"])
        return optimizer, scheduler

    def _run_stage(
        self, model: nn.Module, stage: StageConfig, state: RunState, checkpoint: dict[str, Any] | None
    ) -> None:
        config = self.config
        data: StageData = load_stage_data(config, stage, self.classes)
        train_set, val_set = self._stage_sets(stage, data)
        val = (val_set, [r.source for r in data.val])  # sources: for the per-source validation AUC
        criterion = criterion_for(config, data.train_targets, len(self.classes)).to(self.device)
        distill = (
            None
            if train_set.soft is None
            else Distillation(config.distill.weight, config.distill.temperature)
        )
        per_rank = len(self._epoch_order(data, 0))
        steps = max(1, per_rank // config.batch_size) if per_rank > config.batch_size else 1
        optimizer, scheduler = self._optimiser(model, stage, steps, checkpoint)
        train_model = self._parallel(model)
        for epoch in range(state.epoch + 1, stage.epochs):
            started = time.time()
            epoch_seed = config.seed * 1000 + state.stage_index * 100 + epoch
            train_set.epoch = epoch_seed
            order = self._epoch_order(data, epoch_seed)
            loader = _loader(train_set, order, config, epoch_seed)
            loss = train_one_epoch(
                train_model, loader, criterion, optimizer, scheduler, channels_last=config.channels_last,
                device=self.device, total=steps, desc=f"{stage.name} {epoch + 1}/{stage.epochs}",
                progress=self.progress, frozen=frozen_in_eval(model, stage), distill=distill,
            )  # fmt: skip
            if self.dist.main:
                seen = (len(order) * self.dist.world, time.time() - started)
                self._end_epoch(model, val, criterion, stage, state, epoch, loss, seen)
                self._save(model, optimizer, scheduler, state)
            self.dist.barrier()
            state = self._sync_state(state)
            if state.stale >= config.patience:
                log.info(
                    "early stopping %s after epoch %d (%d without improvement)",
                    stage.name,
                    epoch + 1,
                    state.stale,
                )
                break
        state.stage_done = True
        if self.dist.main:
            self._save(model, optimizer, scheduler, state)
        self.dist.barrier()

    def _parallel(self, model: nn.Module) -> nn.Module:
        """The model as the training step sees it: DDP-wrapped under torchrun."""
        if self.dist.world == 1:
            return model
        device_ids = None if self.device.type == "cpu" else [self.device.index]
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    def _sync_state(self, state: RunState) -> RunState:
        if self.dist.world == 1:
            return state
        box: list[Any] = [state.__dict__ if self.dist.main else None]
        dist.broadcast_object_list(box, src=0)
        return RunState(**box[0])

    def _end_epoch(
        self,
        model: nn.Module,
        val: tuple[LesionDataset, list[str]],
        criterion: nn.Module,
        stage: StageConfig,
        state: RunState,
        epoch: int,
        loss: float,
        seen: tuple[int, float],
    ) -> None:
        """Validate, log and keep the best weights; `val` is (the validation set, each image's
        source), `seen` (images trained on, seconds)."""
        (val_set, sources), (n_train, seconds) = val, seen
        loader = DataLoader(val_set, batch_size=self.config.batch_size * 2, num_workers=0)
        out = predict_outputs(
            model, loader, channels_last=self.config.channels_last, criterion=criterion, device=self.device
        )
        mal_idx = [self.classes.index(c) for c in self.malignant]
        metrics = quick_metrics(out.logits, out.targets, mal_idx, sources)
        row = {
            "stage": stage.name,
            "epoch": epoch + 1,
            "train_loss": loss,
            "val_loss": out.loss,
            **{f"val_{k}": v for k, v in metrics.items()},
            "seconds": round(seconds, 1),
            "train_images_per_second": round(n_train / max(seconds, 1e-9), 1),
        }
        state.epoch = epoch
        state.history.append(row)
        score = metrics.get(self.config.early_stopping_metric, -out.loss)
        if score > state.best:
            state.best, state.stale = score, 0
            torch.save(
                {k: v.cpu() for k, v in model.state_dict().items()},
                self.run_dir / f"stage-{stage.name}-best.pt",
            )
        else:
            state.stale += 1
        log.info(
            "%s epoch %d: %s",
            stage.name,
            epoch + 1,
            json.dumps({k: v for k, v in row.items() if k != "stage"}),
        )
        write_metrics_log(self.run_dir, state.history)
        if self.on_epoch is not None:
            self.on_epoch(len(state.history), row)
        write_curves(self.run_dir / "curves.png", state.history)
