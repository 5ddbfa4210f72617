"""Skew detection: the article's example on the sample data, the store-level check, the detector."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

import fskit as fk
from fskit import datasets, skew
from fskit.transformations import Aggregation, StreamFeatureView

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
AT = datetime(2026, 2, 20, tzinfo=UTC)
WINDOW = timedelta(days=30)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = fk.FeatureStore(tmp_path_factory.mktemp("repo"))
    user = fk.Entity("user", join_keys=["user_id"])
    txn = StreamFeatureView(
        name="user_txn_stats",
        entities=[user],
        source=fk.ParquetSource(SAMPLE / "transactions.parquet"),
        filter=(pl.col("amount") > 0) & ~pl.col("is_duplicate"),
        aggregations=[
            Aggregation("amount", "mean", WINDOW),
            Aggregation("amount", "count", WINDOW),
            Aggregation("amount", "max", WINDOW),
        ],
    )
    store.apply([user, txn])
    return store


def _training_values(store, users):
    rows = pl.DataFrame({"user_id": users, "event_timestamp": [AT] * len(users)})
    return store.get_historical_features(
        rows,
        [
            "user_txn_stats:amount_mean_30d",
            "user_txn_stats:amount_count_30d",
            "user_txn_stats:amount_max_30d",
        ],
    ).drop("event_timestamp")


def _hand_written_serving(*, filter_rows: bool) -> pl.DataFrame:
    """A serving team's own pipeline, as in the article; by default it forgets the filter."""
    txns = pl.read_parquet(SAMPLE / "transactions.parquet").filter(
        (pl.col("event_timestamp") > AT - WINDOW) & (pl.col("event_timestamp") <= AT)
    )
    valid = txns.filter((pl.col("amount") > 0) & ~pl.col("is_duplicate"))
    averaged = valid if filter_rows else txns  # the bug: duplicates and refunds averaged in
    mean = averaged.group_by("user_id").agg(pl.col("amount").mean().alias("amount_mean_30d"))
    rest = valid.group_by("user_id").agg(
        pl.len().cast(pl.Int64).alias("amount_count_30d"),
        pl.col("amount").max().alias("amount_max_30d"),
    )
    return mean.join(rest, on="user_id", how="full", coalesce=True)


def test_the_articles_unfiltered_average_is_caught_and_sized(store):
    serving = _hand_written_serving(filter_rows=False)
    training = _training_values(store, serving["user_id"].to_list())
    report = skew.compare_frames(training, serving, keys=["user_id"])
    assert report.flagged == ["amount_mean_30d"]
    row = report.features.filter(pl.col("feature") == "amount_mean_30d").row(0, named=True)
    # duplicates copy real amounts, refunds are <= 0: the serving mean is pulled down
    assert row["candidate_mean"] < row["reference_mean"]
    assert row["shift"] == pytest.approx(row["candidate_mean"] - row["reference_mean"])
    assert row["match_rate"] < 0.9
    worst = report.worst("amount_mean_30d", 3)
    assert worst.height == 3 and (worst["abs_diff"] > 0).all()
    assert worst["abs_diff"].is_sorted(descending=True)


def test_the_fixed_pipeline_is_not_flagged(store):
    serving = _hand_written_serving(filter_rows=True)
    training = _training_values(store, serving["user_id"].to_list())
    report = skew.compare_frames(training, serving, keys=["user_id"])
    assert report.flagged == []
    assert report.features["match_rate"].to_list() == [1.0, 1.0, 1.0]


def test_store_compare_is_clean_after_materialization_and_catches_online_only_writes(tmp_path):
    store = fk.FeatureStore(tmp_path)
    store.apply(datasets.fraud_definitions(SAMPLE))
    store.materialize(None, AT)
    users = list(range(1, 201))
    features = [
        "user_stats:avg_purchase_value",
        "user_stats:total_purchases",
        "user_profile:country",
    ]
    clean = skew.compare(store, pl.DataFrame({"user_id": users}), features=features, at=AT)
    assert clean.flagged == []
    assert clean.features["match_rate"].to_list() == [1.0, 1.0, 1.0]

    # a serving-side hotfix written to the online store only: training never sees it
    store.push(
        "user_stats",
        pl.DataFrame(
            {
                "user_id": users[:20],
                "event_timestamp": [AT] * 20,  # ties the materialized row: last write wins
                "total_purchases": [0] * 20,
                "avg_purchase_value": [999.0] * 20,
                "purchases_7d": [0] * 20,
                "amount_7d": [0.0] * 20,
                "max_amount_30d": [0.0] * 20,
            }
        ),
        to="online",
    )
    skewed = skew.compare(store, pl.DataFrame({"user_id": users}), features=features, at=AT)
    assert skewed.flagged == ["avg_purchase_value", "total_purchases"]
    assert skewed.features["match_rate"][0] == pytest.approx(0.9)
    assert set(skewed.worst("avg_purchase_value", 50)["user_id"]) == set(users[:20])


