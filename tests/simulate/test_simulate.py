"""The online simulator, on a tiny stream computed by hand and on the fraud sample data.

Every simulation runs against a real (temporary) diskcache store.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal, assert_series_equal

import fskit as fk
from fskit import simulate as sim
from fskit.datasets import fraud_definitions, fraud_entity_rows
from fskit.errors import DefinitionError, EntityFrameError
from fskit.materialization import latest_rows

T = datetime(2026, 3, 1, 10, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """``T`` plus some minutes: the tiny stream's clock reads 10:00 at 0."""
    return T + timedelta(minutes=minutes)


# The tiny stream. Each row: user, event minute, created minute, score.
TINY_ROWS = [
    (1, 0, 5, 1.0),  # known at 10:05
    (1, 20, 32, 2.0),  # known at 10:32
    (2, -10, -10, 5.0),  # known at 09:50
    (2, 10, 41, 6.0),  # known at 10:41 (31 minutes late)
    (2, 10, 52, 7.0),  # a correction of the 10:10 row, known at 10:52
]
# Reads: (minute, user), in time order.
TINY_READS = [(7, 1), (7, 2), (15, 1), (35, 1), (35, 2), (45, 2), (55, 1), (55, 2)]
FEATURES = ["stats:score"]


@pytest.fixture
def tiny(tmp_path):
    rows = pl.DataFrame(
        [(u, at(e), at(c), s) for u, e, c, s in TINY_ROWS],
        schema={
            "user_id": pl.Int64,
            "event_timestamp": pl.Datetime("us", "UTC"),
            "created_timestamp": pl.Datetime("us", "UTC"),
            "score": pl.Float64,
        },
        orient="row",
    )
    store = fk.FeatureStore(tmp_path / "repo")
    user = fk.Entity("user", join_keys=["user_id"])
    view = fk.FeatureView(
        name="stats",
        entities=[user],
        source=fk.DataFrameSource(rows, created_timestamp_field="created_timestamp"),
        ttl=timedelta(minutes=50),
        freshness_sla=timedelta(minutes=20),
    )
    store.apply([user, view])
    return store


@pytest.fixture
def tiny_reads():
    return pl.DataFrame(
        {
            "user_id": [u for _, u in TINY_READS],
            "event_timestamp": [at(m) for m, _ in TINY_READS],
        }
    )


def written_per_run(result, kind="schedule"):
    mats = result.materializations.filter(pl.col("kind") == kind)
    return mats.select("at", "status", "written").rows()


# -- the tiny stream, by hand -------------------------------------------------------------------


def test_schedule_staleness_statuses_values_and_rows_by_hand(tiny, tiny_reads):
    every = timedelta(minutes=10)
    result = sim.replay(tiny, tiny_reads, features=FEATURES, materialize_every=every)

    # Ticks on the 10-minute grid from 10:00 (at or before the first read, 10:07) to 10:50.
    #   10:00 first run: everything known by then -> user 2's 09:50 row
    #   10:10 user 1's 10:00 row (known 10:05)
    #   10:20, 10:30 nothing new (user 1's 10:20 row is known at 10:32)
    #   10:40 user 1's 10:20 row;  10:50 user 2's 10:10 row (the correction comes at 10:52)
    assert written_per_run(result) == [
        (at(0), "ok", 1),
        (at(10), "ok", 1),
        (at(20), "ok", 0),
        (at(30), "ok", 0),
        (at(40), "ok", 1),
        (at(50), "ok", 1),
    ]
    reads = result.reads
    assert reads["t"].to_list() == [at(m) for m, _ in TINY_READS]
    assert reads["user_id"].to_list() == [u for _, u in TINY_READS]
    expected = pl.DataFrame(
        {
            # 10:07 user 1: its first row is known (10:05) but not materialized until 10:10
            "stats__status": [
                "NOT_FOUND",
                "PRESENT",
                "PRESENT",
                "PRESENT",
                "PRESENT",
                "OUTSIDE_MAX_AGE",  # 10:45 user 2 still has the 09:50 row: 55 min > TTL 50
                "PRESENT",
                "PRESENT",
            ],
            "stats__staleness_s": [None, 17, 15, 35, 45, 55, 35, 45],
            "stats__past_sla": [None, False, False, True, True, True, True, True],
            "score": [None, 5.0, 1.0, 1.0, 5.0, None, 2.0, 6.0],
            # as known at the read time: 10:45 user 2 -> the 10:10 row, known since 10:41
            "score__truth": [1.0, 5.0, 1.0, 2.0, 5.0, 6.0, 2.0, 7.0],
            "matches_truth": [False, True, True, False, True, False, True, False],
            "degraded": [True, False, False, False, False, True, False, False],
        },
        schema_overrides={"stats__staleness_s": pl.Float64},
    ).with_columns(pl.col("stats__staleness_s") * 60)
    assert_frame_equal(reads.select(expected.columns), expected)
    assert reads["stats__event_timestamp"].to_list() == [
        None, at(-10), at(0), at(0), at(-10), at(-10), at(20), at(10)
    ]  # fmt: skip
    assert reads["error"].null_count() == reads.height
    assert (reads["latency_us"] > 0).all()

    summary = result.summary.row(0, named=True)
    assert summary["view"] == "stats@v1"
    assert (summary["present"], summary["not_found"], summary["outside_max_age"]) == (6, 1, 1)
    assert summary["rows_written"] == 4
    assert summary["runs"] == 6
    assert summary["mean_staleness_s"] == pytest.approx(60 * (17 + 15 + 35 + 45 + 55 + 35 + 45) / 7)
    assert summary["share_past_sla"] == pytest.approx(5 / 7)
    assert summary["share_matching_truth"] == pytest.approx(4 / 8)
    assert summary["freshness_sla_s"] == 1200


