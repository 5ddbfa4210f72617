"""Model server latency and throughput against a hello-world endpoint of the same stack.

Starts two servers on loopback, each one uvicorn worker with the same settings:

* the fskit model server (``fk.serving.serve``), ``POST /predict`` for one entity: 12 model
  inputs (11 online features from 3 feature views in the diskcache online store + 1 request
  field), XGBoost (60 trees, depth 6);
* a hello-world Starlette endpoint (``GET /hello`` answering a small JSON object).

and drives each with a load generator over keep-alive HTTP/1.1 connections (asyncio, raw
sockets, in this process):

1. a steady 200 requests/s for ``--requests`` requests (open loop: latency is measured from
   each request's *scheduled* time, so a stall shows up instead of slowing the generator);
2. a closed loop of ``--connections`` connections sending ``--requests`` requests as fast as
   the server answers: the maximum requests/s.

Run: ``.venv/bin/python benchmarks/serve.py`` (about a minute). Targets on a 2-core machine:
``/predict`` p99 <= 5 ms at 200 req/s, max throughput >= 40% of hello-world's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

HELLO = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request):
    return JSONResponse({"hello": "world"})


app = Starlette(routes=[Route("/hello", hello, methods=["GET"])])
"""


# -- the world --------------------------------------------------------------------------------
def build_repo(root: Path, n_users: int = 5000, n_merchants: int = 500):
    """A feature repo with 3 views (11 features), materialized, and a trained model."""
    import polars as pl

    import fskit as fk
    from fskit.training import train

    rng = np.random.default_rng(0)
    now = datetime.now(UTC).replace(microsecond=0)
    data = root / "data"
    data.mkdir(parents=True)
    users = np.arange(n_users, dtype=np.int64)
    days = 10
    stats = pl.DataFrame(
        {
            "user_id": np.tile(users, days),
            "event_timestamp": [now - timedelta(days=d, hours=1) for d in range(days) for _ in range(n_users)],
            **{name: rng.gamma(2.0, 10.0, n_users * days) for name in
               ("amount_1d", "amount_7d", "amount_30d", "avg_amount", "max_amount_30d")},
            "purchases_7d": rng.integers(0, 30, n_users * days),
        }
    ).with_columns(pl.col("event_timestamp").cast(pl.Datetime("us", "UTC")))  # fmt: skip
    stats.write_parquet(data / "user_stats.parquet")
    pl.DataFrame(
        {
            "user_id": users,
            "event_timestamp": [now - timedelta(days=400)] * n_users,
            "age": rng.integers(18, 90, n_users),
            "country": rng.choice(["GB", "DE", "FR", "ES", "IT"], n_users),
            "tenure_days": rng.integers(0, 3000, n_users),
        }
    ).with_columns(pl.col("event_timestamp").cast(pl.Datetime("us", "UTC"))).write_parquet(
        data / "users.parquet"
    )
    pl.DataFrame(
        {
            "merchant_id": np.arange(n_merchants, dtype=np.int64),
            "event_timestamp": [now - timedelta(days=400)] * n_merchants,
            "category": rng.choice(["grocery", "travel", "electronics", "fuel"], n_merchants),
            "merchant_fraud_rate": rng.beta(1, 50, n_merchants),
        }
    ).with_columns(pl.col("event_timestamp").cast(pl.Datetime("us", "UTC"))).write_parquet(
        data / "merchants.parquet"
    )

    store = fk.FeatureStore(root / "repo")
    user = fk.Entity("user", join_keys=["user_id"])
    merchant = fk.Entity("merchant", join_keys=["merchant_id"])
    views = [
        fk.FeatureView(name="user_stats", entities=[user], ttl=timedelta(days=2),
                       source=fk.ParquetSource(data / "user_stats.parquet")),
        fk.FeatureView(name="user_profile", entities=[user], source=fk.ParquetSource(data / "users.parquet")),
        fk.FeatureView(name="merchant_profile", entities=[merchant],
                       source=fk.ParquetSource(data / "merchants.parquet")),
    ]  # fmt: skip
    store.apply([user, merchant, *views])
    store.materialize(None, now)
    features = [f"{v.name}:{f}" for v in store.list_feature_views() for f in v.feature_names]
    n = 20_000
    rows = pl.DataFrame(
        {
            "user_id": rng.integers(0, n_users, n),
            "merchant_id": rng.integers(0, n_merchants, n),
            "event_timestamp": [
                now - timedelta(seconds=int(s)) for s in rng.integers(3600, 8 * 86400, n)
            ],
            "amount": rng.gamma(2.0, 15.0, n),
        }
    ).with_columns(pl.col("event_timestamp").cast(pl.Datetime("us", "UTC")))
    training = store.get_historical_features(rows, features)
    risk = (
        training["amount"].to_numpy() / (training["avg_amount"].fill_null(20).to_numpy() + 1)
        + 20 * training["merchant_fraud_rate"].to_numpy()
    )
    training = training.with_columns(
        pl.Series("is_fraud", (rng.random(n) < 1 / (1 + np.exp(3 - risk))).astype(np.int64))
    )
    result = train(store, training, label="is_fraud", features=features, extra_columns=["amount"],
                   num_boost_round=60, early_stopping_rounds=None, params={"max_depth": 6})  # fmt: skip
    result.register("bench")
    store.close()
    return store.repo_path, len(result.feature_columns), n_users, n_merchants


