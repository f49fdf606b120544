"""`dermalens token create|list|revoke`: the API tokens of a server, kept in its prediction log.

A token is printed once, as the last line of standard output (so `$(dermalens token create NAME
| tail -1)` captures it); only its scrypt hash is stored (`server.tokens`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dermalens.commands.serve import add_log_location, log_location


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    token = sub.add_parser(
        "token",
        help="create, list or revoke the API tokens of a server (kept in its prediction log)",
        description="Once any token exists, every request to `dermalens serve` on that log needs one "
        "(Authorization: Bearer TOKEN, or the web page's login). A user sees their own history; an "
        "admin sees everyone's.",
    )
    actions = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="make a token and print it once (last line)")
    create.add_argument("name", help="who the token is for (1-64 letters, digits, . _ - @)")
    create.add_argument("--admin", action="store_true", help="may see every user's history")
    listing = actions.add_parser("list", help="every token ever made (names, never the tokens)")
    revoke = actions.add_parser("revoke", help="revoke a token at once (its rows stay)")
    revoke.add_argument("name")
    for parser in (create, listing, revoke):
        add_log_location(parser)
    token.set_defaults(func=run_token)


def run_token(args: argparse.Namespace) -> int:
    from dermalens.server.log import LogSchemaError, LogUnavailable, PredictionLog, describe
    from dermalens.server.tokens import TokenStore

    target = log_location(args)
    try:
        prediction_log = PredictionLog(target)
    except (LogUnavailable, LogSchemaError) as err:
        raise ValueError(str(err)) from None
    try:
        store = TokenStore(prediction_log)
        if args.action == "create":
            token = store.create(args.name, admin=args.admin)
            role = "admin" if args.admin else "user"
            print(f"token for {args.name} ({role}) in {describe(target)}; shown once, store it now:")
            print(token)
        elif args.action == "list":
            _print_tokens(store.list())
        elif not store.revoke(args.name):
            raise ValueError(f"no live token named {args.name!r} (see: dermalens token list)")
        else:
            print(f"revoked {args.name}")
    finally:
        prediction_log.close()
    return 0


def _print_tokens(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print(
            "no tokens: the server is open on loopback (dermalens token create NAME --admin)", file=sys.stderr
        )
    for row in rows:
        state = f"revoked {row['revoked']}" if row["revoked"] else "live"
        print(f"{row['name']}\t{'admin' if row['admin'] else 'user'}\tcreated {row['created']}\t{state}")