def test_push_staleness_is_read_time_minus_newest_known_row(tiny, tiny_reads):
    result = sim.replay(tiny, tiny_reads, features=FEATURES, push=True)
    reads = result.reads
    # Pushed as soon as known, so each read sees the newest row known at its time:
    # 10:07 u1 10:00 | u2 09:50 | 10:15 u1 10:00 | 10:35 u1 10:20 | u2 09:50 | 10:45 u2 10:10
    # 10:55 u1 10:20 | u2 10:10 (the correction)
    newest = [0, -10, 0, 20, -10, 10, 20, 10]
    staleness = [m - e for (m, _), e in zip(TINY_READS, newest, strict=True)]
    assert reads["stats__staleness_s"].to_list() == [60.0 * s for s in staleness]
    assert reads["stats__event_timestamp"].to_list() == [at(e) for e in newest]
    assert reads["score"].to_list() == [1.0, 5.0, 1.0, 2.0, 5.0, 6.0, 2.0, 7.0]
    assert reads["matches_truth"].all()
    assert reads["stats__status"].to_list() == ["PRESENT"] * 8
    # The initial state at 10:07 (newest per user known then), then one row per arrival
    # (10:32, 10:41, 10:52) flushed before the next read.
    assert written_per_run(result, "initial") == [(at(7), "ok", 2)]
    assert written_per_run(result, "push") == [
        (at(35), "ok", 1),
        (at(45), "ok", 1),
        (at(55), "ok", 1),
    ]

    sparse = sim.replay(tiny, tiny_reads, features=FEATURES, materialize_every=timedelta(hours=1))
    assert written_per_run(sparse) == [(at(0), "ok", 1)]  # one tick, at 10:00
    assert result.rows_written == 5 > sparse.rows_written == 1
    assert sparse.reads["matches_truth"].sum() < result.reads["matches_truth"].sum()


def test_event_watermark_loses_rows_created_after_their_window(tiny, tiny_reads):
    """watermark="event" reproduces materialize_incremental: a row created after the run that
    covered its event time is never written."""
    every = timedelta(minutes=10)
    result = sim.replay(
        tiny, tiny_reads, features=FEATURES, materialize_every=every, watermark="event"
    )
    # The 10:20 row of user 1 (known 10:32) falls in the window [10:20, 10:30] of the 10:30
    # run, which cannot see it yet; the 10:40 run covers [10:30, 10:40]: it is never written.
    user1 = result.reads.filter(pl.col("user_id") == 1)
    assert user1["stats__event_timestamp"].to_list() == [None, at(0), at(0), at(0)]
    # ... so at 10:55 it still serves the 10:00 row, now older than the TTL
    assert user1["stats__status"][-1] == "OUTSIDE_MAX_AGE"
    assert user1["score__truth"][-1] == 2.0
    view = tiny.get_feature_view("stats")
    for run in result.materializations.iter_rows(named=True):  # same rows as the real function
        rows = latest_rows(view, tiny.repo_path, run["since"], run["at"], known_at=run["at"])
        assert run["rows"] == rows.height, run


