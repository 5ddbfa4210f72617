"""FeatureStore.feature_statistics against numbers computed with plain polars on the source."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import fskit as fk
from fskit import datasets
from fskit.statistics import FeatureStatistics
from fskit.transformations import Aggregation, StreamFeatureView

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = fk.FeatureStore(tmp_path_factory.mktemp("repo"))
    store.apply(datasets.fraud_definitions(SAMPLE))
    return store


def _bin_counts(values: pl.Series, distribution: pl.DataFrame) -> list[int]:
    """Rows per bin by plain comparisons: ``start < x <= end``, the first bin closed."""
    counts = []
    for i, (start, end) in enumerate(distribution.select("bin_start", "bin_end").rows()):
        inside = (values > start) | (values == start) if i == 0 else values > start
        counts.append(int((inside & (values <= end)).sum()))
    return counts


def test_numeric_feature_matches_plain_polars_on_the_source(store):
    column = pl.read_parquet(SAMPLE / "user_stats.parquet")["avg_purchase_value"]
    values = column.drop_nulls().drop_nans()
    stats = store.feature_statistics("user_stats:avg_purchase_value")

    assert isinstance(stats, FeatureStatistics)
    assert (stats.ref, stats.dtype, stats.numeric) == (
        "user_stats@v1:avg_purchase_value",
        "Float64",
        True,
    )
    expected = {
        "count": column.len(),
        "null_count": column.null_count(),
        "mean": values.mean(),
        "std": values.std(),
        "min": values.min(),
        "25%": values.sort()[round((values.len() - 1) * 0.25)],
        "50%": values.sort()[round((values.len() - 1) * 0.5)],
        "75%": values.sort()[round((values.len() - 1) * 0.75)],
        "max": values.max(),
    }
    got = stats.values
    assert list(got) == list(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-12), name

    # 20 equal-width bins from min to max that hold every value once
    bins = stats.distribution
    assert bins.columns == ["bin_start", "bin_end", "count"] and bins.height == 20
    assert bins["bin_start"][0] == values.min() and bins["bin_end"][-1] == values.max()
    assert bins["bin_start"][1:].to_list() == bins["bin_end"][:-1].to_list()
    widths = (bins["bin_end"] - bins["bin_start"]).to_list()
    assert max(widths) == pytest.approx(min(widths), rel=1e-9)
    assert bins["count"].to_list() == _bin_counts(values, bins)
    assert bins["count"].sum() == values.len()


def test_categorical_feature_counts_the_most_frequent_values(store):
    column = pl.read_parquet(SAMPLE / "users.parquet")["country"]
    stats = store.feature_statistics("user_profile:country", top=3)
    assert not stats.numeric
    assert stats.values == {
        "count": column.len(),
        "null_count": column.null_count(),
        "n_unique": column.drop_nulls().n_unique(),
    }
    expected = (
        column.drop_nulls()
        .to_frame("value")
        .group_by("value")
        .len("count")
        .with_columns(pl.col("count").cast(pl.Int64))
        .sort(["count", "value"], descending=[True, False])
        .head(3)
    )
    assert_frame_equal(stats.distribution, expected)
    assert repr(stats).startswith(
        f"FeatureStatistics('user_profile@v1:country', String): {column.len():,} rows"
    )
    assert "<b>Feature statistics</b>" in stats._repr_html_()
    assert stats == store.feature_statistics("user_profile@v1:country", top=3)
    assert stats != store.feature_statistics("user_profile:country", top=4)


def _tiny_store(tmp_path, values, **columns) -> fk.FeatureStore:
    rows = pl.DataFrame(
        {
            "user_id": list(range(len(values))),
            "event_timestamp": [
                datetime(2026, 1, 1) + timedelta(hours=i) for i in range(len(values))
            ],
            "x": values,
            **columns,
        }
    )
    store = fk.FeatureStore(tmp_path)
    user = fk.Entity("user", join_keys=["user_id"])
    store.apply([user, fk.FeatureView(name="stats", entities=[user], source=rows)])
    return store


def test_nulls_nans_constant_and_empty_columns(tmp_path):
    store = _tiny_store(tmp_path / "a", [2.0, None, math.nan, 2.0])
    stats = store.feature_statistics("stats:x")
    assert stats.values["count"] == 4 and stats.values["null_count"] == 1
    assert stats.values["mean"] == 2.0 and stats.values["std"] == 0.0
    assert stats.distribution.rows() == [(2.0, 2.0, 2)]  # one bin, NaN left out

    store = _tiny_store(tmp_path / "b", pl.Series([None, None], dtype=pl.Float64))
    stats = store.feature_statistics("stats:x")
    assert stats.values["null_count"] == 2 and stats.values["mean"] is None
    assert stats.distribution.is_empty()
    assert "2 rows, 2 null" in repr(stats)


def test_pushed_rows_count_and_versions_are_resolved(tmp_path):
    store = _tiny_store(tmp_path, [1.0, 2.0, 3.0])
    pushed = pl.DataFrame({"user_id": [9], "event_timestamp": [datetime(2026, 2, 1)], "x": [10.0]})
    store.push("stats", pushed, to="offline")
    stats = store.feature_statistics(fk.FeatureRef("stats", "x", 1), bins=3)
    assert stats.ref == "stats@v1:x"
    assert stats.values["count"] == 4 and stats.values["max"] == 10.0
    assert stats.distribution.rows() == [(1.0, 4.0, 3), (4.0, 7.0, 0), (7.0, 10.0, 1)]


def test_bad_refs_and_arguments_are_named(store, tmp_path):
    with pytest.raises(fk.FeatureRefError, match="unknown feature view 'user_stat'.*user_stats"):
        store.feature_statistics("user_stat:avg_purchase_value")
    with pytest.raises(fk.FeatureRefError, match="'user_stats:avg_purchase'.*no feature"):
        store.feature_statistics("user_stats:avg_purchase")
    with pytest.raises(fk.FeatureRefError, match="has no version 7"):
        store.feature_statistics("user_stats@v7:avg_purchase_value")
    with pytest.raises(fk.FeatureRefError, match="malformed"):
        store.feature_statistics("avg_purchase_value")
    with pytest.raises(fk.FeatureRefError, match="one feature.*once per feature"):
        store.feature_statistics(["user_stats:amount_7d", "user_stats:purchases_7d"])
    with pytest.raises(fk.FeatureRefError, match="whole feature view 'user_stats@v1'"):
        store.feature_statistics(store.get_feature_view("user_stats"))
    with pytest.raises(fk.DefinitionError, match="bins must be a positive int, got 0"):
        store.feature_statistics("user_stats:amount_7d", bins=0)

    # computed features have no stored column: said, with the way out
    ratio = fk.OnDemandFeatureView(
        name="ratio",
        sources=["user_stats:avg_purchase_value"],
        request_schema=[fk.Field("amount", pl.Float64)],
        features={"amount_over_avg": pl.col("amount") / pl.col("avg_purchase_value")},
    )
    user = store.get_entity("user")
    txn = StreamFeatureView(
        name="txn",
        entities=[user],
        source=fk.ParquetSource(SAMPLE / "transactions.parquet"),
        aggregations=[Aggregation("amount", "mean", timedelta(days=7))],
    )
    store.apply([ratio, txn])
    try:
        with pytest.raises(fk.FeatureRefError, match="'ratio@v1:amount_over_avg' is an on-demand"):
            store.feature_statistics("ratio:amount_over_avg")
        with pytest.raises(fk.FeatureRefError, match="'txn@v1:amount_mean_7d' is a windowed"):
            store.feature_statistics("txn:amount_mean_7d")
    finally:
        store.apply([], objects_to_delete=[ratio, txn])
