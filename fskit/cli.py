"""``fskit``: the command line.

Subcommands::

    fskit demo [--repo DIR] [--data DIR]       headless end-to-end run on the sample data
    fskit sample-data --out DIR [--users N] [--days N] [--seed N]
    fskit registry [--repo DIR]                list the applied definitions
    fskit materialize [--repo DIR] [--start T] [--end T] [--views a,b] [--every 15m]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    import polars as pl

    import fskit as fk
    from fskit import datasets

    data = datasets.find_sample_data(args.data)
    print(f"fskit demo — sample data in {data}, feature repo in {Path(args.repo).absolute()}")
    store = fk.FeatureStore(args.repo)

    print("\n1. apply the fraud world's definitions")
    started = time.perf_counter()
    plan = store.apply(datasets.fraud_definitions(data))
    print(plan)
    print(f"   applied in {time.perf_counter() - started:.2f} s")

    print("\n2. build a point-in-time training set (one row per real transaction)")
    entity_rows = datasets.fraud_entity_rows(data)
    features = [
        "user_stats:total_purchases",
        "user_stats:avg_purchase_value",
        "user_stats:purchases_7d",
        "user_stats:amount_7d",
        "user_stats:max_amount_30d",
        "user_profile:age",
        "user_profile:country",
        "merchant_profile:category",
    ]
    started = time.perf_counter()
    training = store.get_historical_features(entity_rows, features, as_known_at=True)
    seconds = time.perf_counter() - started
    print(f"   shape: {training.shape[0]:,} rows x {training.shape[1]} columns")
    print(f"   built in {seconds:.3f} s ({training.height / seconds:,.0f} rows/s)")
    nulls = training.null_count().transpose(include_header=True, column_names=["nulls"])
    nulls = nulls.filter(pl.col("nulls") > 0)
    print("   null counts (rows with no feature row in the TTL, or before signup):")
    for column, count in nulls.iter_rows():
        print(f"     {column:<22} {count:>8,}")
    print(f"   fraud rate: {training['is_fraud'].mean():.2%}")
    print("\nNext: `make lab` and open notebooks/ for the tutorials.")
    return 0


def _sample_data(args: argparse.Namespace) -> int:
    from fskit.datasets import write_sample_data

    started = time.perf_counter()
    paths = write_sample_data(args.out, n_users=args.users, days=args.days, seed=args.seed)
    for name, path in paths.items():
        print(f"{name:<14} {path}  ({path.stat().st_size / 1e6:.2f} MB)")
    print(f"written in {time.perf_counter() - started:.2f} s")
    return 0


def _registry(args: argparse.Namespace) -> int:
    import fskit as fk

    store = fk.FeatureStore(args.repo)
    table = store.describe()
    if table.is_empty():
        print(f"no feature views applied in {store.repo_path}")
        return 0
    with __import__("polars").Config(tbl_rows=-1, tbl_width_chars=160, fmt_str_lengths=60):
        print(table.select("feature_view", "version", "feature", "dtype", "ttl", "owner"))
    return 0


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``"15m"`` → ``timedelta(minutes=15)``; units s, m, h, d."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive duration like 30s, 15m, 1h or 2d, got {text!r}"
        )
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO time like 2026-01-31T12:00:00+00:00, got {text!r}"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _materialize(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from tqdm import tqdm

    import fskit as fk

    store = fk.FeatureStore(args.repo)
    views = args.views.split(",") if args.views else None
    bars: dict[str, tqdm] = {}

    def progress(view: str, done: int, total: int) -> None:
        bar = bars.get(view)
        if bar is None:
            bar = bars[view] = tqdm(total=total, desc=view, unit="rows", leave=True)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    def report(runs: list) -> None:
        for run in runs:
            start = "beginning" if run.start is None else run.start.isoformat()
            print(
                f"{run.view}: {run.rows:,} rows ({start} .. {run.end.isoformat()}) "
                f"in {run.seconds:.2f} s [{run.status}]",
                flush=True,
            )

    if args.every is None:
        end = args.end or datetime.now(UTC)
        if args.start is None:
            runs = store.materialize_incremental(end, views=views, progress=progress)
        else:
            runs = store.materialize(args.start, end, views=views, progress=progress)
        report(runs)
        return 0

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    schedule = fk.materialization.MaterializationSchedule(store, args.every, views=views)
    print(f"materializing every {args.every} until stopped (Ctrl-C)", flush=True)
    while not stop.is_set():
        began = time.monotonic()
        report(schedule.tick())
        stop.wait(max(0.0, args.every.total_seconds() - (time.monotonic() - began)))
    print(f"stopped after {schedule.ticks} runs ({len(schedule.errors)} failed)", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from fskit import datasets

    parser = argparse.ArgumentParser(prog="fskit", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="headless end-to-end run on the sample data")
    demo.add_argument("--repo", default="feature_repo", help="feature repo directory")
    demo.add_argument("--data", default=None, help="sample data directory")
    demo.set_defaults(func=_demo)

    sample = sub.add_parser("sample-data", help="generate the fraud sample data as Parquet")
    sample.add_argument("--out", default="sample_data")
    sample.add_argument("--users", type=int, default=datasets.DEFAULT_N_USERS)
    sample.add_argument("--days", type=int, default=datasets.DEFAULT_DAYS)
    sample.add_argument("--seed", type=int, default=datasets.DEFAULT_SEED)
    sample.set_defaults(func=_sample_data)

    registry = sub.add_parser("registry", help="list the applied feature views")
    registry.add_argument("--repo", default="feature_repo")
    registry.set_defaults(func=_registry)

    mat = sub.add_parser("materialize", help="copy the newest feature values online")
    mat.add_argument("--repo", default="feature_repo")
    mat.add_argument("--start", type=_when, default=None, help="window start (default: watermark)")
    mat.add_argument("--end", type=_when, default=None, help="window end (default: now)")
    mat.add_argument("--views", default=None, help="comma-separated views (default: all online)")
    mat.add_argument("--every", type=parse_duration, default=None, help="repeat, e.g. 15m")
    mat.set_defaults(func=_materialize)

    from fskit.serving._cli import add_serve_commands

    add_serve_commands(sub)  # serve, deploy, promote, rollback, status
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from fskit.errors import FskitError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FskitError, FileNotFoundError) as exc:
        print(f"fskit {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
