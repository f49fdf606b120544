"""`dermalens serve`: the web app and REST API on uvicorn.

CLI options override ``DERMALENS_*`` environment variables, which override defaults
(see `ServerSettings`). Heavy imports happen inside `run_serve`, so `dermalens --help`
stays fast.
"""

from __future__ import annotations

import argparse
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
        "--log-db",
        metavar="PATH",
        help="SQLite prediction log (default ~/.local/share/dermalens/predictions.db; 'off' disables it)",
    )
    serve.add_argument(
        "--store-images",
        type=Path,
        metavar="DIR",
        help="keep uploaded images in DIR (by SHA-256); off by default",
    )
    serve.add_argument("--max-files", type=int, help="most images per request (default 20)")
    serve.add_argument("--max-bytes", type=int, help="most bytes per request (default 20 MiB)")
    serve.add_argument("--workers", type=int, help="inference batches run at once (default 1)")
    serve.set_defaults(func=run_serve)


def settings_from_args(args: argparse.Namespace) -> Any:
    """`ServerSettings` from the environment, with every given CLI option on top."""
    from dermalens.server.settings import ServerSettings

    given = {
        "models": args.model,
        "host": args.host,
        "port": args.port,
        "tta": args.tta,
        "log_db": args.log_db,
        "store_images": args.store_images,
        "max_files": args.max_files,
        "max_bytes": args.max_bytes,
        "workers": args.workers,
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
    # Load before uvicorn starts: a missing or damaged model is a one-line error, not a traceback.
    classifier = Classifier.load(settings.model_arg(), tta=settings.tta)
    uvicorn.run(
        create_app(settings, classifier),
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=10,
        **uvicorn_options(),
    )
    return 0
