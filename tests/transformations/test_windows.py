"""Windowed aggregations: batch == brute force, and online (materialized or pushed) == batch."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fskit as fk
from fskit.transformations import Aggregation, StreamFeatureView

T0 = datetime(2026, 3, 1, tzinfo=UTC)
WINDOWS = (timedelta(minutes=10), timedelta(hours=1))
FUNCTIONS = ("count", "sum", "mean", "min", "max", "std")
FILTER = (pl.col("amount") > 0) & ~pl.col("is_duplicate")
FEATURES = [
    f"txn:amount_{f}_{'10m' if w == WINDOWS[0] else '1h'}" for w in WINDOWS for f in FUNCTIONS
]
SCHEMA = {
    "user_id": pl.Int64,
    "event_timestamp": pl.Datetime("us", "UTC"),
    "amount": pl.Float64,
    "is_duplicate": pl.Boolean,
}


def _view(source) -> StreamFeatureView:
    user = fk.Entity("user", join_keys=["user_id"])
    return StreamFeatureView(
        name="txn",
        entities=[user],
        source=source,
        filter=FILTER,
        aggregations=[Aggregation("amount", f, w) for w in WINDOWS for f in FUNCTIONS],
    )


def _store(path, events: list[tuple]) -> fk.FeatureStore:
    frame = pl.DataFrame(events, schema=SCHEMA, orient="row")
    store = fk.FeatureStore(path)
    view = _view(fk.DataFrameSource(frame))
    store.apply([view.entities[0], view])
    return store


def brute_force(events, user, t, window, function):
    """Aggregate by hand over the events of ``user`` in (t - window, t] that pass the filter."""
    values = [
        amount
        for u, ts, amount, dup in events
        if u == user and t - window < ts <= t and amount is not None and amount > 0 and not dup
    ]
    if function == "count":
        return len(values)
    if function == "sum":
        return float(sum(values))
    if not values:
        return None
    if function == "std":
        return statistics.stdev(values) if len(values) > 1 else None
    return {"mean": statistics.fmean, "min": min, "max": max}[function](values)


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


event = st.tuples(
    st.integers(1, 3),
    st.integers(0, 120).map(lambda m: T0 + timedelta(minutes=m)),
    st.one_of(st.none(), st.sampled_from([-5.0, 0.0]), st.floats(0.5, 500, allow_nan=False)),
    st.booleans(),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    events=st.lists(event, max_size=30),
    queries=st.lists(
        st.tuples(st.integers(0, 4), st.integers(-5, 140).map(lambda m: T0 + timedelta(minutes=m))),
        min_size=1,
        max_size=10,
    ),
)
def test_batch_aggregates_match_brute_force(tmp_path_factory, events, queries):
    store = _store(tmp_path_factory.mktemp("repo"), events)
    entity_df = pl.DataFrame(
        {"user_id": [u for u, _ in queries], "event_timestamp": [t for _, t in queries]},
        schema={"user_id": pl.Int64, "event_timestamp": pl.Datetime("us", "UTC")},
    )
    out = store.get_historical_features(entity_df, FEATURES)
    for i, (user, t) in enumerate(queries):
        for window in WINDOWS:
            for function in FUNCTIONS:
                name = f"amount_{function}_{'10m' if window == WINDOWS[0] else '1h'}"
                want = brute_force(events, user, t, window, function)
                got = out[name][i]
                assert _close(got, want), (name, user, t, got, want)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    events=st.lists(event, min_size=1, max_size=25),
    read_minute=st.integers(60, 150),
    chunks=st.integers(1, 4),
)
def test_online_paths_agree_with_batch(tmp_path_factory, events, read_minute, chunks):
    """The same events, by materialization or by pushes in chunks: same numbers as training."""
    at = T0 + timedelta(minutes=read_minute)
    users = [0, 1, 2, 3]
    entity_df = pl.DataFrame(
        {"user_id": users, "event_timestamp": [at] * len(users)},
        schema={"user_id": pl.Int64, "event_timestamp": pl.Datetime("us", "UTC")},
    )

    materialized = _store(tmp_path_factory.mktemp("m"), events)
    materialized.materialize(None, at)
    offline = materialized.get_historical_features(entity_df, FEATURES)
    online_m = materialized.get_online_features(FEATURES, {"user_id": users}, now=at)

    pushed = _store(tmp_path_factory.mktemp("p"), [])
    # a stream up to `at`: an online store answers "now", after the events it was sent
    frame = pl.DataFrame(events, schema=SCHEMA, orient="row").filter(
        pl.col("event_timestamp") <= at
    )
    size = max(1, math.ceil(frame.height / chunks))
    for offset in range(0, frame.height, size):
        pushed.push("txn", frame.slice(offset, size), to="online")
    online_p = pushed.get_online_features(FEATURES, {"user_id": users}, now=at)

    for name in (f.split(":")[1] for f in FEATURES):
        for i in range(len(users)):
            want = offline[name][i]
            assert _close(online_m[name][i], want), ("materialized", name, users[i])
            assert _close(online_p[name][i], want), ("pushed", name, users[i])


def test_push_appends_to_the_offline_store_too(tmp_path):
    store = _store(tmp_path, [(1, T0, 10.0, False)])
    store.push(
        "txn",
        [
            {
                "user_id": 1,
                "event_timestamp": T0 + timedelta(minutes=5),
                "amount": 30.0,
                "is_duplicate": False,
            }
        ],
    )
    at = T0 + timedelta(minutes=6)
    training = store.get_historical_features(
        pl.DataFrame({"user_id": [1], "event_timestamp": [at]}), ["txn:amount_sum_10m"]
    )
    online = store.get_online_features(["txn:amount_sum_10m"], [{"user_id": 1}], now=at)
    assert training["amount_sum_10m"].to_list() == [40.0]
    assert online["amount_sum_10m"].to_list() == [30.0]  # the materialized event is not online
    store.materialize(None, at)
    again = store.get_online_features(["txn:amount_sum_10m"], [{"user_id": 1}], now=at)
    assert again["amount_sum_10m"].to_list() == [40.0]


def test_changed_filter_or_window_needs_a_new_version(tmp_path):
    store = _store(tmp_path, [(1, T0, 10.0, False)])
    applied = store.get_feature_view("txn")
    changed_filter = StreamFeatureView(
        name="txn",
        entities=applied.entities,
        source=applied.source,
        filter=pl.col("amount") > 0,  # forgot the duplicates
        aggregations=applied.aggregations,
    )
    with pytest.raises(fk.VersionConflictError, match="filter"):
        store.apply([changed_filter])
    changed_window = StreamFeatureView(
        name="txn",
        entities=applied.entities,
        source=applied.source,
        filter=FILTER,
        aggregations=[Aggregation("amount", "sum", timedelta(minutes=11))],
    )
    with pytest.raises(fk.VersionConflictError, match="set version=2"):
        store.apply([changed_window])
    store.apply(
        [
            StreamFeatureView(
                name="txn",
                version=2,
                entities=applied.entities,
                source=applied.source,
                filter=pl.col("amount") > 0,
                aggregations=applied.aggregations,
            )
        ]
    )
    assert store.registry.versions("txn") == [1, 2]


def test_filter_must_run_on_the_source(tmp_path):
    store = fk.FeatureStore(tmp_path)
    frame = pl.DataFrame([(1, T0, 10.0, False)], schema=SCHEMA, orient="row")
    user = fk.Entity("user", join_keys=["user_id"])
    view = StreamFeatureView(
        name="txn",
        entities=[user],
        source=frame,
        filter=pl.col("no_such_column") > 0,
        aggregations=[Aggregation("amount", "sum", timedelta(hours=1))],
    )
    with pytest.raises(fk.SchemaError, match="filter"):
        store.apply([user, view])
    assert not (tmp_path / "registry.json").exists()