def test_detector_rules():
    a = pl.DataFrame({"k": [1, 2, 3, 4], "x": [1.0, None, 3.0, 4.0], "c": ["a", "b", None, "d"]})
    b = pl.DataFrame(
        {"k": [1, 2, 3, 5], "x": [1.0 + 1e-12, None, 3.5, 4.0], "c": ["a", "x", None, "d"]}
    )
    report = skew.compare_frames(a, b, keys=["k"], min_match_rate=0.5)
    x = report.features.filter(pl.col("feature") == "x").row(0, named=True)
    c = report.features.filter(pl.col("feature") == "c").row(0, named=True)
    # keys 1..5: k=1 equal within tolerance, k=2 both null, k=3 differs, k=4 and 5 one-sided
    assert x["n"] == 5 and x["match_rate"] == pytest.approx(2 / 5)
    assert x["max_abs_diff"] == pytest.approx(0.5)
    assert c["match_rate"] == pytest.approx(2 / 5) and c["mean_abs_diff"] is None
    assert report.flagged == ["x", "c"]
    with pytest.raises(fk.EntityFrameError, match="duplicate"):
        skew.compare_frames(pl.concat([a, a]), b, keys=["k"])
    with pytest.raises(fk.EntityFrameError, match="lacks key"):
        skew.compare_frames(a.drop("k"), b, keys=["k"])


def test_charts_build(store):
    serving = _hand_written_serving(filter_rows=False)
    training = _training_values(store, serving["user_id"].to_list())
    report = skew.compare_frames(training, serving, keys=["user_id"])
    bars = report.chart().to_dict()
    assert bars["mark"]["type"] == "bar"
    assert {v["feature"] for v in bars["data"]["values"]} == {
        "amount_mean_30d",
        "amount_count_30d",
        "amount_max_30d",
    }
    scatter = report.scatter("amount_mean_30d", max_points=100).to_dict()
    assert len(scatter["layer"][0]["data"]["values"]) == 100
    assert scatter["layer"][1]["mark"]["type"] == "line"


@pytest.fixture(scope="module")
def fraud_store(tmp_path_factory):
    store = fk.FeatureStore(tmp_path_factory.mktemp("fraud"))
    store.apply(datasets.fraud_definitions(SAMPLE))
    store.materialize(None, AT)
    return store


def test_compare_defaults_to_the_first_entities_of_the_features_view(fraud_store):
    features = ["user_profile:age", "user_stats:avg_purchase_value"]
    # the first 1000 distinct users of the first feature's view, in row order
    expected = (
        pl.read_parquet(SAMPLE / "users.parquet")
        .select("user_id")
        .drop_nulls()
        .unique(maintain_order=True)
        .head(skew.DEFAULT_ENTITIES)
    )
    rows = skew.default_entity_rows(fraud_store, features)
    assert rows.equals(expected) and rows.height == 1000
    assert skew.default_entity_rows(fraud_store, features, limit=5).equals(expected.head(5))

    report = skew.compare(fraud_store, features=features, at=AT)
    given = skew.compare(fraud_store, expected, features=features, at=AT)
    assert report.features.equals(given.features) and report.pairs.equals(given.pairs)
    assert report.features["n"].to_list() == [1000, 1000]
    assert report.pairs["user_id"].unique(maintain_order=True).equals(expected["user_id"])
    # None, given positionally, means the same
    assert skew.compare(fraud_store, None, features=features, at=AT).features.equals(
        report.features
    )


def test_default_entities_refuse_what_they_cannot_sample_in_plain_words(fraud_store):
    with pytest.raises(fk.EntityFrameError, match=r"keyed by \[\('merchant_id',\), \('user_id'"):
        skew.compare(fraud_store, features=["user_profile:age", "merchant_profile:category"])
    with pytest.raises(fk.EntityFrameError, match="pass entity_rows= with every key"):
        skew.default_entity_rows(fraud_store, ["merchant_profile:category", "user_profile:age"])
    with pytest.raises(fk.DefinitionError, match="limit must be a positive int, got 0"):
        skew.default_entity_rows(fraud_store, ["user_profile:age"], limit=0)
    ratio = fk.OnDemandFeatureView(
        name="ratio",
        sources=["user_stats:avg_purchase_value"],
        request_schema=[fk.Field("amount", pl.Float64)],
        features={"amount_over_avg": pl.col("amount") / pl.col("avg_purchase_value")},
    )
    fraud_store.apply([ratio])
    try:
        with pytest.raises(fk.EntityFrameError, match=r"on-demand features \['ratio:amount_"):
            skew.compare(fraud_store, features=["ratio:amount_over_avg"], at=AT)
    finally:
        fraud_store.apply([], objects_to_delete=[ratio])