def test_store_down_gives_the_fallback_and_retries_materialization(tiny, tiny_reads):
    down = sim.StoreDown(at(30), at(50))  # [10:30, 10:50)
    every = timedelta(minutes=10)
    result = sim.replay(tiny, tiny_reads, features=FEATURES, materialize_every=every, faults=[down])
    # 10:30 had nothing to write (no store call, ok); 10:40 fails; 10:50 retries from the
    # 10:30 watermark and writes both rows known since.
    assert written_per_run(result)[3:] == [
        (at(30), "ok", 0),
        (at(40), "failed", 0),
        (at(50), "ok", 2),
    ]
    failed = result.materializations.filter(pl.col("status") == "failed")
    assert failed["rows"].to_list() == [1]
    assert "StoreDown" in failed["error"][0]
    reads = result.reads
    inside = reads["t"].is_between(at(30), at(50), closed="left")
    assert reads.filter(inside)["stats__status"].to_list() == ["UNAVAILABLE"] * 3
    assert reads.filter(inside)["score"].null_count() == 3
    assert reads.filter(inside)["degraded"].all()
    assert "UNAVAILABLE" not in reads.filter(~inside)["stats__status"].to_list()
    # after the window: the 10:50 retry wrote user 1's 10:20 row and user 2's 10:10 row
    assert reads.filter(pl.col("t") == at(55))["score"].to_list() == [2.0, 6.0]

    defaults = sim.replay(
        tiny,
        tiny_reads,
        features=FEATURES,
        materialize_every=every,
        faults=[down],
        fallback="defaults",
        defaults={"score": -1.0},
    )
    # every read that is not PRESENT gets the default: the outage, NOT_FOUND and too old
    assert defaults.reads["score"].to_list() == [-1.0, 5.0, 1.0, -1.0, -1.0, -1.0, 2.0, 6.0]
    assert defaults.reads["degraded"].to_list() == [
        True,
        False,
        False,
        True,
        True,
        True,
        False,
        False,
    ]

    raised = sim.replay(
        tiny,
        tiny_reads,
        features=FEATURES,
        materialize_every=every,
        faults=[down],
        fallback="raise",
    )
    errors = raised.reads.filter(pl.col("error").is_not_null())
    assert errors["t"].to_list() == [at(35), at(35), at(45)]
    assert "simulated outage" in errors["error"][0]
    assert errors["matches_truth"].null_count() == 3
    assert errors["stats__status"].null_count() == 3
    assert raised.summary["errors"].item() == 3


def test_entity_missing_is_not_found_for_those_keys_only(tiny, tiny_reads):
    every = timedelta(minutes=10)
    base = sim.replay(tiny, tiny_reads, features=FEATURES, materialize_every=every)
    result = sim.replay(
        tiny,
        tiny_reads,
        features=FEATURES,
        materialize_every=every,
        faults=[sim.EntityMissing({"user_id": 2})],
    )
    reads = result.reads
    assert reads.filter(pl.col("user_id") == 2)["stats__status"].to_list() == ["NOT_FOUND"] * 4
    # the offline truth still has them
    assert reads.filter(pl.col("user_id") == 2)["score__truth"].to_list() == [5.0, 5.0, 6.0, 7.0]
    assert_frame_equal(
        reads.filter(pl.col("user_id") == 1).drop("latency_us"),
        base.reads.filter(pl.col("user_id") == 1).drop("latency_us"),
    )
    assert result.rows_written == 2  # user 1's two rows only


def test_stale_data_pauses_the_materializer_then_catches_up(tiny, tiny_reads):
    every = timedelta(minutes=10)
    result = sim.replay(
        tiny,
        tiny_reads,
        features=FEATURES,
        materialize_every=every,
        faults=[sim.StaleData(at(10), at(50), view="stats")],
    )
    # 10:10-10:40 are paused; 10:50 writes everything known since 10:00, newest per user.
    assert written_per_run(result) == [
        (at(0), "ok", 1),
        (at(10), "paused", 0),
        (at(20), "paused", 0),
        (at(30), "paused", 0),
        (at(40), "paused", 0),
        (at(50), "ok", 2),
    ]
    reads = result.reads
    # user 2 keeps its 09:50 row through the window: staleness grows until the TTL cuts it
    user2 = reads.filter(pl.col("user_id") == 2)
    assert user2["stats__staleness_s"].to_list() == [17 * 60.0, 45 * 60.0, 55 * 60.0, 45 * 60.0]
    assert user2["stats__status"].to_list() == ["PRESENT", "PRESENT", "OUTSIDE_MAX_AGE", "PRESENT"]
    assert reads.filter(pl.col("user_id") == 1)["stats__status"].to_list() == [
        "NOT_FOUND", "NOT_FOUND", "NOT_FOUND", "PRESENT"
    ]  # fmt: skip


