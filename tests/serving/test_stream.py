"""``fskit.stream.run``: events from a JSON-lines file → push → score → sink, as /predict does."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import pytest

from fskit import stream
from fskit.serving import read_prediction_log


def _events(n: int, start: int = 0) -> list[dict]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "transaction_id": f"t{i}",
            "user_id": 20 + i % 150,
            "amount": 5.0 + i,
            "event_timestamp": now,
            "purchases_7d": i % 5,
            "amount_7d": 100.0 + i,
            "avg_amount": 20.0 + i % 3,
        }
        for i in range(start, start + n)
    ]


def test_stream_scores_like_predict_after_pushing_the_events_features(store, servers, tmp_path):
    source, sink = tmp_path / "events.jsonl", tmp_path / "scores.jsonl"
    events = _events(12)
    lines = [json.dumps(e) for e in events]
    lines.insert(5, "{not json")  # a broken event does not stop the stream
    lines.insert(
        7,
        json.dumps(
            {
                "transaction_id": "bad",
                "user_id": "x",
                "amount": 1.0,
                "event_timestamp": events[0]["event_timestamp"],
                "purchases_7d": 1,
                "amount_7d": 1.0,
                "avg_amount": 1.0,
            }
        ),
    )
    source.write_text("\n".join(lines) + "\n")

    stats = stream.run(
        store,
        "stream",
        source,
        sink,
        push="user_stats",
        passthrough=["transaction_id"],
        batch_size=5,
    )
    assert (stats.events, stats.scored, stats.errors) == (14, 12, 2)
    records = [json.loads(line) for line in sink.read_text().splitlines()]
    assert len(records) == 14
    errors = [r for r in records if "error" in r]
    assert "not JSON" in errors[0]["error"] and errors[1]["transaction_id"] == "bad"
    scored = [r for r in records if "error" not in r]
    assert [r["transaction_id"] for r in scored] == [e["transaction_id"] for e in events]

    # the pushed features are online: /predict with the same keys and fields gives the same answers
    server = servers(store, "stream")
    answer = server.predict(
        [{"user_id": e["user_id"], "amount": e["amount"]} for e in events], return_features=True
    )
    for record, event, predicted in zip(scored, events, answer["predictions"], strict=True):
        assert record["score"] == pytest.approx(predicted["score"], rel=1e-9)
        assert (record["version"], record["route"], record["missing"]) == (
            predicted["version"],
            "stream",  # the same version and code path; logged as streamed
            [],
        )
        assert predicted["route"] == "stable"
        assert record["freshness"]["user_stats"]["status"] == "PRESENT"
        # ... because the event's own features were pushed before it was scored
        assert predicted["features"]["amount_7d"] == event["amount_7d"]

    log = read_prediction_log(store, "stream")
    assert log.filter(route="stream").height == 12  # the server's answers are logged "stable"


def test_stream_follows_a_growing_file_until_idle(store, tmp_path):
    source, out = tmp_path / "tail.jsonl", tmp_path / "parts"
    source.write_text("")

    def writer():
        for i in range(3):
            with open(source, "a") as fh:
                for event in _events(4, start=100 + 4 * i):
                    fh.write(json.dumps(event) + "\n")
            time.sleep(0.2)

    thread = threading.Thread(target=writer)
    thread.start()
    stats = stream.run(
        store,
        "stream",
        source,
        out,
        push="user_stats",
        follow=True,
        idle_timeout=1.0,
        log_predictions=False,
    )
    thread.join()
    assert (stats.events, stats.scored, stats.errors) == (12, 12, 0)
    import polars as pl

    frame = pl.read_parquet(out / "*.parquet")
    assert frame.height == 12 and frame["score"].is_between(0, 1).all()


def test_stream_from_a_redis_stream_to_a_redis_stream(store, tmp_path):
    import shutil
    import socket
    import subprocess

    redis = pytest.importorskip("redis")
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.02)
        url = f"redis://127.0.0.1:{port}/0"
        for event in _events(5, start=200):
            client.xadd("events", {"data": json.dumps(event)})
        stats = stream.run(
            store,
            "stream",
            stream.RedisStreamSource(url, "events"),
            stream.RedisStreamSink(url, "scores"),
            push="user_stats",
            passthrough=["transaction_id"],
            log_predictions=False,
        )
        assert (stats.events, stats.scored) == (5, 5)
        out = [json.loads(fields[b"data"]) for _, fields in client.xrange("scores")]
        assert [r["transaction_id"] for r in out] == [f"t{i}" for i in range(200, 205)]
        assert all(0 < r["score"] < 1 for r in out)
    finally:
        process.terminate()
        process.wait(timeout=10)
