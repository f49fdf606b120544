"""Hyperparameter search with Optuna: `dermalens tune --config C --trials N [--study-db DB]`.

- The search space lives in the YAML config, under ``search:`` (dotted config keys, as for
  ``--set``), never in code::

      search:
        stages.1.lr: {type: float, low: 1.0e-4, high: 1.0e-3, log: true}
        balance.power: {type: float, low: 0.0, high: 1.0}
        preprocessing.input_size: {type: categorical, choices: [[160, 120], [224, 168]]}

- Each trial is an ordinary training run (`Trainer.fit`, the one training loop), whose
  per-epoch validation metric (the config's ``early_stopping_metric``) is reported to Optuna;
  the median pruner stops trials that fall below the median of earlier trials at the same epoch.
- Trial 0 is the hand-set recipe: the base config's own values of the searched keys (where they
  lie in the space), so the study measures what the search found against it under the same budget.
- TPE sampling, seeded by the config's seed. The study is stored in SQLite, so a killed search
  resumes: trials left "running" by the kill are marked failed and the remaining ones run.
- Written to ``--out``: ``best.yaml`` (the best trial's resolved config, trainable as it is),
  ``trials.csv``, ``history.png`` and ``importances.png``.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

import yaml

from dermalens.training.config import (
    TrainConfig,
    config_from_data,
    get_dotted,
    read_config_yaml,
    save_config,
)

log = logging.getLogger(__name__)

KINDS = ("float", "int", "categorical")


def load_search(path: str | Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(the config without its ``search`` section, the search space); errors say what is expected."""
    raw = read_config_yaml(Path(path))
    space = raw.pop("search", None)
    if not isinstance(space, dict) or not space:
        raise ValueError(
            f"{path}: no `search:` section; give dotted config keys with {{type: {'|'.join(KINDS)}, ...}}"
        )
    for key, spec in space.items():
        if not isinstance(spec, dict) or spec.get("type") not in KINDS:
            raise ValueError(f"{path}: search.{key}: give type: one of {', '.join(KINDS)}")
        needs = ("choices",) if spec["type"] == "categorical" else ("low", "high")
        missing = [n for n in needs if n not in spec]
        if missing:
            raise ValueError(f"{path}: search.{key} ({spec['type']}) needs {', '.join(missing)}")
    config_from_data(raw)  # the base config itself must be valid before any trial runs
    return raw, space