# -- the sample data ------------------------------------------------------------------------


SAMPLE_FEATURES = [
    "user_stats:total_purchases",
    "user_stats:amount_7d",
    "user_profile:age",
    "merchant_profile:category",
]


@pytest.fixture(scope="module")
def fraud(tmp_path_factory):
    store = fk.FeatureStore(tmp_path_factory.mktemp("fraud") / "repo")
    store.apply(fraud_definitions())
    return store


@pytest.fixture(scope="module")
def week():
    """Six days of transactions from 2026-01-05."""
    events = fraud_entity_rows()
    start = datetime(2026, 1, 5, tzinfo=UTC)
    return events.filter(pl.col("event_timestamp").is_between(start, start + timedelta(days=6)))


def test_push_serves_the_truth_and_a_long_interval_does_not(fraud, week):
    pushed = sim.replay(fraud, week, features=SAMPLE_FEATURES, push=True, read_fraction=0.1)
    assert pushed.reads.height > 500
    assert pushed.reads["matches_truth"].all()
    assert pushed.features["share_matching_truth"].to_list() == [1.0] * 4
    daily = sim.replay(
        fraud,
        week,
        features=SAMPLE_FEATURES,
        materialize_every=timedelta(days=1),
        read_fraction=0.1,
    )
    assert_series_equal(daily.reads["t"], pushed.reads["t"])  # the same sampled reads
    # a snapshot made at 02:00 waits for the next midnight: most of the day it is a day behind
    gaps = {r["feature"]: r["share_matching_truth"] for r in daily.features.iter_rows(named=True)}
    assert gaps["total_purchases"] < 0.5 and gaps["amount_7d"] < 0.5
    assert gaps["category"] == 1.0  # merchants exist before the period and do not change
    assert 0.99 < gaps["age"] < 1  # ... but users who sign up wait for the next midnight
    assert daily.reads["matches_truth"].mean() < 0.5


def test_schedule_serves_what_latest_rows_gives_at_the_last_tick(fraud, week):
    """The in-memory materializer agrees with fskit's own latest_rows at every tick."""
    every = timedelta(hours=6)
    result = sim.replay(
        fraud, week, features=["user_stats:total_purchases"], materialize_every=every,
        read_fraction=0.05,
    )  # fmt: skip
    view = fraud.get_feature_view("user_stats")
    reads = result.reads.with_columns(
        tick=pl.col("t").dt.truncate("6h")  # the last tick at or before each read
    )
    for (tick,), group in reads.group_by("tick"):
        known = latest_rows(view, fraud.repo_path, None, tick, known_at=tick)
        expected = group.select("read_id", "user_id").join(
            known.select("user_id", "event_timestamp", "total_purchases"),
            on="user_id",
            how="left",
        )
        got = group.select(
            "read_id",
            pl.col("user_stats__event_timestamp").alias("event_timestamp"),
            "total_purchases",
        )
        assert_frame_equal(
            got.sort("read_id"),
            expected.sort("read_id").select("read_id", "event_timestamp", "total_purchases"),
        )


def test_push_retries_through_an_outage(tiny, tiny_reads):
    result = sim.replay(
        tiny, tiny_reads, features=FEATURES, push=True, faults=[sim.StoreDown(at(30), at(50))]
    )
    pushes = written_per_run(result, "push")
    # 10:35 and 10:45 reads find pending rows but the store is down; at 10:50 (the end of the
    # outage) both land; the 10:52 correction before the 10:55 reads.
    assert pushes == [
        (at(35), "failed", 0),
        (at(45), "failed", 0),
        (at(50), "ok", 2),
        (at(55), "ok", 1),
    ]
    reads = result.reads
    assert reads["stats__status"].to_list()[3:6] == ["UNAVAILABLE"] * 3
    assert reads.filter(pl.col("t") == at(55))["score"].to_list() == [2.0, 7.0]


