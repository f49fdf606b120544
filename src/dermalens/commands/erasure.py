"""`dermalens log purge`: erase rows of the prediction log (a patient's request, a user's, or old ones).

Stored images that no remaining row refers to are deleted with their rows.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from dermalens.commands.serve import add_log_location, log_location


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    log = sub.add_parser("log", help="erase rows of the prediction log (purge)")
    actions = log.add_subparsers(dest="action", required=True, metavar="ACTION")
    purge = actions.add_parser(
        "purge",
        help="delete rows (and their stored images) and say how many",
        description="Delete the rows logged before a date, of one request, or of one user (the token's "
        "name); the options combine (all must match).",
    )
    purge.add_argument("--before", type=_moment, metavar="DATE", help="logged before DATE (2026-01-31, UTC)")
    purge.add_argument("--request-id", metavar="ID", help="the rows of one request (its request_id)")
    purge.add_argument("--user", metavar="NAME", help="the rows a token of this name made")
    add_log_location(purge)
    purge.set_defaults(func=run_purge)


def _moment(text: str) -> datetime:
    """An ISO date or date-time; without a zone, UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: use 2026-01-31 or 2026-01-31T12:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run_purge(args: argparse.Namespace) -> int:
    from dermalens.server.log import LogSchemaError, LogUnavailable, PredictionLog, Purge, describe

    where = Purge(before=args.before, request_id=args.request_id, user=args.user)
    where.clauses()  # ValueError when nothing is selected, before the log is opened
    target = log_location(args)
    try:
        prediction_log = PredictionLog(target)
        try:
            rows, images = prediction_log.purge(where)
        finally:
            prediction_log.close()
    except (LogUnavailable, LogSchemaError) as err:
        raise ValueError(str(err)) from None
    print(f"{describe(target)}: purged {rows} row(s) and {images} stored image(s)")
    return 0
