"""FeatureStore's online side: materialize, read, push — on real diskcache and real Redis.

The central property: after materializing up to ``T``, reading online at ``now=T`` gives, for
every entity, exactly what the offline point-in-time join gives for an entity row at ``T``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import fskit as fk
from fskit.errors import SchemaError, StoreUnavailableError

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _frame(rows):
    return pl.DataFrame(
        rows,
        schema={
            "user_id": pl.Int64,
            "event_timestamp": pl.Datetime("us", "UTC"),
            "created_timestamp": pl.Datetime("us", "UTC"),
            "score": pl.Float64,
            "count": pl.Int64,
        },
        orient="row",
    )


def _store(path, rows, *, ttl=None, online_store=None, version=1):
    store = fk.FeatureStore(path, online_store=online_store)
    user = fk.Entity("user", join_keys=["user_id"])
    view = fk.FeatureView(
        name="stats",
        entities=[user],
        source=fk.DataFrameSource(_frame(rows), created_timestamp_field="created_timestamp"),
        ttl=ttl,
        version=version,
        freshness_sla=timedelta(minutes=5),
    )
    store.apply([user, view])
    return store


FEATURES = ["stats:score", "stats:count"]


@pytest.fixture(params=["diskcache", "redis"])
def online_store_config(request):
    """A factory of online store configs: the embedded default, or the real Redis server."""
    if request.param == "diskcache":
        return lambda path: None
    url = request.getfixturevalue("redis_server")
    return lambda path: {"type": "redis", "url": url, "namespace": f"t{uuid.uuid4().hex}"}


row = st.tuples(
    st.integers(1, 5),  # user
    st.integers(0, 30),  # event minute
    st.one_of(st.none(), st.integers(0, 10)),  # created delay
    st.one_of(st.none(), st.floats(-5, 5, allow_nan=False)),
    st.integers(0, 9),
)


def _rows(raw):
    return [
        (
            u,
            T0 + timedelta(minutes=m),
            None if d is None else T0 + timedelta(minutes=m + d),
            score,
            count,
        )
        for u, m, d, score, count in raw
    ]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    raw=st.lists(row, min_size=1, max_size=30),
    read_minute=st.integers(0, 40),
    splits=st.lists(st.integers(0, 40), max_size=3),
    ttl_minutes=st.one_of(st.none(), st.integers(1, 20)),
)
def test_online_read_equals_point_in_time_truth(
    online_store_config, tmp_path_factory, raw, read_minute, splits, ttl_minutes
):
    """Materialized in several incremental windows, then read at T: equals the PIT join at T."""
    ttl = None if ttl_minutes is None else timedelta(minutes=ttl_minutes)
    path = tmp_path_factory.mktemp("repo")
    store = _store(path, _rows(raw), ttl=ttl, online_store=online_store_config(path))
    at = T0 + timedelta(minutes=read_minute)
    for minute in sorted(m for m in splits if m < read_minute):
        store.materialize_incremental(T0 + timedelta(minutes=minute))
    store.materialize_incremental(at)

    users = list(range(0, 7))  # 0 and 6 never have rows
    online = store.get_online_features(FEATURES, [{"user_id": u} for u in users], now=at)
    offline = store.get_historical_features(
        pl.DataFrame({"user_id": users, "event_timestamp": [at] * len(users)}), FEATURES
    )
    assert_frame_equal(online.select("user_id", "score", "count"), offline.drop("event_timestamp"))
    present = online["stats__status"] == "PRESENT"
    assert (online.filter(~present)["score"].is_null()).all()
    assert (
        online.filter(present)["stats__event_timestamp"].max() is None
        or (online.filter(present)["stats__event_timestamp"] <= at).all()
    )
    store.close()


def test_statuses_staleness_and_ttl(online_store_config, tmp_path):
    rows = [
        (1, T0, None, 1.0, 1),
        (2, T0 + timedelta(minutes=50), None, 2.0, 2),
    ]
    store = _store(
        tmp_path, rows, ttl=timedelta(minutes=30), online_store=online_store_config(tmp_path)
    )
    store.materialize(None, T0 + timedelta(hours=1))
    now = T0 + timedelta(hours=1)
    out = store.get_online_features(FEATURES, {"user_id": [1, 2, 3, None]}, now=now)
    assert out["stats__status"].to_list() == [
        "OUTSIDE_MAX_AGE",
        "PRESENT",
        "NOT_FOUND",
        "NOT_FOUND",
    ]
    assert out["score"].to_list() == [None, 2.0, None, None]
    assert out["stats__staleness"].to_list() == [
        timedelta(hours=1),
        timedelta(minutes=10),
        None,
        None,
    ]
    assert out["stats__event_timestamp"][1] == T0 + timedelta(minutes=50)
    as_dict = store.get_online_features(FEATURES, [{"user_id": 2}], now=now, return_type="dict")
    assert as_dict["score"] == [2.0] and as_dict["stats__status"] == ["PRESENT"]


def test_versions_coexist_online(online_store_config, tmp_path):
    rows_v1 = [(1, T0, None, 1.0, 1)]
    store = _store(tmp_path, rows_v1, online_store=online_store_config(tmp_path))
    user = store.get_entity("user")
    v2 = fk.FeatureView(
        name="stats",
        version=2,
        entities=[user],
        source=fk.DataFrameSource(
            _frame([(1, T0, None, 99.0, 9)]), created_timestamp_field="created_timestamp"
        ),
    )
    store.apply([v2])
    store.materialize(None, T0 + timedelta(minutes=1))
    out = store.get_online_features(
        ["stats@v1:score", "stats@v2:score"],
        [{"user_id": 1}],
        full_feature_names=True,
        now=T0 + timedelta(minutes=1),
    )
    assert out["stats_v1__score"].to_list() == [1.0]
    assert out["stats_v2__score"].to_list() == [99.0]
    latest = store.get_online_features(["stats:score"], [{"user_id": 1}], now=T0)
    assert latest["score"].to_list() == [99.0]


def test_watermark_log_and_incremental_windows(tmp_path):
    rows = [(1, T0, None, 1.0, 1), (1, T0 + timedelta(hours=2), None, 2.0, 2)]
    store = _store(tmp_path, rows)
    first = store.materialize_incremental(T0 + timedelta(hours=1))
    assert [(r.view, r.rows, r.status) for r in first] == [("stats@v1", 1, "ok")]
    assert store.watermarks() == {"stats@v1": T0 + timedelta(hours=1)}
    second = store.materialize_incremental(T0 + timedelta(hours=3))
    assert second[0].start == T0 + timedelta(hours=1) and second[0].rows == 1
    log = store.materialization_log()
    assert log["rows"].to_list() == [1, 1] and log["status"].to_list() == ["ok", "ok"]
    out = store.get_online_features(["stats:score"], [{"user_id": 1}], now=T0 + timedelta(hours=3))
    assert out["score"].to_list() == [2.0]


def test_an_older_window_never_overwrites_newer_values(tmp_path):
    rows = [(1, T0, None, 1.0, 1), (1, T0 + timedelta(hours=2), None, 2.0, 2)]
    store = _store(tmp_path, rows)
    store.materialize(None, T0 + timedelta(hours=3))
    store.materialize(None, T0 + timedelta(hours=1))  # a late backfill of an old window
    out = store.get_online_features(["stats:score"], [{"user_id": 1}], now=T0 + timedelta(hours=3))
    assert out["score"].to_list() == [2.0]


def test_push_reaches_online_and_offline(online_store_config, tmp_path):
    store = _store(tmp_path, [(1, T0, None, 1.0, 1)], online_store=online_store_config(tmp_path))
    store.materialize(None, T0)
    later = T0 + timedelta(minutes=5)
    n = store.push(
        "stats",
        [
            {"user_id": 1, "event_timestamp": later, "score": 5.0, "count": 5},
            {"user_id": 7, "event_timestamp": later, "score": 7.0, "count": 7},
        ],
    )
    assert n == 2
    online = store.get_online_features(FEATURES, [{"user_id": 1}, {"user_id": 7}], now=later)
    assert online["score"].to_list() == [5.0, 7.0]
    # the same rows are now in the offline store: training sees what serving saw
    offline = store.get_historical_features(
        pl.DataFrame({"user_id": [1, 7], "event_timestamp": [later, later]}), FEATURES
    )
    assert offline["score"].to_list() == [5.0, 7.0]
    # an out-of-order (older) push does not overwrite the newer online value
    store.push(
        "stats",
        pl.DataFrame(
            {
                "user_id": [1],
                "event_timestamp": [T0 + timedelta(minutes=1)],
                "score": [-1.0],
                "count": [0],
            }
        ),
    )
    again = store.get_online_features(FEATURES, [{"user_id": 1}], now=later)
    assert again["score"].to_list() == [5.0]


def test_bad_push_writes_nothing(tmp_path):
    store = _store(tmp_path, [(1, T0, None, 1.0, 1)])
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "online" not in p.parts)
    with pytest.raises(SchemaError, match="lack column"):
        store.push("stats", [{"user_id": 1, "event_timestamp": T0, "score": 1.0}])
    with pytest.raises(SchemaError, match="dtypes"):
        store.push("stats", [{"user_id": "x", "event_timestamp": T0, "score": 1.0, "count": 1}])
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "online" not in p.parts)
    assert before == after
    out = store.get_online_features(FEATURES, [{"user_id": 1}], now=T0)
    assert out["stats__status"].to_list() == ["NOT_FOUND"]


def test_store_down_raises_or_answers_nulls_by_configuration(tmp_path):
    store = _store(
        tmp_path,
        [(1, T0, None, 1.0, 1)],
        online_store={"type": "redis", "url": "redis://127.0.0.1:9/0"},
    )
    with pytest.raises(StoreUnavailableError):
        store.get_online_features(FEATURES, [{"user_id": 1}], now=T0)
    out = store.get_online_features(FEATURES, [{"user_id": 1}], now=T0, on_unavailable="null")
    assert out["stats__status"].to_list() == ["UNAVAILABLE"]
    assert out["score"].to_list() == [None]


def test_online_store_config_is_shared_through_the_repo(tmp_path):
    fk.FeatureStore(tmp_path, online_store={"type": "redis", "url": "redis://127.0.0.1:6399/0"})
    assert fk.FeatureStore(tmp_path).online_store_config["type"] == "redis"


def test_schedule_runs_retries_and_never_advances_on_failure(tmp_path):
    store = _store(tmp_path, [(1, T0, None, 1.0, 1)])
    clock = iter([T0 + timedelta(minutes=1), T0 + timedelta(minutes=2), T0 + timedelta(minutes=3)])
    schedule = fk.materialization.MaterializationSchedule(
        store, timedelta(seconds=30), clock=lambda: next(clock)
    )
    assert [r.status for r in schedule.tick()] == ["ok"]
    assert store.watermarks()["stats@v1"] == T0 + timedelta(minutes=1)
    data = tmp_path / "offline" / "stats" / "v1.parquet"
    hidden = data.with_suffix(".hidden")
    data.rename(hidden)  # the source disappears: the next run fails
    assert schedule.tick() == [] and len(schedule.errors) == 1
    assert store.watermarks()["stats@v1"] == T0 + timedelta(minutes=1)
    hidden.rename(data)
    assert [r.status for r in schedule.tick()] == ["ok"]
    assert store.watermarks()["stats@v1"] == T0 + timedelta(minutes=3)
    log = store.materialization_log()
    assert log["status"].to_list() == ["ok", "failed", "ok"]


def test_background_schedule_materializes_until_stopped(tmp_path):
    store = _store(tmp_path, [(1, T0, None, 1.0, 1)])
    schedule = store.schedule_materialization(timedelta(milliseconds=50))
    try:
        deadline = datetime.now() + timedelta(seconds=10)
        while len(schedule.runs) < 2 and datetime.now() < deadline:
            import time

            time.sleep(0.02)
    finally:
        schedule.stop()
    assert not schedule.running
    assert len(schedule.runs) >= 2 and all(r.status == "ok" for r in schedule.runs)
    out = store.get_online_features(["stats:score"], [{"user_id": 1}], now=T0)
    assert out["score"].to_list() == [1.0]


def test_incremental_runs_pick_up_rows_that_arrive_late(tmp_path):
    """A snapshot stamped at T0 but created 3 h later must not fall between two runs."""
    late = (1, T0, T0 + timedelta(hours=3), 5.0, 5)
    store = _store(tmp_path, [late])
    first = store.materialize_incremental(T0 + timedelta(hours=1), known_at=T0 + timedelta(hours=1))
    assert first[0].rows == 0  # not created yet at the first run
    second = store.materialize_incremental(
        T0 + timedelta(hours=4), known_at=T0 + timedelta(hours=4)
    )
    assert second[0].rows == 1 and second[0].start == T0 + timedelta(hours=1)
    out = store.get_online_features(["stats:score"], [{"user_id": 1}], now=T0 + timedelta(hours=4))
    assert out["score"].to_list() == [5.0]
