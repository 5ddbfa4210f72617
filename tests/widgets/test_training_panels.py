"""TrainingSetBuilder and TrainPanel: buttons pressed from Python, real joins, real training."""

from __future__ import annotations

from datetime import date

import polars as pl
from fskit.widgets import TrainingSetBuilder, TrainPanel
from fskit.widgets._base import output_text
from polars.testing import assert_frame_equal

import fskit as fk


def test_search_filters_features_and_keeps_the_picked_ones(store, entity_rows):
    builder = TrainingSetBuilder(store, entity_rows)
    assert builder.label.value == "is_fraud"
    assert (builder.start.value, builder.end.value) == (date(2026, 1, 1), date(2026, 3, 1))
    builder.search.value = "user_stats"
    assert all(o.startswith("user_stats:") for o in builder.feature_select.options)
    builder.feature_select.value = ["user_stats:purchases_7d"]
    builder.search.value = "profile"
    assert builder.feature_select.options[0] == "user_stats:purchases_7d"  # still there
    assert builder.chosen == ["user_stats:purchases_7d"]
    assert set(builder.feature_select.options[1:]) == {
        "user_profile:age",
        "user_profile:country",
        "merchant_profile:category",
    }


def test_build_is_one_point_in_time_join_over_the_picked_dates(store, entity_rows, features):
    builder = TrainingSetBuilder(store, entity_rows, features=features)
    builder.start.value, builder.end.value = date(2026, 2, 1), date(2026, 2, 14)
    bar, status = [], []
    builder.progress.observe(lambda change: bar.append(change["new"]), "value")
    builder.status.observe(lambda change: status.append(change["new"]), "value")
    builder.build_button.click()
    assert builder.error == ""
    # the bar counted the views as the core joined them (get_historical_features' progress)
    views = ["user_stats@v1", "user_profile@v1", "merchant_profile@v1"]
    assert bar == [1, 2, 3] and builder.progress.max == 3 == builder.progress.value
    for i, view in enumerate(views, start=1):
        assert any(f"joined {view} ({i}/3 feature views)" in s for s in status), view
    rows = entity_rows.filter(
        pl.col("event_timestamp").dt.date().is_between(date(2026, 2, 1), date(2026, 2, 14))
    )
    expected = store.get_historical_features(rows, features, as_known_at=True)
    assert_frame_equal(builder.result, expected)
    assert f"{expected.height:,} rows" in builder.summary.value
    assert "positive rate" in builder.summary.value
    shown = output_text(builder.preview)
    assert "Null counts per feature" in shown and "avg_purchase_value" in shown
    assert builder.status.value.count("done in") == 1 and builder.progress.bar_style == "success"


def test_build_errors_are_shown_and_kept(store, entity_rows, features):
    builder = TrainingSetBuilder(store, entity_rows)
    builder.build_button.click()
    assert builder.result is None
    assert builder.error == "Build training set failed: pick at least one feature on the left"
    assert "pick at least one feature" in builder.error_box.value
    # a core error, in the core's words
    builder = TrainingSetBuilder(store, entity_rows.drop("merchant_id"), features=features)
    builder.build_button.click()
    assert builder.result is None
    assert "merchant_id" in builder.error and isinstance(builder.exception, fk.FskitError)


def test_train_shows_live_progress_then_metrics_and_register_writes_a_version(
    store, entity_rows, features
):
    builder = TrainingSetBuilder(store, entity_rows, features=features)
    panel = TrainPanel(store, builder, extra_columns=["amount"], model_name="widget-train")
    panel.train_button.click()
    assert panel.error == "Train failed: no training set: build one in the training-set tab first"

    builder.build_button.click()  # the train panel follows the builder
    assert panel.label.value == "is_fraud"
    assert list(panel.feature_select.value) == features
    assert panel.extra_select.value == ("amount",)

    seen = []
    panel.progress.observe(lambda change: seen.append(change["new"]), "value")
    panel.rounds.value = 40
    panel.early_stopping.value = 0
    panel.max_depth.value = 4
    panel.train_button.click()
    assert panel.error == ""
    result = panel.result
    assert isinstance(result, fk.TrainResult)
    assert result.rounds == 40 and result.params["max_depth"] == 4
    assert result.metrics["auc"] > 0.8
    # the bar moved round by round, up to the last one
    assert seen[:3] == [1, 2, 3] and seen[-1] == 40 and seen == sorted(seen)
    assert "validation AUC" in panel.status.value
    assert "TrainResult" in output_text(panel.metrics)
    assert output_text(panel.charts).count('class="fskit-chart"') == 2  # curve and importance

    assert panel.register_button.disabled is False
    panel.register_button.click()
    mv = panel.model_version
    assert mv.ref == "widget-train@v1" and (mv.path / "model.ubj").is_file()
    assert store.models.versions("widget-train") == [1]
    assert store.models.get("widget-train").metrics["auc"] == result.metrics["auc"]
    panel.register_button.click()
    assert store.models.versions("widget-train") == [1, 2]


def test_train_errors_are_plain_words(store, training_set, features):
    panel = TrainPanel(store, training_set, features=features[:2], label="is_fraud")
    panel.validation_fraction.value = 0.05
    panel.label.value = "user_id"  # not a 0/1 label
    panel.train_button.click()
    assert panel.result is None
    assert panel.error.startswith("Train failed: ")
    assert "user_id" in panel.error and "Traceback" not in panel.error
    assert panel.progress.bar_style == "danger"
