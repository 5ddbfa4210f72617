"""Command-line subcommands of the model server, wired into ``fskit`` by ``fskit.cli``.

::

    fskit serve    --repo R --model M [--version V] [--host H] [--port P] [--workers N] ...
    fskit deploy   --repo R --model M --version V [--share 0.1] [--shadow] [--as-stable]
                   [--route-by user_id]
    fskit promote  --repo R --model M [--version V]
    fskit rollback --repo R --model M
    fskit status   --repo R --model M
    fskit history  --repo R --model M

``python -m fskit.serving`` is ``fskit serve`` (it is what :func:`fskit.serving.serve` runs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["add_serve_commands", "main"]


def _duration(text: str) -> float:
    from fskit.cli import parse_duration

    return parse_duration(text).total_seconds()


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", default="feature_repo", help="feature repo directory")
    parser.add_argument("--model", required=True, help="registered model name")
    parser.add_argument(
        "--version",
        type=int,
        default=None,
        help="serve this version: stable if the model was never deployed (default: the "
        "latest); refused if another version is stable (use 'fskit promote' for that)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (0: a free one)")
    parser.add_argument("--workers", type=int, default=1, help="server processes on the port")
    parser.add_argument(
        "--token",
        default=None,
        help="require 'Authorization: Bearer TOKEN' (default: $FSKIT_SERVING_TOKEN, else none)",
    )
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    parser.add_argument(
        "--on-unavailable",
        choices=["degrade", "error"],
        default="degrade",
        help="online store down: answer with defaults (degraded) or 503",
    )
    parser.add_argument(
        "--defaults", default=None, help='JSON of feature defaults, e.g. {"age": 40}'
    )
    parser.add_argument("--batch-scores", default=None, help="Parquet file of precomputed scores")
    parser.add_argument("--batch-max-age", type=_duration, default=None, help="e.g. 1h")
    parser.add_argument("--no-log", action="store_true", help="do not write the prediction log")
    parser.add_argument("--log-flush-seconds", type=float, default=5.0)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--port-file", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--exit-with-parent", type=int, default=None, help=argparse.SUPPRESS)


def _serve(args: argparse.Namespace) -> int:
    from fskit.serving._app import TOKEN_ENV, ServerOptions
    from fskit.serving._models import check_model_name
    from fskit.serving._process import run_server

    check_model_name(args.model)
    try:
        defaults = json.loads(args.defaults) if args.defaults else {}
    except ValueError as exc:
        raise SystemExit(f"fskit serve: --defaults is not JSON: {exc}") from None
    options = ServerOptions(
        repo=os.path.abspath(args.repo),
        model=args.model,
        on_unavailable=args.on_unavailable,
        defaults=defaults,
        batch_scores=args.batch_scores,
        batch_max_age_seconds=args.batch_max_age,
        log_predictions=not args.no_log,
        log_flush_seconds=args.log_flush_seconds,
    )
    return run_server(
        options,
        host=args.host,
        port=args.port,
        workers=args.workers,
        token=args.token or os.environ.get(TOKEN_ENV) or None,
        allow_remote=args.allow_remote,
        port_file=args.port_file,
        exit_with_parent=args.exit_with_parent,
        log_level=args.log_level,
        version=args.version,
    )


def _print_state(state: Any) -> int:
    print(state)
    print(json.dumps(state.to_dict(), indent=2))
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from fskit.serving._state import deploy

    return _print_state(
        deploy(
            args.repo,
            args.model,
            args.version,
            share=args.share,
            shadow=args.shadow,
            as_stable=args.as_stable,
            route_by=args.route_by.split(",") if args.route_by else None,
        )
    )


def _promote(args: argparse.Namespace) -> int:
    from fskit.serving._state import promote

    return _print_state(promote(args.repo, args.model, args.version))


def _rollback(args: argparse.Namespace) -> int:
    from fskit.serving._state import rollback

    return _print_state(rollback(args.repo, args.model))


def _status(args: argparse.Namespace) -> int:
    from fskit.serving._state import status

    return _print_state(status(args.repo, args.model))


def _history(args: argparse.Namespace) -> int:
    import polars as pl

    from fskit.serving._state import history

    events = history(args.repo, args.model)
    if events.is_empty():
        print(f"{args.model}: never deployed (no deployment events)")
        return 0
    with pl.Config(
        tbl_rows=-1,
        tbl_cols=-1,
        fmt_str_lengths=120,
        tbl_width_chars=240,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        tbl_hide_dtype_separator=True,
    ):
        print(events)
    return 0


def add_serve_commands(subparsers: Any) -> None:
    """Add ``serve``, ``deploy``, ``promote``, ``rollback``, ``status``, ``history`` to ``fskit``."""
    serve = subparsers.add_parser("serve", help="run a model server (uvicorn) in the foreground")
    add_server_arguments(serve)
    serve.set_defaults(func=_serve)

    def model_parser(name: str, help: str) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, help=help)
        parser.add_argument("--repo", default="feature_repo", help="feature repo directory")
        parser.add_argument("--model", required=True, help="registered model name")
        return parser

    deploy = model_parser("deploy", "deploy a model version (stable if none, else canary)")
    deploy.add_argument("--version", type=int, required=True)
    deploy.add_argument("--share", type=float, default=None, help="canary share, default 0.1")
    deploy.add_argument("--shadow", action="store_true", help="score but do not answer")
    deploy.add_argument(
        "--as-stable",
        action="store_true",
        help="make the version stable at once, for every entity (like promote --version)",
    )
    deploy.add_argument(
        "--route-by",
        default=None,
        help="join key(s) the canary split is sticky on, comma-separated (default: all)",
    )
    deploy.set_defaults(func=_deploy)
    promote = model_parser("promote", "make the canary (or --version) the stable version")
    promote.add_argument("--version", type=int, default=None)
    promote.set_defaults(func=_promote)
    model_parser("rollback", "drop the canary, or return to the previous stable").set_defaults(
        func=_rollback
    )
    model_parser("status", "show a model's deployment").set_defaults(func=_status)
    model_parser("history", "show every deployment change of a model").set_defaults(func=_history)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fskit.serving``: the same as ``fskit serve``."""
    from fskit.errors import FskitError

    parser = argparse.ArgumentParser(
        prog="python -m fskit.serving", description="fskit model server"
    )
    add_server_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return _serve(args)
    except FskitError as exc:
        print(f"fskit serve: error: {exc}", file=sys.stderr)
        return 2
