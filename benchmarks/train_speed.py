"""Training throughput (images/s) of a config on this machine, and the projected wall time of a full run.

    python benchmarks/train_speed.py [--config configs/ham10000.yaml] [--steps 6]

Times real optimisation steps (forward, backward, AdamW) on augmented batches made by
the same dataset code as training, with the config's model, input size, batch size and
channels_last setting. Needs the `train` extra.
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
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()

    from dermalens.models.factory import create_model
    from dermalens.training.config import load_config
    from dermalens.training.data import LesionDataset
    from dermalens.training.loop import WeightedLoss

    config = load_config(args.config)
    width, height = config.preprocessing.input_size
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (config.batch_size, height, width, 3), dtype=np.uint8)
    dataset = LesionDataset(
        images, [i % 7 for i in range(config.batch_size)], config.preprocessing, config.augment
    )
    model = create_model(config.model.architecture, num_classes=7).train()
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    criterion = WeightedLoss(label_smoothing=config.label_smoothing)

    def step() -> float:
        started = time.perf_counter()
        batch = torch.stack([dataset[i][0] for i in range(len(dataset))])
        if config.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        loss = criterion(model(batch), torch.tensor(dataset.targets))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return time.perf_counter() - started

    step()  # warm-up
    seconds = [step() for _ in range(args.steps)]
    per_second = config.batch_size / float(np.median(seconds))
    epochs = sum(s.epochs for s in config.stages)
    train_images = 7153  # HAM10000 training split of configs/splits/ham10000-seed0.json
    print(
        f"config: {args.config} ({config.model.architecture}, input {width}x{height}, batch {config.batch_size}, "
        f"torch threads {torch.get_num_threads()})"
    )
    print(f"training throughput (augmentation + forward + backward + AdamW): {per_second:.1f} images/s")
    print(
        f"projected full run ({epochs} epochs x {train_images} images, before early stopping): "
        f"{epochs * train_images / per_second / 60:.0f} min"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