# -- the load generator -------------------------------------------------------------------------
class Connection:
    """A keep-alive HTTP/1.1 connection with just enough parsing for these two servers."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.server_ms: list[float] = []  # the server's own "total" from Server-Timing

    async def request(self, raw: bytes) -> int:
        if self.writer is not None:
            try:
                return await self._request(raw)
            except (asyncio.IncompleteReadError, ConnectionError):  # closed while idle
                self.writer.close()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return await self._request(raw)

    async def _request(self, raw: bytes) -> int:
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
            elif line[:14].lower() == b"server-timing:" and b"total;dur=" in line:
                self.server_ms.append(float(line.rsplit(b"total;dur=", 1)[1].split(b",")[0]))
        if length:
            await self.reader.readexactly(length)
        return status


def _raw(host: str, port: int, method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def steady(
    host: str, port: int, requests: list[bytes], rate: float
) -> tuple[list[float], list[float]]:
    """Open loop at ``rate`` req/s; latency from each request's scheduled send time."""
    idle: list[Connection] = []
    everyone: list[Connection] = []
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter() + 0.05

    async def one(i: int, raw: bytes) -> None:
        nonlocal errors
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if idle:
            conn = idle.pop()
        else:
            conn = Connection(host, port)
            everyone.append(conn)
        status = await conn.request(raw)
        latencies.append(time.perf_counter() - scheduled)
        errors += status != 200
        idle.append(conn)

    await asyncio.gather(*(one(i, raw) for i, raw in enumerate(requests)))
    if errors:
        raise RuntimeError(f"{errors} requests failed")
    return latencies, [ms for conn in everyone for ms in conn.server_ms]


async def closed(host: str, port: int, requests: list[bytes], connections: int) -> float:
    """``connections`` connections send back to back; return requests per second."""
    queue = list(reversed(requests))
    errors = 0

    async def worker() -> None:
        nonlocal errors
        conn = Connection(host, port)
        while queue:
            errors += await conn.request(queue.pop()) != 200

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    seconds = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{errors} requests failed")
    return len(requests) / seconds


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    name: str,
    port: int,
    pid: int,
    make: callable,
    n: int,
    rate: float,
    connections: int,
    probe: callable = lambda: None,
) -> dict:
    """Warm up, then the steady phase, then the closed loop; ``probe()`` is called before
    and after the closed loop (its two results are returned as ``probes``)."""
    warm = [make() for _ in range(300)]
    asyncio.run(closed("127.0.0.1", port, warm, 4))
    lat, server_ms = asyncio.run(steady("127.0.0.1", port, [make() for _ in range(n)], rate))
    lat = np.array(lat) * 1000
    before = probe()
    cpu = cpu_seconds(pid)
    rps = asyncio.run(closed("127.0.0.1", port, [make() for _ in range(n)], connections))
    cpu_us = (cpu_seconds(pid) - cpu) / n * 1e6
    after = probe()
    return {
        "endpoint": name,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
        "server_p99_ms": float(np.percentile(server_ms, 99)) if server_ms else float("nan"),
        "max_rps": rps,
        "cpu_us": cpu_us,
        "probes": (before, after),
    }


