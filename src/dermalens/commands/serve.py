"""`dermalens serve`: the web app and REST API on uvicorn.

CLI options override ``DERMALENS_*`` environment variables, which override defaults
(see `ServerSettings`). Heavy imports happen inside `run_serve`, so `dermalens --help`
stays fast.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = sub.add_parser(
        "serve",
        help="web app + REST API (http://127.0.0.1:8000, OpenAPI at /docs)",
        description="Serve the web page and the REST API on the bundled model or the given artifacts. "
        "Settings may also come from DERMALENS_* environment variables.",
    )
    serve.add_argument(
        "--model",
        nargs="+",
        action="extend",
        type=Path,
        metavar="M",
        help="artifact folder(s); several make an ensemble (default: the bundled model)",
    )
    serve.add_argument("--host", help="interface to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, help="TCP port (default 8000)")
    serve.add_argument("--tta", type=int, help="test-time augmentation views by default, 1-8 (default 1)")
    serve.add_argument(
        "--coverage", type=float, help="prediction sets' coverage (default: the model's, 0.90)"
    )
    _log_options(serve)
    serve.add_argument("--max-files", type=int, help="most images per request (default 20)")
    serve.add_argument("--max-bytes", type=int, help="most bytes per request (default 20 MiB)")
    serve.add_argument(
        "--workers",
        type=int,
        help="server processes (default 1), each with its own model and cores/N ONNX Runtime threads",
    )
    serve.add_argument(
        "--threads", type=int, help="ONNX Runtime threads per process (default: cores/workers)"
    )
    serve.add_argument(
        "--concurrent-batches", type=int, help="inference batches one process runs at once (default 1)"
    )
    serve.set_defaults(func=run_serve)
    _migrate_command(sub)


def _log_options(serve: argparse.ArgumentParser) -> None:
    group = serve.add_argument_group("the prediction log and stored images")
    group.add_argument(
        "--log-db",
        metavar="PATH",
        help="SQLite prediction log (default ~/.local/share/dermalens/predictions.db; 'off' disables it)",
    )
    group.add_argument(
        "--log-url",
        metavar="URL",
        help="prediction log in a database instead: postgresql://user:password@host/db (shared by several "
        "servers) or sqlite:///path; replaces --log-db",
    )
    group.add_argument(
        "--store-images",
        type=Path,
        metavar="DIR",
        help="keep uploaded images in DIR (by SHA-256); off by default",
    )


def _migrate_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    migrate = sub.add_parser(
        "migrate-log",
        help="upgrade a prediction log to this version's schema",
        description="Upgrade the prediction log (SQLite file or database URL) to the schema this dermalens "
        "reads. Servers refuse a log of another version; back it up before migrating.",
    )
    where = migrate.add_mutually_exclusive_group()
    where.add_argument(
        "--log-db", type=Path, metavar="PATH", help="SQLite log (default: the server's default)"
    )
    where.add_argument("--log-url", metavar="URL", help="database URL (postgresql://... or sqlite:///...)")
    migrate.set_defaults(func=run_migrate_log)


def settings_from_args(args: argparse.Namespace) -> Any:
    """`ServerSettings` from the environment, with every given CLI option on top."""
    from dermalens.server.settings import ServerSettings

    given = {
        "models": args.model,
        "host": args.host,
        "port": args.port,
        "tta": args.tta,
        "coverage": args.coverage,
        "log_db": args.log_db,
        "log_url": args.log_url,
        "store_images": args.store_images,
        "max_files": args.max_files,
        "max_bytes": args.max_bytes,
        "workers": args.workers,
        "threads": args.threads,
        "concurrent_batches": args.concurrent_batches,
    }
    return ServerSettings(**{k: v for k, v in given.items() if v is not None})


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from dermalens.inference.predictor import Classifier
    from dermalens.server.app import create_app
    from dermalens.server.log import LogSchemaError, LogUnavailable, PredictionLog
    from dermalens.server.protocol import uvicorn_options

    try:
        settings = settings_from_args(args)
    except ValidationError as err:
        raise ValueError(f"invalid server settings: {err}") from None
    # Open the model and the log before uvicorn starts: a missing model, a database that is down or a
    # log of another schema version is a one-line error, not a traceback per worker.
    classifier = Classifier.load(
        settings.model_arg(), tta=settings.tta, threads=settings.ort_threads(), coverage=settings.coverage
    )
    if (target := settings.log_target()) is not None:
        try:
            PredictionLog(target).close()
        except (LogUnavailable, LogSchemaError) as err:
            raise ValueError(str(err)) from None
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": "info",
        "timeout_graceful_shutdown": 10,
        **uvicorn_options(),
    }
    if settings.workers == 1:
        uvicorn.run(create_app(settings, classifier), **options)
        return 0
    # Several processes: uvicorn's own supervisor starts each worker, which builds its app from the
    # environment (the same validated settings, exported), so every process serves the same thing.
    del classifier
    os.environ.update(settings.to_environment())
    uvicorn.run(
        "dermalens.server.app:app_from_environment", factory=True, workers=settings.workers, **options
    )
    return 0


def run_migrate_log(args: argparse.Namespace) -> int:
    from dermalens.server.log import LogSchemaError, LogUnavailable, describe, migrate
    from dermalens.server.settings import default_log_db

    target = args.log_url or args.log_db or default_log_db()
    try:
        before, after = migrate(target)
    except (LogUnavailable, LogSchemaError) as err:
        raise ValueError(str(err)) from None
    if before is None:
        print(f"{describe(target)}: new log, schema version {after}")
    elif before == after:
        print(f"{describe(target)}: already at schema version {after}")
    else:
        print(f"{describe(target)}: schema version {before} → {after}")
    return 0