def suggest(trial: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One value per dotted key, drawn by the trial's sampler."""
    values: dict[str, Any] = {}
    for key, spec in space.items():
        if spec["type"] == "float":
            values[key] = trial.suggest_float(key, spec["low"], spec["high"], log=bool(spec.get("log")))
        elif spec["type"] == "int":
            values[key] = trial.suggest_int(key, spec["low"], spec["high"], log=bool(spec.get("log")))
        else:  # categorical: Optuna stores scalars, so lists (e.g. input sizes) travel as their index
            choices = spec["choices"]
            index = trial.suggest_categorical(key, list(range(len(choices))))
            values[key] = choices[index]
    return values


def hand_set(base: dict[str, Any], space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The base config's value of each searched key, as Optuna stores it (categoricals by index);
    keys whose value lies outside the space are left for the sampler."""
    values: dict[str, Any] = {}
    for key, spec in space.items():
        try:
            node = get_dotted(base, key)
        except (KeyError, IndexError, ValueError, TypeError):
            continue
        if spec["type"] == "categorical":
            if node in spec["choices"]:
                values[key] = spec["choices"].index(node)
        elif isinstance(node, int | float) and spec["low"] <= node <= spec["high"]:
            values[key] = node
    return values


def trial_config(raw: dict[str, Any], values: dict[str, Any], number: int, out_dir: Path) -> TrainConfig:
    """The base config with the trial's values set, in its own run folder below `out_dir`."""
    overrides = [
        f"{key}={yaml.safe_dump(value, default_flow_style=True).strip()}" for key, value in values.items()
    ]
    config = config_from_data(raw, overrides)
    config.name = f"{config.name}-trial{number:03d}"
    config.out_dir = str(out_dir / "trials")
    return config


def tune(
    config_path: str | Path,
    trials: int,
    *,
    study_db: str | Path | None = None,
    out: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run (or resume) a study of `trials` trials; return the best trial's value and parameters."""
    import optuna
    from optuna.trial import TrialState

    from dermalens.training.trainer import Trainer

    raw, space = load_search(config_path)
    base = config_from_data(raw)
    out_dir = Path(out) if out is not None else Path(base.out_dir) / f"{base.name}-tune"
    out_dir.mkdir(parents=True, exist_ok=True)
    db = Path(study_db) if study_db is not None else out_dir / "study.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    metric = base.early_stopping_metric
    study = optuna.create_study(
        study_name=base.name,
        storage=f"sqlite:///{db}",
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=base.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )
    if not study.trials:
        study.enqueue_trial(hand_set(base.to_dict(), space), user_attrs={"hand_set": True})
    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(stale.number, state=TrialState.FAIL)  # killed with the last search: rerun its slot
        log.info("trial %d was interrupted; marked failed", stale.number)

    def objective(trial: Any) -> float:
        config = trial_config(raw, suggest(trial, space), trial.number, out_dir)
        trial.set_user_attr("run_dir", str(config.run_dir()))
        best = -math.inf

        def report(step: int, row: dict[str, Any]) -> None:
            nonlocal best
            value = float(row.get(f"val_{metric}", float("nan")))
            best = max(best, value) if value == value else best
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"{metric} {value:.4f} at epoch {step}: below the median")

        Trainer(config, progress=progress, on_epoch=report).fit()
        return best

    done = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    remaining = max(0, trials - len(done))
    if remaining:
        study.optimize(objective, n_trials=remaining, catch=())
    return _write_results(study, raw, space, out_dir)


def _write_results(
    study: Any, raw: dict[str, Any], space: dict[str, dict[str, Any]], out_dir: Path
) -> dict[str, Any]:
    from optuna.trial import TrialState

    completed = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if not completed:
        raise ValueError("no trial completed: nothing to report (see the log of each trial)")
    best = study.best_trial
    values = {key: _decode(space[key], best.params[key]) for key in space}
    config = trial_config(raw, values, best.number, out_dir)
    config.name, config.out_dir = (
        str(raw.get("name", config.name)) + "-tuned",
        str(raw.get("out_dir", "runs")),
    )
    save_config(config, out_dir / "best.yaml")
    with open(out_dir / "trials.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["number", "state", "value", "epochs_reported", *space])
        for t in study.trials:
            params = [_decode(space[k], t.params[k]) if k in t.params else "" for k in space]
            writer.writerow([t.number, t.state.name, t.value, len(t.intermediate_values), *params])
    _plots(study, out_dir, len(completed))
    return {"best_value": best.value, "best_trial": best.number, "params": values, "out": str(out_dir)}


def _decode(spec: dict[str, Any], stored: Any) -> Any:
    return spec["choices"][stored] if spec["type"] == "categorical" else stored


def _plots(study: Any, out_dir: Path, completed: int) -> None:
    """Optimisation history, and parameter importances (fANOVA needs two completed trials)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    ovm.plot_optimization_history(study)
    plt.gcf().set_size_inches(7, 4)
    plt.tight_layout()
    plt.savefig(out_dir / "history.png", dpi=100)
    plt.close("all")
    if completed >= 2:
        try:
            ovm.plot_param_importances(study)
            plt.gcf().set_size_inches(7, 4)
            plt.tight_layout()
            plt.savefig(out_dir / "importances.png", dpi=100)
        except (ValueError, RuntimeError) as err:  # e.g. every trial scored the same
            log.warning("parameter importances not plotted: %s", err)
        plt.close("all")
