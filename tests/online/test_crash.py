"""Real processes against one diskcache directory: a writer killed mid-batch, and readers
running beside a writer. A value must never be torn, and a batch lands whole or not at all.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from fskit.online import DiskcacheBackend, decode_row, encode_frame, encode_key

TABLE = "crash@v1"

# One script, three roles; run as `python worker.py ROLE DIR ...`.
WORKER = r"""
import json, sys, time
from fskit.online import DiskcacheBackend, decode_row, encode_key, encode_row

role, path = sys.argv[1], sys.argv[2]
table = "crash@v1"

if role == "big-write":  # one write call over existing values, killed from outside
    n = int(sys.argv[3])
    items = [(encode_key((i,)), encode_row(2, ["new", i, "n" * 40])) for i in range(n)]
    store = DiskcacheBackend(path)
    print("started", flush=True)
    store.write(table, items)
    print("done", flush=True)

elif role == "writer":  # rounds of writes, each of every key at a newer event time
    keys, seconds = int(sys.argv[3]), float(sys.argv[4])
    store = DiskcacheBackend(path)
    ts, stop = 0, time.monotonic() + seconds
    while time.monotonic() < stop:
        ts += 1
        store.write(table, [
            (encode_key((i,)), encode_row(ts, ["w", ts, i, "y" * (ts * 7 % 500)]))
            for i in range(keys)
        ])
    print(json.dumps({"rounds": ts}), flush=True)

elif role == "reader":  # read everything until the writer is done; check every value
    keys, done_flag = int(sys.argv[3]), sys.argv[4]
    store = DiskcacheBackend(path)
    last = [0] * keys
    reads, stamps = 0, set()
    import os
    while True:
        finished = os.path.exists(done_flag)
        batch = store.read(table, [encode_key((i,)) for i in range(keys)])
        # Each write is one transaction and a read of <= 500 keys one snapshot: one round.
        assert len({data[:8] for data in batch}) == 1, "a read saw half of a write"
        for i, data in enumerate(batch):
            ts, (tag, ts_inside, key, filler) = decode_row(data)
            assert tag == "w" and ts_inside == ts and key == i, (ts, tag, ts_inside, key, i)
            assert filler == "y" * (ts * 7 % 500), f"torn value for key {i} at ts {ts}"
            assert ts >= last[i], f"key {i} went back in time: {last[i]} -> {ts}"
            last[i] = ts
            stamps.add(ts)
            reads += 1
        if finished:
            break
    print(json.dumps({"reads": reads, "distinct": len(stamps)}), flush=True)
"""


def _worker(tmp_path: Path) -> Path:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    return script


def _write_locked(db: Path) -> bool:
    """Whether another connection holds the database's write lock (is inside a write)."""
    probe = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return True
    else:
        probe.execute("ROLLBACK")
        return False
    finally:
        probe.close()


def test_a_writer_killed_mid_batch_leaves_every_old_value_intact(tmp_path: Path) -> None:
    """SIGKILL inside one 100k-item write: the batch is all-or-nothing, so none of it lands."""
    import polars as pl

    n = 100_000
    path = tmp_path / "online"
    old = pl.DataFrame({"k": range(n), "ts": [1] * n, "tag": ["old"] * n}).with_columns(
        pl.col("ts").cast(pl.Datetime("us")), pl.col("k").alias("i"), pl.lit("o" * 40).alias("pad")
    )
    keys, values = encode_frame(old, "k", "ts", ["tag", "i", "pad"])
    with DiskcacheBackend(path) as store:
        assert store.write(TABLE, list(zip(keys, values, strict=True))) == n

    child = subprocess.Popen(
        [sys.executable, str(_worker(tmp_path)), "big-write", str(path), str(n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 10
    while not _write_locked(path / "cache.db") and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.15)  # let it write part of the batch
    assert _write_locked(path / "cache.db"), "the write was over before the kill; raise n"
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=10) == -signal.SIGKILL
    assert "done" not in child.stdout.read()
    child.stdout.close()
    assert child.stderr is not None
    child.stderr.close()

    with sqlite3.connect(path / "cache.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with DiskcacheBackend(path, timeout=5) as store:  # the dead writer's lock is gone
        found = store.read(TABLE, keys)
        decoded = [decode_row(data) for data in found]  # every value decodes cleanly
        assert {(ts, row[0]) for ts, row in decoded} == {(1, "old")}
        assert [row[1] for _, row in decoded] == list(range(n))
        assert store.write(TABLE, [(keys[0], values[0])]) == 1


def test_two_readers_and_a_writer_in_separate_processes(tmp_path: Path) -> None:
    keys = 300
    path = tmp_path / "online"
    done_flag = tmp_path / "writer-done"
    from fskit.online import encode_row

    with DiskcacheBackend(path) as store:
        store.write(
            TABLE, [(encode_key((i,)), encode_row(0, ["w", 0, i, ""])) for i in range(keys)]
        )
    script = str(_worker(tmp_path))

    def spawn(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, script, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    readers = [spawn("reader", str(path), str(keys), str(done_flag)) for _ in range(2)]
    writer = spawn("writer", str(path), str(keys), "1.0")
    out, err = writer.communicate(timeout=60)
    done_flag.touch()
    assert writer.returncode == 0, err
    rounds = json.loads(out)["rounds"]
    assert rounds > 3
    for reader in readers:
        out, err = reader.communicate(timeout=60)
        assert reader.returncode == 0, err
        report = json.loads(out)
        assert report["reads"] > keys
        assert report["distinct"] > 1, "the reader never saw a write land; nothing was tested"
