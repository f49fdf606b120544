"""Fixtures of the evaluation tests: a tiny labelled dataset (with a missing and a corrupt image),
a split file, one evaluation run and one baseline artifact, built once per session."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import lesion_like, save_image
from dermalens.core.taxonomy import DX_CODES
from dermalens.data.splits import Split

PER_CLASS = 6
#: per class: 3 train, 1 val, 2 test images
SPLIT_PATTERN = ("train", "train", "train", "val", "test", "test")
AGES = ("22", "35", "50", "65", "80", "")
SEXES = ("male", "female", "")
SITES = ("back", "face", "lower extremity")
MISSING = "images/missing.jpg"
CORRUPT = "images/corrupt.jpg"


def tinted_lesion(index: int, code_index: int) -> np.ndarray:
    """A synthetic lesion whose colour depends on its class, so a colour baseline can learn something."""
    image = lesion_like(1000 + index, size=(96, 72)).astype(np.int16)
    tint = np.array([(code_index * 37) % 60 - 30, (code_index * 53) % 60 - 30, (code_index * 23) % 60 - 30])
    return np.clip(image + tint, 0, 255).astype(np.uint8)


def make_dataset(root: Path, labels: tuple[str, ...] = DX_CODES, per_class: int = PER_CLASS) -> Path:
    """A generic CSV dataset (path,label,group,age,sex,site) + one missing and one corrupt image."""
    rows = []
    for c, label in enumerate(labels):
        for k in range(per_class):
            index = c * per_class + k
            rel = f"images/{label}_{k}.png"
            save_image(root / rel, tinted_lesion(index, c))
            rows.append(
                {
                    "path": rel,
                    "label": label,
                    "group": f"lesion{index // 2}",
                    "age": AGES[index % len(AGES)],
                    "sex": SEXES[index % len(SEXES)],
                    "site": SITES[index % len(SITES)],
                }
            )
    good = root / "images" / f"{labels[0]}_0.png"
    jpeg = root / "tmp.jpg"
    from PIL import Image

    Image.open(good).convert("RGB").save(jpeg, quality=90)
    data = jpeg.read_bytes()
    (root / CORRUPT).write_bytes(data[: len(data) // 3])  # truncated JPEG: header fine, data cut
    jpeg.unlink()
    rows.append({"path": CORRUPT, "label": labels[-1], "group": "broken", "age": "", "sex": "", "site": ""})
    rows.append({"path": MISSING, "label": labels[0], "group": "gone", "age": "", "sex": "", "site": ""})
    path = root / "labels.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def make_split(path: Path, labels: tuple[str, ...] = DX_CODES, per_class: int = PER_CLASS) -> Path:
    assignments = {
        f"images/{label}_{k}.png": SPLIT_PATTERN[k % len(SPLIT_PATTERN)]
        for label in labels
        for k in range(per_class)
    }
    assignments[CORRUPT] = "test"
    assignments[MISSING] = "test"
    Split(assignments, seed=0).save(path)
    return path


@pytest.fixture(scope="session")
def dataset_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("evaldata"))


@pytest.fixture(scope="session")
def split_file(dataset_csv: Path) -> Path:
    return make_split(dataset_csv.parent / "split.json")


@pytest.fixture(scope="session")
def evaluation(tiny_artifact: Path, dataset_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One full evaluation of the tiny artifact on the whole tiny dataset (files in the returned folder)."""
    from dermalens.evaluation.evaluate import evaluate

    out = tmp_path_factory.mktemp("evaluation")
    evaluate([tiny_artifact], dataset_csv, out, n_boot=60)
    return out


def baseline_config(name: str, data: Path, split_file: Path, out: Path, **extra: Any) -> dict[str, Any]:
    """A baseline config on the tiny dataset at 64×48 (`extra`: more top-level keys, e.g. ``model``)."""
    return {
        "name": name,
        "data": str(data),
        "split_file": str(split_file),
        "seed": 0,
        "out": str(out),
        "preprocessing": {"input_size": [64, 48]},
        **extra,
    }


@pytest.fixture(scope="session")
def baseline_artifact(dataset_csv: Path, split_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dermalens.training.baselines import train_baseline

    root = tmp_path_factory.mktemp("baseline")
    return train_baseline(baseline_config("tiny-baseline", dataset_csv, split_file, root / "runs"))
