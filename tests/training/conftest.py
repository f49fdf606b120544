"""A tiny generated dataset and config, so training tests run in seconds without HAM10000."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import lesion_like, save_image

LABELS = ["nv", "mel", "bkl", "bcc"]


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tinydata")
    rows = ["path,label,group"]
    for i in range(48):
        label = LABELS[i % len(LABELS)]
        image = lesion_like(i, (64, 48))
        if label == "mel":
            image = (image * 0.6).astype("uint8")  # something learnable
        save_image(root / f"{i}.png", image, "PNG")
        rows.append(f"{i}.png,{label},g{i // 2}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


def write_config(path: Path, data: Path, out_dir: Path, **extra: object) -> Path:
    config = {
        "name": "tiny",
        "seed": 1,
        "out_dir": str(out_dir),
        "data": {"path": str(data), "dedup": False, "val": 0.25, "test": 0.0},
        "preprocessing": {"input_size": [32, 24]},
        "stages": [
            {"name": "warmup", "epochs": 1, "lr": 0.002, "freeze_backbone": True},
            {"name": "finetune", "epochs": 3, "lr": 0.001, "warmup_epochs": 0.5},
        ],
        "batch_size": 8,
        "workers": 0,
        "patience": 10,
        "target_sensitivity": 0.5,
    }
    config.update(extra)
    path.write_text(yaml.safe_dump(config))
    return path
