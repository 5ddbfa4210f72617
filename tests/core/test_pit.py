"""Point-in-time joins against a brute-force reference (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import fskit as fk

T0 = datetime(2026, 3, 1, tzinfo=UTC)
ZONES = [None, "UTC", "Europe/Amsterdam", "America/New_York", "Asia/Kolkata"]


def _stamp(minutes: int, zone: str | None) -> datetime:
    instant = T0 + timedelta(minutes=minutes)
    if zone is None:
        return instant.replace(tzinfo=None)  # naive means UTC
    return instant.astimezone(ZoneInfo(zone))


def _instant(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def brute_force(entity_rows, feature_rows, *, ttl, as_known_at, n_features):
    """For each entity row: scan every feature row and keep the best visible one."""
    out = []
    for e in entity_rows:
        t = _instant(e["event_timestamp"])
        best, best_rank = None, None
        for i, f in enumerate(feature_rows):
            ts, created = _instant(f["event_timestamp"]), _instant(f["created_timestamp"])
            if f["user_id"] != e["user_id"] or ts is None or ts > t:
                continue
            if ttl is not None and ts < t - ttl:
                continue
            if as_known_at and created is not None and created > t:
                continue
            rank = (ts, created is not None, created or ts, i)
            if best_rank is None or rank > best_rank:
                best, best_rank = f, rank
        out.append([None if best is None else best[f"f{j}"] for j in range(n_features)])
    return out


minutes = st.integers(0, 20)
feature_row = st.fixed_dictionaries(
    {
        "user_id": st.integers(1, 4),
        "event": minutes,
        "created_delay": st.one_of(st.none(), st.integers(-8, 15)),
        "f0": st.one_of(st.none(), st.integers(-5, 5)),
        "f1": st.one_of(st.none(), st.floats(-10, 10, allow_nan=False)),
    }
)
entity_row = st.fixed_dictionaries(
    {"user_id": st.integers(0, 5), "event": st.integers(-2, 24), "label": st.integers(0, 1)}
)


def _build(tmp_path, feature_rows, zone_features, ttl, with_created=True):
    frame = pl.DataFrame(
        {
            "user_id": [r["user_id"] for r in feature_rows],
            "event_timestamp": [r["event_timestamp"] for r in feature_rows],
            "created_timestamp": [r["created_timestamp"] for r in feature_rows],
            "f0": [r["f0"] for r in feature_rows],
            "f1": [r["f1"] for r in feature_rows],
        },
        schema={
            "user_id": pl.Int64,
            "event_timestamp": pl.Datetime("us", zone_features),
            "created_timestamp": pl.Datetime("us", zone_features),
            "f0": pl.Int64,
            "f1": pl.Float64,
        },
    )
    store = fk.FeatureStore(tmp_path)
    user = fk.Entity("user", join_keys=["user_id"])
    view = fk.FeatureView(
        name="stats",
        entities=[user],
        source=fk.DataFrameSource(
            frame,
            timestamp_field="event_timestamp",
            created_timestamp_field="created_timestamp" if with_created else None,
        ),
        schema=[fk.Field("f0", pl.Int64), fk.Field("f1", pl.Float64)],
        ttl=ttl,
    )
    store.apply([user, view])
    return store


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    features=st.lists(feature_row, max_size=25),
    entities=st.lists(entity_row, min_size=1, max_size=15),
    ttl_minutes=st.one_of(st.none(), st.integers(1, 10)),
    zone_features=st.sampled_from(ZONES),
    zone_entities=st.sampled_from(ZONES),
    as_known_at=st.booleans(),
)
def test_point_in_time_join_matches_brute_force(
    tmp_path_factory, features, entities, ttl_minutes, zone_features, zone_entities, as_known_at
):
    feature_rows = [
        {
            **r,
            "event_timestamp": _stamp(r["event"], zone_features),
            "created_timestamp": None
            if r["created_delay"] is None
            else _stamp(r["event"] + r["created_delay"], zone_features),
        }
        for r in features
    ]
    entity_rows = [{**e, "event_timestamp": _stamp(e["event"], zone_entities)} for e in entities]
    ttl = None if ttl_minutes is None else timedelta(minutes=ttl_minutes)
    store = _build(tmp_path_factory.mktemp("repo"), feature_rows, zone_features, ttl)

    entity_df = pl.DataFrame(
        {
            "user_id": [e["user_id"] for e in entity_rows],
            "event_timestamp": [e["event_timestamp"] for e in entity_rows],
            "label": [e["label"] for e in entity_rows],
        },
        schema={
            "user_id": pl.Int64,
            "event_timestamp": pl.Datetime("us", zone_entities),
            "label": pl.Int64,
        },
    )
    got = store.get_historical_features(
        entity_df, ["stats:f0", "stats:f1"], as_known_at=as_known_at
    )
    want = brute_force(entity_rows, feature_rows, ttl=ttl, as_known_at=as_known_at, n_features=2)
    expected = entity_df.with_columns(
        pl.Series("f0", [w[0] for w in want], dtype=pl.Int64),
        pl.Series("f1", [w[1] for w in want], dtype=pl.Float64),
    )
    assert_frame_equal(got, expected)


def test_ties_on_event_time_go_to_the_latest_created(tmp_path):
    t = datetime(2026, 1, 1, 12)
    rows = [
        {
            "user_id": 1,
            "event_timestamp": t,
            "created_timestamp": t + timedelta(hours=5),
            "f0": 2,
            "f1": 2.0,
        },
        {
            "user_id": 1,
            "event_timestamp": t,
            "created_timestamp": t + timedelta(hours=1),
            "f0": 1,
            "f1": 1.0,
        },
        {"user_id": 1, "event_timestamp": t, "created_timestamp": None, "f0": 0, "f1": 0.0},
    ]
    store = _build(tmp_path, rows, None, None)
    entity_df = pl.DataFrame({"user_id": [1, 1], "event_timestamp": [t, t + timedelta(hours=2)]})
    out = store.get_historical_features(entity_df, ["stats:f0"])
    assert out["f0"].to_list() == [2, 2]
    # as known at t: neither correction exists yet, only the row without a created stamp
    known = store.get_historical_features(entity_df, ["stats:f0"], as_known_at=True)
    assert known["f0"].to_list() == [0, 1]


def test_ttl_bounds_are_inclusive(tmp_path):
    t = datetime(2026, 1, 1)
    rows = [{"user_id": 1, "event_timestamp": t, "created_timestamp": t, "f0": 7, "f1": 1.0}]
    store = _build(tmp_path, rows, None, timedelta(hours=1))
    entity_df = pl.DataFrame(
        {
            "user_id": [1, 1, 1, 1],
            "event_timestamp": [
                t - timedelta(microseconds=1),
                t,
                t + timedelta(hours=1),
                t + timedelta(hours=1, microseconds=1),
            ],
        }
    )
    out = store.get_historical_features(entity_df, ["stats:f0"])
    assert out["f0"].to_list() == [None, 7, 7, None]


def test_order_duplicates_and_extra_columns_are_kept(tmp_path):
    t = datetime(2026, 1, 1)
    rows = [
        {
            "user_id": u,
            "event_timestamp": t + timedelta(hours=h),
            "created_timestamp": None,
            "f0": u * 10 + h,
            "f1": None,
        }
        for u in (1, 2)
        for h in range(3)
    ]
    store = _build(tmp_path, rows, None, None)
    entity_df = pl.DataFrame(
        {
            "user_id": [2, 1, 2, 2, 1],
            "event_timestamp": [t + timedelta(hours=h) for h in (2, 0, 0, 2, 9)],
            "is_fraud": [1, 0, 0, 1, 0],
            "note": ["a", "b", "c", "d", "e"],
        }
    )
    out = store.get_historical_features(entity_df, ["stats:f0", "stats:f1"])
    assert out.columns == ["user_id", "event_timestamp", "is_fraud", "note", "f0", "f1"]
    assert out["note"].to_list() == ["a", "b", "c", "d", "e"]
    assert out["f0"].to_list() == [22, 10, 20, 22, 12]
    assert out["f1"].null_count() == 5


def test_several_views_each_with_its_own_ttl(tmp_path):
    t = datetime(2026, 1, 1)
    user = fk.Entity("user", join_keys=["user_id"])
    fast = pl.DataFrame({"user_id": [1], "event_timestamp": [t], "clicks": [5]})
    slow = pl.DataFrame({"user_id": [1], "event_timestamp": [t], "age": [40]})
    store = fk.FeatureStore(tmp_path)
    store.apply(
        [
            user,
            fk.FeatureView(name="fast", entities=[user], source=fast, ttl=timedelta(hours=1)),
            fk.FeatureView(name="slow", entities=[user], source=slow, ttl=None),
        ]
    )
    entity_df = pl.DataFrame(
        {"user_id": [1, 1], "event_timestamp": [t + timedelta(minutes=30), t + timedelta(days=9)]}
    )
    out = store.get_historical_features(entity_df, ["fast:clicks", "slow:age"])
    assert out["clicks"].to_list() == [5, None]
    assert out["age"].to_list() == [40, 40]


def test_pandas_entity_frame_is_accepted(tmp_path):
    pd = pytest.importorskip("pandas")
    t = datetime(2026, 1, 1)
    rows = [{"user_id": 1, "event_timestamp": t, "created_timestamp": None, "f0": 3, "f1": 0.5}]
    store = _build(tmp_path, rows, None, None)
    entity_df = pd.DataFrame({"user_id": [1], "event_timestamp": [pd.Timestamp(t)]})
    out = store.get_historical_features(entity_df, ["stats:f0"])
    assert isinstance(out, pl.DataFrame)
    assert out["f0"].to_list() == [3]


def test_as_known_at_needs_both_stamps_in_the_past(tmp_path):
    t = datetime(2026, 1, 1)
    rows = [
        # created before its event time (a forecast): visible only from its event time on
        {
            "user_id": 1,
            "event_timestamp": t + timedelta(hours=10),
            "created_timestamp": t + timedelta(hours=5),
            "f0": 1,
            "f1": None,
        },
        # a late correction of an older row: visible only from its created time on
        {
            "user_id": 1,
            "event_timestamp": t,
            "created_timestamp": t + timedelta(hours=8),
            "f0": 2,
            "f1": None,
        },
    ]
    store = _build(tmp_path, rows, None, None)
    entity_df = pl.DataFrame(
        {"user_id": [1] * 4, "event_timestamp": [t + timedelta(hours=h) for h in (1, 7, 9, 11)]}
    )
    normal = store.get_historical_features(entity_df, ["stats:f0"])
    assert normal["f0"].to_list() == [2, 2, 2, 1]
    known = store.get_historical_features(entity_df, ["stats:f0"], as_known_at=True)
    assert known["f0"].to_list() == [None, None, 2, 1]


def test_reapplying_a_view_read_back_from_the_registry_is_unchanged(tmp_path, monkeypatch):
    t = datetime(2026, 1, 1)
    rows = [{"user_id": 1, "event_timestamp": t, "created_timestamp": None, "f0": 3, "f1": 0.5}]
    store = _build(tmp_path / "repo", rows, None, None)
    monkeypatch.chdir(tmp_path)  # a different working directory than the repo
    plan = store.plan([store.get_entity("user"), store.get_feature_view("stats")])
    assert [c.action for c in plan.changes] == ["unchanged", "unchanged"]
    stored = (tmp_path / "repo" / "registry.json").read_text()
    assert '"path": "offline/stats/v1.parquet"' in stored


def test_reapplying_unchanged_definitions_writes_nothing(tmp_path):
    t = datetime(2026, 1, 1)
    rows = [{"user_id": 1, "event_timestamp": t, "created_timestamp": None, "f0": 3, "f1": 0.5}]
    store = _build(tmp_path, rows, None, None)
    registry = tmp_path / "registry.json"
    before = registry.stat().st_mtime_ns, registry.stat().st_ino
    plan = store.apply([store.get_entity("user"), store.get_feature_view("stats")])
    assert not plan.has_changes
    assert (registry.stat().st_mtime_ns, registry.stat().st_ino) == before
