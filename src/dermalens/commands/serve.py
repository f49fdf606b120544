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
    _security_options(serve)
    serve.add_argument("--max-files", type=int, help="most images per request (default 20)")
    serve.add_argument("--max-bytes", type=int, help="most bytes per request (default 20 MiB)")
    serve.add_argument(
        "--workers",
        type=int,
        help="server processes (default 1), each with its own model and cores/N inference threads",
    )
    serve.add_argument("--threads", type=int, help="inference threads per process (default: cores/workers)")
    serve.add_argument(
        "--concurrent-batches",
        type=int,
        help="inference batches one process runs at once (default: one per inference thread)",
    )
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="uvicorn's access log, a line per HTTP request on stderr (default off: predictions are in the "
        "prediction log)",
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


def _security_options(serve: argparse.ArgumentParser) -> None:
    group = serve.add_argument_group(
        "access and data protection",
        "Once a token exists (dermalens token create), every request needs one; a host other than "
        "loopback refuses to start without one unless --no-auth is given.",
    )
    group.add_argument(
        "--no-auth",
        action="store_const",
        const=True,
        help="serve without tokens on purpose, even on a network (warned on every start)",
    )
    for flag, kind, metavar, text in _SECURITY_VALUES:
        group.add_argument(flag, type=kind, metavar=metavar, help=text)


#: The valued options of `_security_options`: flag, type, metavar, help.
_SECURITY_VALUES: tuple[tuple[str, type, str, str], ...] = (
    ("--ssl-certfile", Path, "PEM", "TLS certificate (chain); HSTS is sent"),
    ("--ssl-keyfile", Path, "PEM", "TLS private key"),
    ("--retention-days", int, "N", "purge log rows older than N days, at start and daily"),
    ("--rate-limit", int, "N", "requests per minute per token and process (default 600; 0: none)"),
    ("--max-uploads-per-client", int, "N", "predict requests one client may have in flight (default 4)"),
    (
        "--filename-key",
        Path,
        "FILE",
        "log each file name as its keyed hash (HMAC-SHA256) with the key in FILE (made if missing)",
    ),
)


def add_log_location(parser: argparse.ArgumentParser) -> None:
    """--log-db PATH | --log-url URL: which prediction log a command works on (default: the server's)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--log-db", type=Path, metavar="PATH", help="SQLite log (default: the server's default)"
    )
    where.add_argument("--log-url", metavar="URL", help="database URL (postgresql://... or sqlite:///...)")


def log_location(args: argparse.Namespace) -> str | Path:
    """The log `add_log_location`'s options name."""
    from dermalens.server.settings import default_log_db

    return args.log_url or args.log_db or default_log_db()


def _migrate_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    migrate = sub.add_parser(
        "migrate-log",
        help="upgrade a prediction log to this version's schema",
        description="Upgrade the prediction log (SQLite file or database URL) to the schema this dermalens "
        "reads. Servers refuse a log of another version; back it up before migrating.",
    )
    add_log_location(migrate)
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
        "access_log": args.access_log or None,
        "no_auth": args.no_auth,
        "ssl_certfile": args.ssl_certfile,
        "ssl_keyfile": args.ssl_keyfile,
        "retention_days": args.retention_days,
        "rate_limit": args.rate_limit,
        "max_uploads_per_client": args.max_uploads_per_client,
        "filename_key": args.filename_key,
    }
    return ServerSettings(**{k: v for k, v in given.items() if v is not None})


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from dermalens.inference.predictor import Classifier
    from dermalens.server.app import create_app
    from dermalens.server.protocol import uvicorn_options

    try:
        settings = settings_from_args(args)
    except ValidationError as err:
        raise ValueError(f"invalid server settings: {err}") from None
    # Open the log and the model before uvicorn starts: a missing model, a database that is down, a
    # log of another schema version or a server exposed without tokens is a one-line error.
    _check_access(settings)
    classifier = Classifier.load(
        settings.model_arg(), tta=settings.tta, threads=settings.ort_threads(), coverage=settings.coverage
    )
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": "info",
        "access_log": settings.access_log,
        "timeout_graceful_shutdown": 10,
        **uvicorn_options(),
    }
    if settings.ssl_certfile is not None:
        options.update(ssl_certfile=str(settings.ssl_certfile), ssl_keyfile=str(settings.ssl_keyfile))
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


def _check_access(settings: Any) -> None:
    """Open the log (a database that is down, or of another schema, is a one-line error rather than a
    traceback per worker) and refuse a server reachable from the network without credentials."""
    from dermalens.server.auth import exposure_problem
    from dermalens.server.log import LogSchemaError, LogUnavailable, PredictionLog
    from dermalens.server.tokens import TokenStore

    for path in (settings.ssl_certfile, settings.ssl_keyfile):
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"no such TLS file: {path}")
    tokens_exist = False
    if (target := settings.log_target()) is not None:
        try:
            prediction_log = PredictionLog(target)
            tokens_exist = TokenStore(prediction_log).enabled()
            prediction_log.close()
        except (LogUnavailable, LogSchemaError) as err:
            raise ValueError(str(err)) from None
    problem = exposure_problem(settings, tokens_exist)
    if problem is not None:
        raise ValueError(problem)


def run_migrate_log(args: argparse.Namespace) -> int:
    from dermalens.server.log import LogSchemaError, LogUnavailable, describe, migrate

    target = log_location(args)
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
