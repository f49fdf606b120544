"""End-to-end training runs on a tiny generated dataset: artifact, resume after a kill, DDP, stages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dermalens import Classifier
from training.conftest import write_config

pytestmark = pytest.mark.slow
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _train(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "dermalens.cli", "train", "--no-progress", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV, check=False)


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "last.pt", map_location="cpu", weights_only=False)["model"]


def test_train_writes_loadable_artifact_and_logs(tiny_dataset, tmp_path):
    config = write_config(tmp_path / "c.yaml", tiny_dataset, tmp_path / "runs")
    done = _train("--config", str(config))
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "runs" / "tiny"
    history = json.loads((run / "metrics.json").read_text())
    assert [row["stage"] for row in history] == ["warmup", "finetune", "finetune", "finetune"]
    assert (run / "curves.png").stat().st_size > 1000 and (run / "metrics.csv").is_file()
    assert (run / "config.yaml").is_file()
    clf = Classifier.load(run / "artifact")
    assert clf.meta.training["config"]["seed"] == 1 and clf.meta.temperature > 0
    assert clf.meta.ood_threshold is not None
    decision = clf.meta.metrics["decision"]  # the diagnosis rule, fitted on validation at the end
    assert decision["source"] == "the validation split" and len(clf.meta.decision_bias) == 7
    assert "τ maximises" in clf.meta.class_bias_rule
    result = clf.predict(tiny_dataset.parent / "0.png")
    assert abs(sum(result.probabilities.values()) - 1) < 1e-6


def test_resume_after_kill_matches_uninterrupted(tiny_dataset, tmp_path):
    stages = [
        {"name": "warmup", "epochs": 1, "lr": 0.002, "freeze_backbone": True},
        {"name": "finetune", "epochs": 4, "lr": 0.001},
    ]
    straight = write_config(tmp_path / "a.yaml", tiny_dataset, tmp_path / "a", stages=stages)
    assert _train("--config", str(straight)).returncode == 0
    killed = write_config(tmp_path / "b.yaml", tiny_dataset, tmp_path / "b", stages=stages)
    run = tmp_path / "b" / "tiny"
    cmd = [sys.executable, "-m", "dermalens.cli", "train", "--no-progress", "--config", str(killed)]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:  # kill once the second fine-tuning epoch has been checkpointed
        metrics = run / "metrics.json"
        if metrics.is_file() and len(json.loads(metrics.read_text() or "[]")) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(json.loads((run / "metrics.json").read_text())) < 5, "the run finished before it was killed"
    resumed = _train("--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _final_weights(tmp_path / "a" / "tiny"), _final_weights(run)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_rerun_one_stage_and_unknown_stage(tiny_dataset, tmp_path):
    config = write_config(tmp_path / "c.yaml", tiny_dataset, tmp_path / "runs")
    assert _train("--config", str(config)).returncode == 0
    again = _train("--config", str(config), "--stage", "finetune")
    assert again.returncode == 0, again.stderr[-3000:]
    bad = _train("--config", str(config), "--stage", "nope")
    assert bad.returncode == 2 and "stages in this config: warmup, finetune" in bad.stderr


def test_curriculum_stage_with_its_own_data(tiny_dataset, tmp_path):
    stages = [
        {"name": "general", "epochs": 1, "lr": 0.002, "freeze_backbone": True},
        {
            "name": "specialise",
            "epochs": 1,
            "lr": 0.0005,
            "data": {"path": str(tiny_dataset), "dedup": False, "val": 0.25, "test": 0.0, "limit": 16},
        },
    ]
    config = write_config(tmp_path / "c.yaml", tiny_dataset, tmp_path / "runs", stages=stages)
    done = _train("--config", str(config))
    assert done.returncode == 0, done.stderr[-3000:]
    history = json.loads((tmp_path / "runs" / "tiny" / "metrics.json").read_text())
    assert [row["stage"] for row in history] == ["general", "specialise"]


def test_ddp_two_cpu_processes(tiny_dataset, tmp_path):
    config = write_config(tmp_path / "c.yaml", tiny_dataset, tmp_path / "runs")
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "dermalens.cli",
        "train",
        "--no-progress",
        "--config",
        str(config),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    history = json.loads((tmp_path / "runs" / "tiny" / "metrics.json").read_text())
    assert len(history) == 4
    assert Classifier.load(tmp_path / "runs" / "tiny" / "artifact").classes
