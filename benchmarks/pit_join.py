"""Point-in-time join: fskit's get_historical_features beside a bare polars join_asof.

Data (seeded): 100k users x 100 daily snapshots = 10M feature rows with 10 float/int
features and a created timestamp, in one Parquet file; 1M entity rows at random times.

Each variant runs in a fresh subprocess so its peak memory (max RSS) is its own:

* ``fskit``       store.get_historical_features(entity_df, 10 features)  (TTL 30 days)
* ``bare``        scan the same Parquet, sort both sides by time, join_asof by user_id

Usage: python benchmarks/pit_join.py [--users 100000] [--snapshots 100] [--entities 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

DATA = Path(__file__).parent / ".data"
START = datetime(2026, 1, 1)


def generate(users: int, snapshots: int, entities: int, seed: int = 0) -> Path:
    out = DATA / f"pit_{users}_{snapshots}_{entities}_{seed}"
    if (out / "entities.parquet").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = users * snapshots
    user_id = np.repeat(np.arange(users, dtype=np.int64), snapshots)
    day = np.tile(np.arange(snapshots, dtype=np.int64), users)
    ts_us = (day * 86_400 + rng.integers(0, 86_400, n)) * 1_000_000
    start_us = int(START.timestamp()) * 1_000_000
    cols: dict[str, object] = {
        "user_id": user_id,
        "event_timestamp": pl.Series(ts_us + start_us).cast(pl.Datetime("us")),
        "created_timestamp": pl.Series(ts_us + start_us + 3_600_000_000).cast(pl.Datetime("us")),
    }
    for i in range(5):
        cols[f"f_float_{i}"] = rng.normal(size=n)
        cols[f"f_int_{i}"] = rng.integers(0, 1000, n)
    features = pl.DataFrame(cols).sample(fraction=1.0, shuffle=True, seed=seed)
    features.write_parquet(out / "features.parquet")
    ent = pl.DataFrame(
        {
            "user_id": rng.integers(0, users, entities),
            "event_timestamp": pl.Series(
                start_us + rng.integers(0, snapshots * 86_400, entities) * 1_000_000
            ).cast(pl.Datetime("us")),
            "label": rng.integers(0, 2, entities),
        }
    )
    ent.write_parquet(out / "entities.parquet")
    return out


FEATURES = [f"f_float_{i}" for i in range(5)] + [f"f_int_{i}" for i in range(5)]


def run_fskit(data: Path) -> tuple[float, tuple[int, int]]:
    import fskit as fk

    store = fk.FeatureStore(data / "repo")
    user = fk.Entity("user", join_keys=["user_id"])
    view = fk.FeatureView(
        name="stats",
        entities=[user],
        source=fk.ParquetSource(
            data / "features.parquet", created_timestamp_field="created_timestamp"
        ),
        ttl=timedelta(days=30),
    )
    store.apply([user, view])
    entity_df = pl.read_parquet(data / "entities.parquet")
    started = time.perf_counter()
    out = store.get_historical_features(entity_df, [f"stats:{f}" for f in FEATURES])
    return time.perf_counter() - started, out.shape


def run_bare(data: Path) -> tuple[float, tuple[int, int]]:
    entity_df = pl.read_parquet(data / "entities.parquet")
    started = time.perf_counter()
    right = (
        pl.scan_parquet(data / "features.parquet")
        .select("user_id", "event_timestamp", *FEATURES)
        .sort("event_timestamp")
    )
    out = (
        entity_df.lazy()
        .sort("event_timestamp")
        .join_asof(right, on="event_timestamp", by="user_id", check_sortedness=False)
        .collect()
    )
    return time.perf_counter() - started, out.shape


def child(variant: str, data: Path) -> None:
    seconds, shape = {"fskit": run_fskit, "bare": run_bare}[variant](data)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "shape": shape}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--snapshots", type=int, default=100)
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=["fskit", "bare"])
    parser.add_argument("--data", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data)
        return

    started = time.perf_counter()
    data = generate(args.users, args.snapshots, args.entities)
    print(
        f"data: {args.users * args.snapshots:,} feature rows x {len(FEATURES)} features, "
        f"{args.entities:,} entity rows ({time.perf_counter() - started:.1f} s to prepare)"
    )
    results: dict[str, list[dict]] = {"fskit": [], "bare": []}
    for _ in range(args.repeat):  # interleaved, so drift in machine load hits both
        for variant in results:
            proc = subprocess.run(
                [sys.executable, __file__, "--child", variant, "--data", str(data)],
                check=True,
                capture_output=True,
                text=True,
            )
            results[variant].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"{'variant':<28}{'best s':>10}{'median s':>10}{'peak MB':>10}")
    best = {}
    for variant, label in (("bare", "bare join_asof (floor)"), ("fskit", "fskit PIT join")):
        runs = results[variant]
        secs = sorted(r["seconds"] for r in runs)
        best[variant] = secs[0]
        peak = max(r["peak_mb"] for r in runs)
        print(f"{label:<28}{secs[0]:>10.2f}{secs[len(secs) // 2]:>10.2f}{peak:>10.0f}")
    print(f"fskit / floor (best): {best['fskit'] / best['bare']:.2f}x   (target <= 1.5x)")


if __name__ == "__main__":
    main()
