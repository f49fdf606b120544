"""`dermalens train --config FILE [--set key=value ...] [--resume RUN_DIR] [--stage NAME]`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dermalens.commands import command_line


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    _register_train(sub)
    _register_distill_cache(sub)

    tune = sub.add_parser(
        "tune", help="hyperparameter search (Optuna: TPE, median pruning, SQLite study that resumes)"
    )
    tune.add_argument("--config", type=Path, required=True, help="YAML config with a `search:` section")
    tune.add_argument("--trials", type=int, required=True, help="trials in the study (resumed ones count)")
    tune.add_argument("--study-db", type=Path, help="SQLite file of the study (default OUT/study.db)")
    tune.add_argument("--out", type=Path, help="folder for best.yaml, trials.csv and plots")
    tune.add_argument("--no-progress", action="store_true")
    tune.set_defaults(func=run_tune)


def _register_train(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    train = sub.add_parser("train", help="train a model from a YAML config; writes a model artifact")
    train.add_argument("--config", type=Path, help="YAML config (see configs/)")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set stages.1.epochs=5 (repeatable)",
    )
    train.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="continue a killed run from its last epoch"
    )
    train.add_argument("--stage", help="re-run this stage only (from the previous stage's best weights)")
    train.add_argument("--out", type=Path, help="artifact folder (default RUN_DIR/artifact)")
    train.add_argument("--no-progress", action="store_true")
    train.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config (bases and --set applied) as YAML, and train nothing",
    )
    train.add_argument(
        "--finalize",
        type=Path,
        metavar="RUN_DIR",
        help="only build the artifact of a finished run (calibration, OOD gate, export)",
    )
    train.set_defaults(func=run_train)


def _register_distill_cache(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cache = sub.add_parser(
        "distill-cache",
        help="compute a config's distillation teachers' logits on its training images, resumably "
        "(a slow teacher runs in the background before training; `train` then reuses them)",
    )
    cache.add_argument("--config", type=Path, required=True, help="YAML config with a distill.teacher")
    cache.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    cache.set_defaults(func=run_distill_cache)


def run_distill_cache(args: argparse.Namespace) -> int:
    from dermalens.training.config import load_config
    from dermalens.training.distill import teacher_logits
    from dermalens.training.prepare import load_stage_data, targets_for

    config = load_config(args.config, args.overrides)
    if not config.distill.teachers:
        raise ValueError(f"{args.config}: distill.teacher is not set; nothing to cache")
    classes, _ = targets_for(config.model.head)
    data = load_stage_data(config, config.stages[0], classes)
    chosen = [r for r in data.train if r.source in config.distill.sources]
    for teacher in config.distill.teachers:

        def report(done: int, total: int, name: str = teacher) -> None:
            print(f"{name}: {done}/{total}", flush=True)

        teacher_logits(teacher, chosen, classes, config.teacher_cache_dir(), on_chunk=report)
        print(f"{teacher}: {len(chosen)} training images cached in {config.teacher_cache_dir()}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from dermalens.training.config import load_config

    config_path = args.config
    run_dir = args.resume or args.finalize
    if run_dir is not None:
        config_path = run_dir / "config.yaml"
        if not config_path.is_file():
            raise FileNotFoundError(f"{run_dir}: no config.yaml; is this a dermalens run directory?")
    config = load_config(config_path, args.overrides)
    if run_dir is not None:  # the run may have been moved since it was written
        config.out_dir, config.name = str(run_dir.parent), run_dir.name
    if args.print_config:
        import yaml

        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return 0
    from dermalens.artifact.kinds import infer_kind, model_kind

    if not model_kind(infer_kind(config.model.architecture)).network:  # closed form, no epochs
        from dermalens.training.baselines import train_baseline

        print(f"baseline artifact: {train_baseline(config, out=args.out)}")
        return 0
    from dermalens.training.finalize import build_artifact
    from dermalens.training.trainer import Trainer, init_distributed

    started = time.time()
    if config.model.fusion == "late":  # no network training: see training/late_fusion.py
        from dermalens.training.config import save_config
        from dermalens.training.late_fusion import fit_late_fusion

        save_config(config, config.run_dir() / "config.yaml")
        model, report = fit_late_fusion(config, progress=not args.no_progress)
        out = args.out or config.run_dir() / "artifact"
        command = command_line()
        build_artifact(model, config, out, command=command, wall_seconds=time.time() - started, notes=report)
        print(f"model artifact: {out} (late fusion, metadata weight {report['weight']})")
        return 0
    dist_info = init_distributed()
    trainer = Trainer(config, dist_info, progress=not args.no_progress)
    if args.finalize is not None:
        model = trainer.load_final()
    else:
        model = trainer.fit(resume=args.resume is not None, only_stage=args.stage)
    if dist_info.main:
        out = args.out or trainer.run_dir / "artifact"
        command = command_line()
        build_artifact(model, config, out, command=command, wall_seconds=time.time() - started)
        print(f"model artifact: {out}")
    return 0


def run_tune(args: argparse.Namespace) -> int:
    from dermalens.training.tune import tune

    if args.trials < 1:
        raise ValueError(f"--trials {args.trials}: give at least 1")
    result = tune(
        args.config, args.trials, study_db=args.study_db, out=args.out, progress=not args.no_progress
    )
    print(f"best trial {result['best_trial']}: {result['best_value']:.4f} with {result['params']}")
    print(
        f"best config: {result['out']}/best.yaml (train it: dermalens train --config {result['out']}/best.yaml)"
    )
    return 0
