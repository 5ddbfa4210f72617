"""``fskit``: the command line.

Subcommands::

    fskit demo [--repo DIR] [--data DIR]       headless end-to-end run on the sample data
    fskit sample-data --out DIR [--users N] [--days N] [--seed N]
    fskit registry [--repo DIR]                list the applied definitions
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
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
