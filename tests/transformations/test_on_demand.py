"""On-demand features: one expression object for training, online reads and other processes."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import fskit as fk
from fskit.transformations import Aggregation, OnDemandFeatureView, StreamFeatureView

T0 = datetime(2026, 3, 1, tzinfo=UTC)
RATIO = pl.col("amount") / pl.col("amount_mean_1h")


def _repo(path):
    events = pl.DataFrame(
        {
            "user_id": [1, 1, 2, 2, 2],
            "event_timestamp": [T0 + timedelta(minutes=m) for m in (0, 10, 5, 20, 40)],
            "amount": [10.0, 30.0, 4.0, -1.0, 8.0],
        }
    )
    user = fk.Entity("user", join_keys=["user_id"])
    txn = StreamFeatureView(
        name="txn",
        entities=[user],
        source=events,
        filter=pl.col("amount") > 0,
        aggregations=[Aggregation("amount", "mean", timedelta(hours=1))],
    )
    ratio = OnDemandFeatureView(
        name="ratio",
        sources=["txn:amount_mean_1h"],
        request_schema=[fk.Field("amount", pl.Float64)],
        features={"amount_ratio": RATIO, "is_big": RATIO > 2},
    )
    store = fk.FeatureStore(path)
    store.apply([user, txn, ratio])
    return store


def _entity_df():
    return pl.DataFrame(
        {
            "user_id": [1, 2, 2, 3],
            "event_timestamp": [T0 + timedelta(minutes=m) for m in (15, 30, 50, 50)],
            "amount": [40.0, 12.0, 2.0, 5.0],
        }
    )


def test_training_applies_the_expressions_to_the_joined_frame(tmp_path):
    store = _repo(tmp_path)
    out = store.get_historical_features(
        _entity_df(), ["txn:amount_mean_1h", "ratio:amount_ratio", "ratio:is_big"]
    )
    # by hand: user 1 at :15 sees 10 and 30 (mean 20); user 2 at :30 sees 4 (the -1 is
    # filtered out); at :50 sees 4 and 8 (mean 6); user 3 has no events
    assert out["amount_mean_1h"].to_list() == [20.0, 4.0, 6.0, None]
    assert out["amount_ratio"].to_list() == [2.0, 3.0, 2.0 / 6.0, None]
    assert out["is_big"].to_list() == [False, True, False, None]
    assert out.columns[:3] == ["user_id", "event_timestamp", "amount"]


def test_online_requests_get_the_same_values_as_training(tmp_path):
    store = _repo(tmp_path)
    at = T0 + timedelta(minutes=50)
    store.materialize(None, at)
    rows = _entity_df().filter(pl.col("event_timestamp") == at)
    training = store.get_historical_features(rows, ["ratio:amount_ratio", "ratio:is_big"])
    online = store.get_online_features(
        ["ratio:amount_ratio", "ratio:is_big"],
        {"user_id": rows["user_id"].to_list(), "amount": rows["amount"].to_list()},
        now=at,
    )
    assert_frame_equal(
        online.select("amount_ratio", "is_big"), training.select("amount_ratio", "is_big")
    )


def test_missing_request_field_is_a_clear_error(tmp_path):
    store = _repo(tmp_path)
    with pytest.raises(fk.EntityFrameError, match="amount"):
        store.get_online_features(["ratio:amount_ratio"], [{"user_id": 1}])
    with pytest.raises(fk.EntityFrameError, match="request field 'amount'"):
        store.get_historical_features(_entity_df().drop("amount"), ["ratio:amount_ratio"])


def test_changed_expression_needs_a_new_version(tmp_path):
    store = _repo(tmp_path)
    changed = OnDemandFeatureView(
        name="ratio",
        sources=["txn:amount_mean_1h"],
        request_schema=[fk.Field("amount", pl.Float64)],
        features={
            "amount_ratio": pl.col("amount") / (pl.col("amount_mean_1h") + 1),
            "is_big": RATIO > 2,
        },
    )
    with pytest.raises(fk.VersionConflictError, match="set version=2"):
        store.apply([changed])
    same = OnDemandFeatureView(
        name="ratio",
        sources=["txn:amount_mean_1h"],
        request_schema=[fk.Field("amount", pl.Float64)],
        features={"amount_ratio": RATIO, "is_big": RATIO > 2},
        description="now documented",
    )
    assert [c.action for c in store.apply([same]).changes] == ["update"]


def test_python_functions_are_refused():
    with pytest.raises(fk.DefinitionError, match="native polars"):
        OnDemandFeatureView(
            name="bad",
            sources=["txn:amount_mean_1h"],
            features={
                "x": pl.col("amount_mean_1h").map_elements(lambda v: v, return_dtype=pl.Float64)
            },
        )


def test_a_registry_written_by_another_polars_version_fails_loudly(tmp_path):
    _repo(tmp_path)
    path = tmp_path / "registry.json"
    config = json.loads(path.read_text())
    config["polars_version"] = "0.0.1"
    path.write_text(json.dumps(config))
    with pytest.raises(fk.RegistryError, match="polars 0.0.1"):
        fk.FeatureStore(tmp_path).list_feature_views()


def test_another_process_runs_the_stored_transformations_unchanged(tmp_path):
    store = _repo(tmp_path / "repo")
    _entity_df().write_parquet(tmp_path / "entities.parquet")
    expected = store.get_historical_features(
        _entity_df(), ["ratio:amount_ratio", "txn:amount_mean_1h"]
    )
    code = (
        "import sys, polars as pl, fskit as fk\n"
        "store = fk.FeatureStore(sys.argv[1])\n"
        "out = store.get_historical_features(pl.read_parquet(sys.argv[2]), "
        "['ratio:amount_ratio', 'txn:amount_mean_1h'])\n"
        "out.write_parquet(sys.argv[3])\n"
    )
    subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(tmp_path / "repo"),
            str(tmp_path / "entities.parquet"),
            str(tmp_path / "out.parquet"),
        ],
        check=True,
        cwd=tmp_path,
    )
    assert_frame_equal(pl.read_parquet(tmp_path / "out.parquet"), expected)


def test_the_store_describes_on_demand_views_too(tmp_path):
    store = _repo(tmp_path)
    table = store.describe()
    assert table.filter(pl.col("feature_view") == "ratio")["feature"].to_list() == [
        "amount_ratio",
        "is_big",
    ]
    assert "ratio@v1" in store._repr_html_()