def test_stale_data_on_the_sample_grows_staleness_through_the_window(fraud, week):
    start, end = datetime(2026, 1, 7, tzinfo=UTC), datetime(2026, 1, 9, tzinfo=UTC)
    result = sim.replay(
        fraud,
        week,
        features=SAMPLE_FEATURES,
        read_fraction=0.1,
        faults=[sim.StaleData(start, end, view="user_stats")],
    )
    reads = result.reads.filter(pl.col("user_stats__event_timestamp").is_not_null())
    inside = reads.filter(pl.col("t").is_between(start, end, closed="left"))
    # The last snapshot written before the pause is the one stamped Jan 6 (made ~02:00 Jan 6);
    # through the window it ages from one day to three, and past the 2-day TTL on Jan 8 it
    # is not served at all.
    assert inside["user_stats__event_timestamp"].max() == datetime(2026, 1, 6, tzinfo=UTC)
    half_days = (
        inside.group_by(pl.col("t").dt.truncate("12h").alias("half_day"))
        .agg(pl.col("user_stats__staleness_s").mean(), pl.col("user_stats__status").unique())
        .sort("half_day")
    )
    staleness = half_days["user_stats__staleness_s"]
    assert staleness.len() == 4 and staleness.is_sorted()
    assert staleness[-1] > staleness[0] + 24 * 3600
    assert half_days["user_stats__status"].to_list()[-2:] == [["OUTSIDE_MAX_AGE"]] * 2
    assert inside.filter(pl.col("t") >= start + timedelta(hours=4))["user_stats__past_sla"].all()
    after = reads.filter(pl.col("t") >= end + timedelta(hours=4))  # caught up (Jan 9 snapshot)
    assert after["user_stats__event_timestamp"].min() >= datetime(2026, 1, 8, tzinfo=UTC)
    assert (after["user_stats__status"] == "PRESENT").all()
    before = reads.filter(pl.col("t") < start)
    assert before["user_stats__past_sla"].mean() < 0.2
    paused = result.materializations.filter(pl.col("status") == "paused")
    assert set(paused["view"]) == {"user_stats@v1"}
    assert paused.height == 2 * 24 * 4  # every 15-minute tick of the two days
    profile = result.summary.filter(pl.col("view") == "user_profile@v1")
    assert profile["share_matching_truth"].item() == 1.0  # the other views kept running


def test_sweep_longer_intervals_write_fewer_rows_and_serve_staler_values(fraud, week):
    intervals = ["push", timedelta(minutes=15), timedelta(hours=1), timedelta(hours=6),
                 timedelta(days=1), timedelta(days=2)]  # fmt: skip
    calls = []
    result = sim.sweep(
        fraud,
        week,
        features=["user_stats:total_purchases", "user_profile:age"],
        intervals=intervals,
        read_fraction=0.05,
        progress=lambda done, total: calls.append((done, total)),
    )
    table = result.table
    assert table["interval"].unique(maintain_order=True).to_list() == [
        "push", "15m", "1h", "6h", "1d", "2d"
    ]  # fmt: skip
    stats = table.filter(pl.col("view") == "user_stats@v1")
    rows, staleness = stats["rows_written"], stats["mean_staleness_s"]
    assert rows.is_sorted(descending=True) and rows[1] > rows[-1]
    assert staleness.is_sorted() and staleness[-1] > staleness[1] + 12 * 3600
    assert stats["share_past_sla"].is_sorted()
    assert stats["share_matching_truth"].is_sorted(descending=True)
    assert stats["share_matching_truth"][0] == 1.0
    assert calls[-1] == (6 * result.results["push"].reads.height,) * 2
    reads = [r.reads.select("read_id", "t", "user_id") for r in result.results.values()]
    for other in reads[1:]:
        assert_frame_equal(other, reads[0])  # every schedule sees the same reads
    assert "SweepResult" in repr(result) and "<table>" in result._repr_html_()


