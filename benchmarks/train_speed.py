"""Training throughput (images/s) of a config on this machine, and the projected wall time of a run.

    python benchmarks/train_speed.py [--config configs/ham10000.yaml] [--steps 12] [--stage -1]

Times real optimisation steps as the trainer runs them: the stage's frozen parts and parameter
groups (training/optim.py), augmented batches from the same dataset code through a DataLoader with
the config's workers, its input size (the stage's, with progressive resizing), batch size and
channels_last setting. Images are random pixels of the input size (the cache holds that size).
Needs the `train` extra.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(ROOT / "configs" / "ham10000.yaml"))
    parser.add_argument("--steps", type=int, default=12, help="timed steps after 2 warm-up steps")
    parser.add_argument("--stage", type=int, default=-1, help="which stage's settings (default the last)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    from torch.utils.data import DataLoader

    from dermalens.models.factory import create_model
    from dermalens.training.config import load_config
    from dermalens.training.data import LesionDataset
    from dermalens.training.loop import WeightedLoss
    from dermalens.training.optim import frozen_in_eval, param_groups
    from dermalens.training.prepare import stage_preprocessing

    config = load_config(args.config, args.overrides)
    stage = config.stages[args.stage]
    spec = stage_preprocessing(config, stage)
    width, height = spec.input_size
    n = config.batch_size * (args.steps + 2)
    images = np.random.default_rng(0).integers(0, 255, (n, height, width, 3), dtype=np.uint8)
    dataset = LesionDataset(images, [i % 7 for i in range(n)], spec, config.augment)
    loader = DataLoader(dataset, batch_size=config.batch_size, num_workers=config.workers, drop_last=True)
    model = create_model(config.model.architecture, num_classes=7, drop_rate=config.model.drop_rate).train()
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(param_groups(model, stage, config.weight_decay))
    frozen = frozen_in_eval(model, stage)
    criterion = WeightedLoss(label_smoothing=config.label_smoothing)

    started = 0.0
    for step, (batch, _, targets, _) in enumerate(loader):
        if step == 2:  # after the warm-up steps (worker start, first allocations)
            started = time.perf_counter()
        if frozen is not None:
            frozen.eval()
        if config.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        loss = criterion(model(batch), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    per_second = config.batch_size * args.steps / (time.perf_counter() - started)
    draws = sum(
        s.epochs * (config.balance.epoch_size or 7153) for s in config.stages
    )  # 7,153: HAM10000's training split
    print(
        f"config: {args.config} ({config.model.architecture}, input {width}x{height}, batch {config.batch_size}, "
        f"frozen: {'backbone' if stage.freeze_backbone else f'stem + {stage.freeze_blocks} blocks'}, "
        f"workers {config.workers}, torch threads {torch.get_num_threads()})"
    )
    print(f"training throughput (augmentation + forward + backward + AdamW): {per_second:.1f} images/s")
    print(
        f"projected training time ({draws} draws over all stages, before early stopping): "
        f"{draws / per_second / 60:.0f} min"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