def start_hello(workdir: Path) -> tuple[subprocess.Popen, int]:
    import socket

    (workdir / "hello_app.py").write_text(HELLO)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "hello_app:app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=workdir, start_new_session=True,
    )  # fmt: skip
    import urllib.request

    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/hello", timeout=1).read()
            return process, port
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per phase")
    parser.add_argument("--rate", type=float, default=200.0, help="steady phase, requests/s")
    parser.add_argument("--connections", type=int, default=8, help="closed-loop connections")
    args = parser.parse_args()

    import fskit.serving as serving

    workdir = Path(tempfile.mkdtemp(prefix="fskit-bench-serve-"))
    started = time.perf_counter()
    repo, n_inputs, n_users, n_merchants = build_repo(workdir)
    print(f"repo with a model of {n_inputs} inputs built in {time.perf_counter() - started:.1f} s")
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (other work skews the figures)"
    )

    rng = random.Random(0)
    server = serving.serve(repo, "bench", log_flush_seconds=5.0)
    hello, hello_port = start_hello(workdir)
    try:
        port = int(server.url.rsplit(":", 1)[1])
        sample = server.predict({"user_id": 1, "merchant_id": 2, "amount": 30.0})
        print(f"/predict answer timing (ms): {sample['timing_ms']}")

        def predict() -> bytes:
            body = {"entities": [{"user_id": rng.randrange(n_users), "merchant_id": rng.randrange(n_merchants),
                                  "amount": round(rng.uniform(1, 300), 2)}]}  # fmt: skip
            return _raw("127.0.0.1", port, "POST", "/predict", json.dumps(body).encode())

        hello_raw = _raw("127.0.0.1", hello_port, "GET", "/hello")

        def batching() -> tuple[float, float]:
            stats = serving.parse_prometheus(server.metrics())
            return (
                sum(v for (name, _), v in stats.items() if name == "fskit_batches_total"),
                sum(v for (name, _), v in stats.items() if name == "fskit_batched_requests_total"),
            )

        results = [
            measure("hello world (GET /hello)", hello_port, hello.pid, lambda: hello_raw, args.requests, args.rate, args.connections),
            measure("fskit POST /predict, 1 entity", port, server.pid, predict, args.requests, args.rate, args.connections, batching),
        ]  # fmt: skip
        (b0, r0), (b1, r1) = results[1]["probes"]
        batches, batched = b1 - b0, r1 - r0
    finally:
        server.stop()
        hello.terminate()
        hello.wait(timeout=10)

    print(
        f"\n{args.requests} requests per phase; steady {args.rate:.0f} req/s; closed loop {args.connections} connections"
    )
    print(
        f"{'endpoint':<32} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'max req/s':>10} "
        f"{'server p99 ms':>14} {'server CPU us/req':>18}"
    )
    for r in results:
        print(
            f"{r['endpoint']:<32} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['max_ms']:>8.2f} "
            f"{r['max_rps']:>10.0f} {r['server_p99_ms']:>14.2f} {r['cpu_us']:>18.0f}"
        )
    ratio = results[1]["max_rps"] / results[0]["max_rps"]
    cpu_ratio = results[0]["cpu_us"] / results[1]["cpu_us"]
    p99 = results[1]["p99_ms"]
    met = {True: "met", False: "MISSED"}
    print(
        f"\n/predict p99 at {args.rate:.0f} req/s: {p99:.2f} ms (target <= 5 ms: {met[p99 <= 5]})"
    )
    print(
        f"/predict max throughput = {ratio:.0%} of hello world (target >= 40%: {met[ratio >= 0.4]})"
    )
    print(
        f"by server CPU per request (less sensitive to other load): {cpu_ratio:.0%} of hello world"
    )
    print(
        f"dynamic batching in the closed loop: {batched:.0f} /predict requests in {batches:.0f} "
        f"batches (mean {batched / max(batches, 1):.2f} requests per batch)"
    )
    print(f"load average after the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
