"""RegistryExplorer on the sample repo: what it lists, and what it shows for one feature."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import polars as pl
import pytest
from fskit.widgets import RegistryExplorer
from fskit.widgets._base import output_text
from polars.testing import assert_frame_equal

import fskit as fk


def test_lists_entities_views_and_shows_a_features_facts(store):
    explorer = RegistryExplorer(store)
    items = [value for _, value in explorer.items.options]
    assert ("entity", "user") in items and ("entity", "merchant") in items
    assert ("view", "user_stats@v1") in items and ("view", "merchant_profile@v1") in items
    assert "no feature services" in explorer.overview.value

    explorer.select("user_stats:avg_purchase_value")
    assert explorer.selected == "user_stats@v1:avg_purchase_value"
    assert explorer.error == ""
    info = explorer.info
    assert info["description"] == "mean valid amount to date"
    assert (info["owner"], info["dtype"], info["ttl"], info["freshness_sla"]) == (
        "risk-team",
        "Float64",
        "2d",
        "1d",
    )
    assert info["last_materialization"].startswith("ok, 1,000 rows, finished")
    assert "materialized up to 2026-03-02 00:00 UTC" in info["freshness"]

    # the statistics are the core's (one store.feature_statistics call) ...
    core = store.feature_statistics("user_stats:avg_purchase_value")
    assert_frame_equal(explorer.statistics.summary, core.summary)
    assert_frame_equal(explorer.statistics.distribution, core.distribution)
    # ... those of the view's source column
    source = pl.read_parquet(store.get_feature_view("user_stats").source.path)
    column = source["avg_purchase_value"]
    stats = dict(explorer.statistics.summary.iter_rows())
    assert stats["count"] == column.len() and stats["null_count"] == column.null_count()
    assert stats["mean"] == pytest.approx(column.mean())
    assert stats["max"] == pytest.approx(column.max())
    assert explorer.statistics.distribution["count"].sum() == column.drop_nulls().len()
    # shown: the numbers and an offline chart (the Vega JavaScript inlined, no CDN)
    shown = output_text(explorer.chart)
    assert 'class="fskit-chart"' in shown and "cdn.jsdelivr" not in shown
    assert "Owner" not in explorer.feature_details.value  # keys are shown in plain words
    assert "risk-team" in explorer.feature_details.value


def test_categorical_feature_and_entity_details(store):
    explorer = RegistryExplorer(store)
    explorer.select("merchant_profile:category")
    top = explorer.statistics.distribution
    merchants = pl.read_parquet(store.get_feature_view("merchant_profile").source.path)
    expected = merchants["category"].value_counts(sort=True).head(1).row(0)
    assert top.row(0) == expected
    explorer.items.value = ("entity", "user")
    assert "user_id" in explorer.details.value
    assert "user_stats@v1" in explorer.details.value


def test_versions_appear_after_a_new_apply(store, tmp_path):
    explorer = RegistryExplorer(store)
    view = store.get_feature_view("user_profile")
    v2 = dataclasses.replace(view, version=2, ttl=timedelta(days=400))
    store.apply([v2])
    try:
        explorer.refresh_button.click()
        labels = [label for label, _ in explorer.items.options]
        assert "view · user_profile@v2 (latest)" in labels
        assert "view · user_profile@v1" in labels
        explorer.select("user_profile@v1:age")
        assert explorer.info["ttl"] == "none"
        explorer.select("user_profile:age")
        assert explorer.selected == "user_profile@v2:age" and explorer.info["ttl"] == "400d"
        assert explorer.info["last_materialization"] == "never"
    finally:
        store.apply([], objects_to_delete=[v2])


def test_an_on_demand_feature_is_listed_and_explained_not_hidden(store):
    ratio = fk.OnDemandFeatureView(
        name="amount_ratio",
        sources=["user_stats:avg_purchase_value"],
        request_schema=[fk.Field("amount", pl.Float64)],
        features={"amount_over_avg": pl.col("amount") / pl.col("avg_purchase_value")},
    )
    store.apply([ratio])
    try:
        explorer = RegistryExplorer(store)
        labels = [label for label, _ in explorer.items.options]
        assert "on-demand · amount_ratio@v1" in labels
        explorer.select("amount_ratio:amount_over_avg")
        assert "request fields" in explorer.details.value and "amount" in explorer.details.value
        # no stored column to profile: said in plain words, on screen and in the state
        assert explorer.statistics is None
        assert explorer.error.startswith(
            "Profile feature failed: 'amount_ratio@v1:amount_over_avg'"
        )
        assert "on-demand feature" in explorer.error_box.value
        with pytest.raises(fk.FeatureRefError, match="no stored column"):
            store.feature_statistics("amount_ratio:amount_over_avg")
    finally:
        store.apply([], objects_to_delete=[ratio])


def test_applied_feature_services_are_listed_with_their_pinned_features(store):
    service = fk.FeatureService(
        name="fraud_inputs",
        features=["user_stats:avg_purchase_value", "merchant_profile:category"],
        owner="risk-team",
    )
    store.apply([service])
    try:
        explorer = RegistryExplorer(store)
        assert ("service · fraud_inputs", ("service", "fraud_inputs")) in explorer.items.options
        assert "1 feature service: " in explorer.overview.value
        assert "fraud_inputs" in explorer.overview.value
        explorer.items.value = ("service", "fraud_inputs")
        pinned = store.get_feature_service("fraud_inputs").feature_refs  # the core's answer
        assert explorer.features.options == pinned
        assert pinned == ("user_stats@v1:avg_purchase_value", "merchant_profile@v1:category")
        assert all(ref in explorer.details.value for ref in pinned)
        assert "risk-team" in explorer.details.value
        # a service's feature shows that feature's facts, as from its view
        explorer.features.value = "user_stats@v1:avg_purchase_value"
        assert explorer.selected == "user_stats@v1:avg_purchase_value"
        assert explorer.info["owner"] == "risk-team" and explorer.statistics is not None
    finally:
        store.apply([], objects_to_delete=[service])
