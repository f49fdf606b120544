"""Multi-source training: several datasets, each split on its own; Derm7pt refused; progressive resizing."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import lesion_like, save_image
from dermalens.training.config import BalanceConfig, load_config
from dermalens.training.data import epoch_order
from dermalens.training.prepare import EvaluationOnlyError, load_sources, targets_for
from training.conftest import write_config


def _source(root: Path, name: str, n: int, size: tuple[int, int], labels: list[str]) -> Path:
    rows = ["path,label,group,source"]
    for i in range(n):
        label = labels[i % len(labels)]
        image = lesion_like(i + 100 * len(name), size)
        if label == "mel":
            image = (image * 0.6).astype("uint8")
        save_image(root / f"{name}-{i}.png", image, "PNG")
        rows.append(f"{name}-{i}.png,{label},{name}-g{i // 2},{name}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


def test_sources_are_split_each_on_its_own_and_joined(tmp_path):
    a = _source(tmp_path / "a", "clinic-a", 32, (64, 48), ["nv", "mel"])
    b = _source(tmp_path / "b", "clinic-b", 24, (28, 28), ["nv", "mel", "scc"])
    cfg = write_config(tmp_path / "c.yaml", a, tmp_path / "runs")
    raw = yaml.safe_load(cfg.read_text())
    raw["data"]["sources"] = [
        {"path": str(a), "split_file": str(tmp_path / "split-a.json")},
        {"path": str(b), "split_file": str(tmp_path / "split-b.json")},
    ]
    cfg.write_text(yaml.safe_dump(raw))
    config = load_config(cfg)
    dataset, split = load_sources(config, config.data)
    assert (tmp_path / "split-a.json").is_file() and (tmp_path / "split-b.json").is_file()
    assert set(dataset.source_counts()) == {"clinic-a", "clinic-b"}
    assert len(split.assignments) == 56
    split.check_no_leak()
    for source in ("clinic-a", "clinic-b"):
        parts = Counter(split.assignments[r.image_id] for r in dataset.records if r.source == source)
        assert parts["train"] and parts["val"]


def test_derm7pt_is_refused_for_training(tmp_path):
    save_image(tmp_path / "images" / "NEL" / "Nel001.jpg", lesion_like(0))
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "meta.csv").write_text("diagnosis,derm\nclark nevus,NEL/Nel001.jpg\n")
    config = load_config(write_config(tmp_path / "c.yaml", tmp_path, tmp_path / "runs"))
    with pytest.raises(EvaluationOnlyError, match="evaluation only"):
        load_sources(config, config.data)


def test_source_balanced_sampling():
    targets = [0, 1] * 500
    sources = ["big"] * 900 + ["small"] * 100
    plain = Counter(sources[i] for i in epoch_order(targets, 2, BalanceConfig(method="none"), 0, 0, sources))
    assert plain == {"big": 900, "small": 100}
    balanced = epoch_order(
        targets, 2, BalanceConfig(method="none", source_power=1.0, epoch_size=400), 0, 0, sources
    )
    assert len(balanced) == 400
    share = Counter(sources[i] for i in balanced)["small"] / 400
    assert 0.4 < share < 0.6  # power 1: sources drawn equally
    half = Counter(
        sources[i] for i in epoch_order(targets, 2, BalanceConfig(source_power=0.5), 0, 0, sources)
    )
    assert 0.18 < half["small"] / 1000 < 0.32  # ∝ sqrt(size): 1/(1+3) = 0.25


@pytest.mark.slow
def test_two_source_run_with_progressive_resizing_builds_an_artifact(tmp_path):
    import subprocess
    import sys

    a = _source(tmp_path / "a", "clinic-a", 32, (64, 48), ["nv", "mel"])
    b = _source(tmp_path / "b", "clinic-b", 24, (28, 28), ["nv", "mel", "scc"])
    cfg = write_config(
        tmp_path / "c.yaml",
        a,
        tmp_path / "runs",
        stages=[
            {"name": "low", "epochs": 1, "lr": 0.002, "input_size": [24, 18]},
            {"name": "full", "epochs": 1, "lr": 0.001},
        ],
        balance={"method": "class_weights", "power": 0.5, "source_power": 0.5, "epoch_size": 40},
        augment={"rescale": 0.5, "jpeg": 0.5, "blur": 0.3, "rim": 0.3, "ruler": 0.3, "zoom_out": 0.3},
    )
    raw = yaml.safe_load(cfg.read_text())
    raw["data"]["sources"] = [{"path": str(a)}, {"path": str(b)}]
    raw["preprocessing"]["working_size"] = [30, 22]
    cfg.write_text(yaml.safe_dump(raw))
    done = subprocess.run(
        [sys.executable, "-m", "dermalens.cli", "train", "--no-progress", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "runs" / "tiny"
    history = json.loads((run / "metrics.json").read_text())
    assert [r["stage"] for r in history] == ["low", "full"]
    assert history[0]["train_images_per_second"] > 0
    meta = json.loads((run / "artifact" / "artifact.json").read_text())
    assert meta["preprocessing"]["input_size"] == [32, 24]  # the artifact keeps the run's size
    assert meta["preprocessing"]["working_size"] == [30, 22]
    assert set(meta["data"]["sources"]) == {"clinic-a", "clinic-b"}
    assert meta["classes"] == targets_for("dx")[0]  # SCC trained as akiec: still the 7 classes
