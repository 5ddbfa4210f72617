"""Materialization under real processes: SIGKILL half way, and readers racing a writer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import polars as pl

import fskit as fk

T0 = datetime(2026, 3, 1, tzinfo=UTC)
N_USERS = 100_000


def _repo(tmp_path, n_users=N_USERS, generations=2):
    """Each user has one row per generation g at T0 + g hours, with score == count == g."""
    users = pl.int_range(0, n_users, eager=True)
    frames = [
        pl.DataFrame(
            {
                "user_id": users,
                "event_timestamp": [T0 + timedelta(hours=2 * g)] * n_users,
                "score": [float(g)] * n_users,
                "count": [g] * n_users,
            }
        )
        for g in range(generations)
    ]
    data = tmp_path / "stats.parquet"
    pl.concat(frames).write_parquet(data)
    store = fk.FeatureStore(tmp_path / "repo")
    user = fk.Entity("user", join_keys=["user_id"])
    store.apply(
        [
            user,
            fk.FeatureView(
                name="stats",
                entities=[user],
                source=fk.ParquetSource(data),
            ),
        ]
    )
    return store


CHILD = textwrap.dedent(
    """
    import sys, time
    from datetime import datetime
    import fskit as fk

    store = fk.FeatureStore(sys.argv[1])
    def progress(view, done, total):
        print(f"chunk {done} {total}", flush=True)
        time.sleep(0.2)
    store.materialize_incremental(datetime.fromisoformat(sys.argv[2]), progress=progress)
    print("finished", flush=True)
    """
)


def test_sigkill_half_way_leaves_old_or_new_and_keeps_the_watermark(tmp_path):
    store = _repo(tmp_path)
    first_end = T0 + timedelta(hours=1)
    store.materialize_incremental(first_end)  # generation 0 everywhere
    assert store.watermarks() == {"stats@v1": first_end}

    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store.repo_path), (T0 + timedelta(hours=3)).isoformat()],
        stdout=subprocess.PIPE,
        text=True,
    )
    chunks = 0
    for line in proc.stdout:
        if line.startswith("chunk"):
            chunks += 1
            if chunks == 2:
                os.kill(proc.pid, signal.SIGKILL)
                break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    reopened = fk.FeatureStore(store.repo_path)
    assert reopened.watermarks() == {"stats@v1": first_end}, "a killed run moved the watermark"
    users = list(range(N_USERS))
    out = reopened.get_online_features(
        ["stats:score", "stats:count"], {"user_id": users}, now=T0 + timedelta(hours=3)
    )
    assert out["stats__status"].unique().to_list() == ["PRESENT"]
    assert (out["score"] == out["count"].cast(pl.Float64)).all(), "a torn value"
    assert sorted(out["count"].unique().to_list()) == [0, 1], "expected a half-finished run"

    # the next incremental run starts again from the old watermark and finishes the job
    reopened.materialize_incremental(T0 + timedelta(hours=3))
    again = reopened.get_online_features(
        ["stats:count"], {"user_id": users}, now=T0 + timedelta(hours=3)
    )
    assert again["count"].unique().to_list() == [1]
    log = reopened.materialization_log()
    assert log["status"].to_list() == ["ok", "ok"]  # the killed run never logged success


READER = textwrap.dedent(
    """
    import json, os, random, sys, time
    from datetime import datetime
    import fskit as fk

    store = fk.FeatureStore(sys.argv[1])
    now = datetime.fromisoformat(sys.argv[2])
    stop_file = sys.argv[3]
    rng = random.Random(int(sys.argv[4]))
    reads = torn = errors = 0
    seen = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        stopping = os.path.exists(stop_file)
        users = [rng.randrange(2000) for _ in range(50)]
        try:
            out = store.get_online_features(
                ["stats:score", "stats:count"], {"user_id": users}, now=now, return_type="dict"
            )
        except Exception as exc:
            errors += 1
            print("error", repr(exc), file=sys.stderr)
            continue
        for s, c in zip(out["score"], out["count"]):
            if s is not None:
                seen.add(c)
                torn += s != float(c)
        reads += 1
        if reads == 1:
            print("ready", flush=True)
        if stopping:
            break
    print(json.dumps({"reads": reads, "torn": torn, "errors": errors, "seen": sorted(seen)}))
    """
)

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timedelta
    import fskit as fk

    store = fk.FeatureStore(sys.argv[1])
    t0 = datetime.fromisoformat(sys.argv[2])
    for g in range(int(sys.argv[3])):
        store.materialize(None, t0 + timedelta(hours=2 * g))
    print("done")
    """
)


def test_two_readers_and_a_materializer_at_once(tmp_path):
    generations = 8
    store = _repo(tmp_path, n_users=2000, generations=generations)
    store.materialize(None, T0)
    now = (T0 + timedelta(hours=2 * generations)).isoformat()
    stop_file = tmp_path / "stop"
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(store.repo_path), now, str(stop_file), str(seed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    for reader in readers:  # both have read generation 0 before the writer starts
        assert reader.stdout.readline().strip() == "ready"
    writer = subprocess.run(
        [sys.executable, "-c", WRITER, str(store.repo_path), T0.isoformat(), str(generations)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    stop_file.touch()
    assert writer.returncode == 0, writer.stderr
    for reader in readers:
        out, err = reader.communicate(timeout=60)
        assert reader.returncode == 0, err
        result = json.loads(out)
        assert result["errors"] == 0, err
        assert result["torn"] == 0
        assert result["reads"] > 2
        assert {0, generations - 1} <= set(result["seen"]), "readers saw the values change"
