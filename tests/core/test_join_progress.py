"""get_historical_features(progress=...): one call per feature view, same training set."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import fskit as fk
from fskit import datasets
from fskit.transformations import Aggregation, StreamFeatureView

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"

FEATURES = [
    "user_stats:avg_purchase_value",
    "ratio:amount_over_avg",  # on-demand: joined last, after its source views
    "user_profile:age",
    "txn:amount_mean_7d",  # windowed aggregation
    "user_stats:purchases_7d",
    "merchant_profile:category",
]
VIEWS = ["user_stats@v1", "user_profile@v1", "txn@v1", "merchant_profile@v1", "ratio@v1"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = fk.FeatureStore(tmp_path_factory.mktemp("repo"))
    definitions = datasets.fraud_definitions(SAMPLE)
    user = definitions[0]
    txn = StreamFeatureView(
        name="txn",
        entities=[user],
        source=fk.ParquetSource(SAMPLE / "transactions.parquet"),
        filter=~pl.col("is_duplicate"),
        aggregations=[Aggregation("amount", "mean", timedelta(days=7))],
    )
    ratio = fk.OnDemandFeatureView(
        name="ratio",
        sources=["user_stats:avg_purchase_value"],
        request_schema=[fk.Field("amount", pl.Float64)],
        features={"amount_over_avg": pl.col("amount") / pl.col("avg_purchase_value")},
    )
    store.apply([*definitions, txn, ratio])
    return store


@pytest.fixture(scope="module")
def entity_rows():
    return datasets.fraud_entity_rows(SAMPLE).head(5000)


@pytest.mark.parametrize("as_known_at", [False, True])
def test_progress_is_called_once_per_view_and_changes_nothing(store, entity_rows, as_known_at):
    calls = []
    with_progress = store.get_historical_features(
        entity_rows,
        FEATURES,
        as_known_at=as_known_at,
        progress=lambda done, total, view: calls.append((done, total, view)),
    )
    without = store.get_historical_features(entity_rows, FEATURES, as_known_at=as_known_at)
    assert_frame_equal(with_progress, without)
    assert with_progress.columns == [*entity_rows.columns, *(f.split(":")[1] for f in FEATURES)]
    # counts rise 1..5, each view once, the on-demand view after the views it reads
    assert calls == [(i, len(VIEWS), view) for i, view in enumerate(VIEWS, start=1)]


def test_progress_with_full_feature_names_and_pinned_versions(store, entity_rows):
    calls = []
    frame = store.get_historical_features(
        entity_rows,
        ["user_stats@v1:amount_7d", "user_stats:total_purchases"],  # one view, named twice
        full_feature_names=True,
        progress=lambda *call: calls.append(call),
    )
    assert calls == [(1, 1, "user_stats@v1")]
    assert frame.columns[-2:] == ["user_stats_v1__amount_7d", "user_stats__total_purchases"]


def test_progress_must_be_callable(store, entity_rows):
    with pytest.raises(fk.DefinitionError, match="progress must be callable .*got 3"):
        store.get_historical_features(entity_rows, ["user_profile:age"], progress=3)
