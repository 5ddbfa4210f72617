"""Online store: fskit's reads and materialization beside bare diskcache / Redis floors.

One run, the same data for every line:

* single-entity read of 10 features, p50/p99 µs: ``store.get_online_features`` (dict and
  polars answers) vs a bare ``diskcache.Cache.get`` + ``msgpack`` decode of the same value;
* batch read of 100 entities, p99: fskit vs the bare gets (diskcache) / one bare ``MGET``
  (Redis, when ``redis-server`` is installed: started here on a free loopback port);
* materialization of 1M rows (1M entities x 10 features) into diskcache, rows/s: fskit's
  ``materialize`` (scan + newest-per-entity + encode + chunked transactions) vs a bare
  ``cache.set`` loop (bytes keys, as fskit uses) inside ``cache.transact()`` over values
  already encoded — so the floor does strictly less work than fskit.

Usage: python benchmarks/online.py [--rows 1000000] [--reads 20000]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import diskcache
import msgpack
import numpy as np
import polars as pl

import fskit as fk
from fskit.online import encode_frame, encode_key

T = datetime(2026, 1, 1, tzinfo=UTC)
FEATURES = [f"f{i}" for i in range(10)]


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    us = np.asarray(samples_ns) / 1000
    return float(np.percentile(us, 50)), float(np.percentile(us, 99))


def make_frame(rows: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    cols = {"user_id": np.arange(rows, dtype=np.int64), "event_timestamp": [T] * rows}
    for i, name in enumerate(FEATURES):
        cols[name] = rng.normal(size=rows) if i % 2 == 0 else rng.integers(0, 1000, rows)
    return pl.DataFrame(cols)


def make_store(root: Path, data: Path, online_store: dict | None = None) -> fk.FeatureStore:
    store = fk.FeatureStore(root, online_store=online_store)
    user = fk.Entity("user", join_keys=["user_id"])
    store.apply(
        [user, fk.FeatureView(name="stats", entities=[user], source=fk.ParquetSource(data))]
    )
    return store


def time_reads(fn, ids: np.ndarray) -> tuple[float, float]:
    for i in ids[:500]:  # warm up
        fn(i)
    samples = []
    for i in ids:
        started = time.perf_counter_ns()
        fn(i)
        samples.append(time.perf_counter_ns() - started)
    return percentiles(samples)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reads", type=int, default=20_000)
    args = parser.parse_args()
    refs = [f"stats:{f}" for f in FEATURES]
    rng = np.random.default_rng(1)
    tmp = Path(tempfile.mkdtemp(prefix="fskit-bench-"))
    try:
        frame = make_frame(args.rows)
        data = tmp / "stats.parquet"
        frame.write_parquet(data)
        print(f"data: {args.rows:,} entities x {len(FEATURES)} features\n")

        # -- materialization -------------------------------------------------------------
        store = make_store(tmp / "repo", data)
        started = time.perf_counter()
        store.materialize(None, T)
        fskit_mat = args.rows / (time.perf_counter() - started)

        keys, values = encode_frame(frame, ["user_id"], "event_timestamp", FEATURES)
        bare = diskcache.Cache(str(tmp / "bare"))
        started = time.perf_counter()
        for offset in range(0, len(keys), 20_000):
            with bare.transact():
                for k, v in zip(
                    keys[offset : offset + 20_000], values[offset : offset + 20_000], strict=True
                ):
                    bare.set(b"stats@v1\x00" + k, v)
        bare_mat = args.rows / (time.perf_counter() - started)

        # -- reads -------------------------------------------------------------------------
        ids = rng.integers(0, args.rows, args.reads)
        unpack = msgpack.unpackb

        def bare_get(i):
            raw = bare.get(b"stats@v1\x00" + encode_key((int(i),)))
            return unpack(raw[8:])

        def fskit_dict(i):
            return store.get_online_features(refs, [{"user_id": int(i)}], return_type="dict")

        def fskit_polars(i):
            return store.get_online_features(refs, [{"user_id": int(i)}])

        single = {
            "bare diskcache get+decode": time_reads(bare_get, ids),
            "fskit (dict)": time_reads(fskit_dict, ids),
            "fskit (polars)": time_reads(fskit_polars, ids[: args.reads // 4]),
        }
        batches = [rng.integers(0, args.rows, 100).tolist() for _ in range(args.reads // 20)]

        def bare_batch(b):
            return [unpack(bare.get(b"stats@v1\x00" + encode_key((i,)))[8:]) for i in b]

        def fskit_batch(b):
            return store.get_online_features(refs, {"user_id": b}, return_type="dict")

        batch = {
            "bare diskcache 100 gets": time_reads(bare_batch, batches),
            "fskit (dict), 100 entities": time_reads(fskit_batch, batches),
        }

        redis_rows = {}
        if shutil.which("redis-server"):
            port = free_port()
            server = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=subprocess.DEVNULL,
            )
            try:
                import redis

                client = redis.Redis(port=port)
                for _ in range(100):
                    try:
                        client.ping()
                        break
                    except redis.ConnectionError:
                        time.sleep(0.05)
                url = f"redis://127.0.0.1:{port}/0"
                rstore = make_store(tmp / "rrepo", data, {"type": "redis", "url": url})
                rstore.materialize(None, T)
                prefix = b"bare:"
                pipe = client.pipeline(transaction=False)
                for k, v in zip(keys[:200_000], values[:200_000], strict=True):
                    pipe.set(prefix + k, v)
                pipe.execute()
                rbatches = [rng.integers(0, 200_000, 100).tolist() for _ in range(args.reads // 20)]

                def bare_mget(b):
                    return [
                        unpack(r[8:]) for r in client.mget([prefix + encode_key((i,)) for i in b])
                    ]

                def fskit_redis(b):
                    return rstore.get_online_features(refs, {"user_id": b}, return_type="dict")

                redis_rows = {
                    "bare Redis MGET 100": time_reads(bare_mget, rbatches),
                    "fskit on Redis, 100 entities": time_reads(fskit_redis, rbatches),
                }
                rstore.close()
            finally:
                server.terminate()
                server.wait()

        print(f"{'single-entity read, 10 features':<36}{'p50 µs':>10}{'p99 µs':>10}")
        for label, (p50, p99) in single.items():
            print(f"  {label:<34}{p50:>10.1f}{p99:>10.1f}")
        ratio = single["fskit (dict)"][1] / single["bare diskcache get+decode"][1]
        print(f"  fskit (dict) p99 / bare p99: {ratio:.1f}x   (target <= 5x and <= 100 µs)\n")
        print(f"{'batch read':<36}{'p50 µs':>10}{'p99 µs':>10}")
        for label, (p50, p99) in {**batch, **redis_rows}.items():
            print(f"  {label:<34}{p50:>10.1f}{p99:>10.1f}")
        print("  (target: fskit diskcache batch p99 <= 2000 µs)\n")
        print(f"{'materialization':<36}{'rows/s':>12}")
        print(f"  {'bare diskcache transact+set loop':<34}{bare_mat:>12,.0f}")
        print(f"  {'fskit materialize':<34}{fskit_mat:>12,.0f}")
        print(f"  fskit / bare: {fskit_mat / bare_mat:.0%}   (target >= 80%)")
        store.close()
        bare.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
