"""SkewPanel and DriftPanel: one core call per button, flagged features first."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from fskit.widgets import DriftPanel, SkewPanel
from fskit.widgets._base import output_text
from polars.testing import assert_frame_equal

import fskit as fk

STATS = ["user_stats:avg_purchase_value", "user_stats:purchases_7d"]


def test_skew_panel_is_one_compare_call(store, entity_rows, materialized_until):
    users = entity_rows.select("user_id").unique(maintain_order=True).head(300)
    panel = SkewPanel(store, users, features=STATS)
    assert panel.at.value == materialized_until  # the newest materialization watermark
    panel.check_button.click()
    assert panel.error == ""
    expected = fk.skew.compare(store, users, features=STATS, at=materialized_until)
    assert_frame_equal(panel.result.features, expected.features)
    assert "0 of 2 features flagged" in panel.summary.value  # materialized == point in time
    assert panel.feature.value == "avg_purchase_value"
    shown = output_text(panel.detail)
    assert "match_rate" in shown and 'class="fskit-chart"' in shown


def test_skew_panel_finds_entities_itself_and_lists_flagged_features_first(store):
    panel = SkewPanel(store, features=["user_profile:age", *STATS])
    # two weeks before the end of the data the online store already holds its last values: they differ
    panel.at.value = datetime(2026, 2, 15, tzinfo=UTC)
    panel.check()
    assert panel.error == ""
    report = panel.result
    assert report.pairs.select("user_id").n_unique() == 1000
    assert {"avg_purchase_value", "purchases_7d"} <= set(report.flagged)
    match = dict(report.features.select("feature", "match_rate").iter_rows())
    labels = [label for label, _ in panel.feature.options]
    assert labels[0] == "⚠ avg_purchase_value"  # flagged first, worst match first
    assert match["avg_purchase_value"] == min(match.values())


def test_skew_panel_refuses_features_of_two_entities_in_plain_words(store):
    panel = SkewPanel(store, features=["user_profile:age", "merchant_profile:category"])
    panel.check_button.click()
    assert panel.result is None
    assert "pass entity_rows= with every key" in panel.error


def _halves(rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    cut = datetime(2026, 2, 1, tzinfo=UTC)
    before = rows.filter(pl.col("event_timestamp") < cut).select("amount", "merchant_id")
    after = rows.filter(pl.col("event_timestamp") >= cut).select("amount", "merchant_id")
    return before, after.with_columns(pl.col("amount") * 1.5)  # prices went up by half


def test_drift_panel_lists_drifted_features_first(entity_rows):
    reference, current = _halves(entity_rows)
    panel = DriftPanel(reference, current, categorical=["merchant_id"])
    panel.compare_button.click()
    assert panel.error == ""
    expected = fk.drift.compare(reference, current, categorical=["merchant_id"])
    assert_frame_equal(panel.result.features, expected.features)
    assert panel.feature.options[0] == ("⚠ amount (drift)", "amount")
    assert panel.feature.value == "amount"
    assert "features drifted" in panel.summary.value
    shown = output_text(panel.detail)
    assert "drift_score" in shown and 'class="fskit-chart"' in shown
    panel.feature.value = "merchant_id"
    assert "merchant_id" in output_text(panel.detail)


def test_drift_panel_reads_lazy_sources_at_each_compare_and_shows_errors(entity_rows):
    reference, current = _halves(entity_rows)
    calls = []

    def log():
        calls.append(1)
        if len(calls) == 1:
            raise fk.FskitError("model 'fraud' has served nothing yet")
        return current

    panel = DriftPanel(reference, log)
    panel.compare()
    assert panel.result is None
    assert panel.error == "Compare failed: model 'fraud' has served nothing yet"
    assert "served nothing yet" in panel.error_box.value
    panel.compare()
    assert panel.error == "" and panel.result.drifted_features == ["amount"]
    assert panel.error_box.value == ""