def _mark_types(spec) -> set[str]:
    found = set()

    def walk(node):
        if isinstance(node, dict):
            mark = node.get("mark")
            if mark is not None:
                found.add(mark if isinstance(mark, str) else mark["type"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    return found


def _fields(spec) -> set[str]:
    found = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("field"), str):
                found.add(node["field"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    return found


def test_charts_are_built_from_small_aggregates(fraud, week):
    down = sim.StoreDown(datetime(2026, 1, 6, 9, tzinfo=UTC), datetime(2026, 1, 6, 12, tzinfo=UTC))
    result = sim.replay(fraud, week, features=SAMPLE_FEATURES, read_fraction=0.05, faults=[down])
    assert result.reads.height > 400
    charts = {
        "latency": (result.latency_chart(), {"bar", "rule"}, {"bin_start", "share"}),
        "staleness": (result.staleness_chart(), {"bar", "rule"}, {"bin_start", "sla"}),
        "timeline": (result.timeline_chart(), {"line", "rect", "rule"}, {"staleness", "share"}),
        "cost": (result.cost_chart(), {"bar"}, {"bucket", "written"}),
        "truth": (result.truth_chart(), {"bar"}, {"feature", "share_matching_truth"}),
        "dashboard": (result.chart(), {"bar", "rule", "line", "rect"}, {"written", "share"}),
    }
    for name, (chart, marks, fields) in charts.items():
        spec = chart.to_dict()
        assert marks <= _mark_types(spec), name
        assert fields <= _fields(spec), name
        sizes = [len(values) for values in spec.get("datasets", {}).values()]
        assert sizes and max(sizes) <= 400, (name, sizes)

    sweep = sim.sweep(
        fraud, week, features=["user_stats:total_purchases"], read_fraction=0.02,
        intervals=[timedelta(hours=1), timedelta(days=1)],
    )  # fmt: skip
    spec = sweep.chart().to_dict()
    assert {"bar", "line"} <= _mark_types(spec)
    assert {"rows_written", "staleness", "share_past_sla", "interval"} <= _fields(spec)
    assert max(len(v) for v in spec["datasets"].values()) == 2  # one row per interval


def test_repr_and_html_tell_what_happened(tiny, tiny_reads):
    result = sim.replay(
        tiny,
        tiny_reads,
        features=FEATURES,
        materialize_every=timedelta(minutes=10),
        faults=[sim.StoreDown(at(30), at(50))],
    )
    text = repr(result)
    assert text.startswith("SimulationResult: 8 reads")
    assert "materialize every 10m" in text
    assert "stats@v1" in text and "3 unavailable" in text and "1 failed" in text
    assert "StoreDown" in text
    page = result._repr_html_()
    assert "<table>" in page and "stats@v1" in page


def test_on_demand_and_stream_views(tmp_path):
    t0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
    events = pl.DataFrame(
        {
            "user_id": [1, 1, 1],
            "event_timestamp": [t0, t0 + timedelta(minutes=20), t0 + timedelta(minutes=22)],
            "amount": [10.0, 30.0, -5.0],
        }
    )
    user = fk.Entity("user", join_keys=["user_id"])
    txn = fk.StreamFeatureView(
        name="txn",
        entities=[user],
        source=events,
        filter=pl.col("amount") > 0,
        aggregations=[fk.Aggregation("amount", "mean", timedelta(hours=1))],
    )
    ratio = fk.OnDemandFeatureView(
        name="ratio",
        sources=["txn:amount_mean_1h"],
        request_schema=[fk.Field("amount", pl.Float64)],
        features={"amount_ratio": pl.col("amount") / pl.col("amount_mean_1h")},
    )
    store = fk.FeatureStore(tmp_path / "repo")
    store.apply([user, txn, ratio])
    reads = pl.DataFrame(
        {
            "user_id": [1, 1],
            "event_timestamp": [t0 + timedelta(minutes=5), t0 + timedelta(minutes=25)],
            "amount": [20.0, 40.0],
        }
    )
    features = ["txn:amount_mean_1h", "ratio:amount_ratio"]
    pushed = sim.replay(store, reads, features=features, push=True)
    assert pushed.reads["amount_mean_1h"].to_list() == [10.0, 20.0]
    assert pushed.reads["amount_ratio"].to_list() == [2.0, 2.0]
    assert pushed.reads["matches_truth"].all()
    assert pushed.reads["txn__staleness_s"].to_list() == [300.0, 300.0]

    # every 30 minutes from 10:00: the 10:20 event is not online at 10:25
    scheduled = sim.replay(store, reads, features=features, materialize_every=timedelta(minutes=30))
    assert scheduled.reads["amount_mean_1h"].to_list() == [10.0, 10.0]
    assert scheduled.reads["amount_ratio"].to_list() == [2.0, 4.0]
    assert scheduled.reads["amount_ratio__truth"].to_list() == [2.0, 2.0]
    assert scheduled.reads["txn__staleness_s"].to_list() == [300.0, 1500.0]
    assert scheduled.reads["matches_truth"].to_list() == [True, False]


def _snapshot(path: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(path.rglob("*"))
    }


def test_the_real_online_store_and_repo_are_untouched(tmp_path, week, monkeypatch):
    store = fk.FeatureStore(tmp_path / "repo")
    store.apply(fraud_definitions())
    store.materialize(None, datetime(2026, 1, 6, tzinfo=UTC))
    real = store.get_online_features(["user_stats:total_purchases"], [{"user_id": 3}])
    store.close()
    before = _snapshot(store.repo_path)
    marks = json.loads((store.repo_path / "watermarks.json").read_text())
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    sim.replay(
        store,
        week,
        features=SAMPLE_FEATURES,
        read_fraction=0.05,
        faults=[sim.StoreDown(datetime(2026, 1, 7, tzinfo=UTC), datetime(2026, 1, 8, tzinfo=UTC))],
    )
    sim.replay(store, week, features=SAMPLE_FEATURES, read_fraction=0.05, push=True)

    assert _snapshot(store.repo_path) == before
    assert json.loads((store.repo_path / "watermarks.json").read_text()) == marks
    assert os.listdir(scratch) == []  # the simulation's own store is deleted
    again = fk.FeatureStore(store.repo_path)
    assert_frame_equal(again.get_online_features(["user_stats:total_purchases"], [{"user_id": 3}])
                       .drop("user_stats__staleness"), real.drop("user_stats__staleness"))  # fmt: skip
    again.close()


def test_progress_and_sampling(tiny, tiny_reads):
    calls = []
    result = sim.replay(
        tiny, tiny_reads, features=FEATURES, progress=lambda d, t: calls.append((d, t))
    )
    assert calls[-1] == (8, 8) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    big = pl.concat([tiny_reads] * 50)
    half = sim.replay(tiny, big, features=FEATURES, read_fraction=0.5, seed=1)
    again = sim.replay(tiny, big, features=FEATURES, read_fraction=0.5, seed=1)
    assert 150 < half.reads.height < 250
    assert_series_equal(half.reads["t"], again.reads["t"])
    assert result.settings["reads"] == 8 and half.settings["events"] == 400


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"push": True, "materialize_every": timedelta(hours=1)},
            DefinitionError,
            "drop materialize_every",
        ),
        ({"fallback": "zero"}, DefinitionError, "'null', 'defaults' or 'raise'"),
        ({"fallback": "defaults"}, DefinitionError, "needs defaults="),
        ({"defaults": {"score": 0.0}}, DefinitionError, "fallback='defaults'"),
        ({"fallback": "defaults", "defaults": {"scor": 0.0}}, DefinitionError, "not requested"),
        ({"fallback": "defaults", "defaults": {"score": "x"}}, DefinitionError, "does not fit"),
        ({"read_fraction": 0}, DefinitionError, r"\(0, 1\]"),
        ({"watermark": "arrival"}, DefinitionError, "'created' or 'event'"),
        (
            {"materialize_every": timedelta(seconds=1), "start": T - timedelta(days=30)},
            DefinitionError,
            "at most 200,000",
        ),  # fmt: skip
        ({"faults": [sim.EntityMissing({"account": 1})]}, DefinitionError, "not the join keys"),
        ({"faults": [sim.StaleData(T, at(5), view="nope")]}, DefinitionError, "do not read"),
        ({"faults": ["down"]}, DefinitionError, "StoreDown, StaleData or EntityMissing"),
        ({"timestamp_column": "ts"}, EntityFrameError, "lack column"),
    ],
)
def test_bad_arguments_say_what_to_do(tiny, tiny_reads, kwargs, error, match):
    with pytest.raises(error, match=match):
        sim.replay(tiny, tiny_reads, features=FEATURES, **kwargs)


def test_fault_definitions_are_checked():
    with pytest.raises(DefinitionError, match="before end"):
        sim.StoreDown(at(10), at(5))
    with pytest.raises(DefinitionError, match="must be a datetime"):
        sim.StaleData("10:00", at(5))
    with pytest.raises(DefinitionError, match="same join keys"):
        sim.EntityMissing([{"user_id": 1}, {"account": 2}])
    naive = sim.StoreDown(datetime(2026, 1, 1), datetime(2026, 1, 2))
    assert naive.start == datetime(2026, 1, 1, tzinfo=UTC)
    assert sim.EntityMissing({"user_id": [1, 2]}).keys == {"user_id": (1, 2)}
