"""Hyperparameter search: a 3-trial Optuna study on the tiny dataset, resumable, with its outputs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from dermalens.training.tune import load_search, tune
from training.conftest import write_config

pytestmark = pytest.mark.slow


def _tune_config(tmp_path: Path, tiny_dataset: Path) -> Path:
    base = write_config(tmp_path / "base.yaml", tiny_dataset, tmp_path / "runs")
    raw = yaml.safe_load(base.read_text())
    raw["stages"] = [{"name": "finetune", "epochs": 2, "lr": 0.001}]
    raw["search"] = {
        "stages.0.lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
        "balance.power": {"type": "float", "low": 0.0, "high": 1.0},
        "preprocessing.input_size": {"type": "categorical", "choices": [[32, 24], [40, 30]]},
    }
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_three_trial_study_writes_best_config_trials_and_plots(tmp_path, tiny_dataset):
    config = _tune_config(tmp_path, tiny_dataset)
    db = tmp_path / "study.db"
    result = tune(config, 3, study_db=db, out=tmp_path / "out")
    out = tmp_path / "out"
    with open(out / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and {r["state"] for r in rows} <= {"COMPLETE", "PRUNED"}
    base = yaml.safe_load(config.read_text())
    assert float(rows[0]["stages.0.lr"]) == pytest.approx(base["stages"][0]["lr"])  # trial 0: hand-set
    assert set(list(rows[0])[-3:]) == {"stages.0.lr", "balance.power", "preprocessing.input_size"}
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["stages"][0]["lr"] == pytest.approx(result["params"]["stages.0.lr"])
    assert best["preprocessing"]["input_size"] in ([32, 24], [40, 30])
    assert (out / "history.png").stat().st_size > 1000
    assert len(list((out / "trials").iterdir())) == 3  # each trial is an ordinary run folder
    again = tune(config, 3, study_db=db, out=out)  # resumed: the 3 trials are done, nothing reruns
    assert again["best_trial"] == result["best_trial"]
    assert len(list((out / "trials").iterdir())) == 3


def test_search_section_is_checked(tmp_path, tiny_dataset):
    base = write_config(tmp_path / "base.yaml", tiny_dataset, tmp_path / "runs")
    with pytest.raises(ValueError, match="no `search:` section"):
        load_search(base)
    raw = yaml.safe_load(base.read_text())
    raw["search"] = {"stages.0.lr": {"type": "float", "low": 1e-4}}
    base.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="needs high"):
        load_search(base)
