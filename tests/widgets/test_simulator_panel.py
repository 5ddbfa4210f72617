"""SimulatorPanel: one replay (or sweep) call per Run, with faults and a live progress bar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from fskit.widgets import SimulatorPanel
from fskit.widgets._base import output_text

from fskit import simulate

FEATURES = ["user_stats:avg_purchase_value", "user_profile:age"]


@pytest.fixture(scope="module")
def events(entity_rows):
    """Three weeks of transactions: enough to see schedules and faults, quick to replay."""
    return entity_rows.filter(pl.col("event_timestamp") < datetime(2026, 1, 22, tzinfo=UTC))


def test_run_replays_with_the_chosen_schedule_and_faults(store, events):
    panel = SimulatorPanel(store, events, features=FEATURES, read_fraction=0.02)
    panel.interval.value = "6h"
    panel.store_down.value = True
    panel.fault_start.value = datetime(2026, 1, 10, tzinfo=UTC)
    panel.fault_hours.value = 48
    panel.missing.value = '{"user_id": [1, 2, 3]}'
    seen = []
    panel.progress.observe(lambda change: seen.append(change["new"]), "value")
    panel.run_button.click()
    assert panel.error == ""
    result = panel.result
    # the run is the replay the panel describes
    settings = result.settings
    assert (settings["materialize_every"], settings["push"]) == (timedelta(hours=6), False)
    assert settings["read_fraction"] == 0.02 and settings["features"] == FEATURES
    down = datetime(2026, 1, 10, tzinfo=UTC)
    assert settings["faults"] == (
        simulate.StoreDown(down, down + timedelta(hours=48)),
        simulate.EntityMissing({"user_id": [1, 2, 3]}),
    )
    assert result.materializations["status"].to_list().count("failed") > 0  # store was down
    assert result.reads["user_stats__status"].to_list().count("UNAVAILABLE") > 0
    assert len(seen) > 2 and seen[-1] == panel.progress.max
    shown = output_text(panel.charts)
    assert "SimulationResult" in shown and 'class="fskit-chart"' in shown


def test_sweep_and_errors(store, events):
    panel = SimulatorPanel(store, events, features=FEATURES[:1], read_fraction=0.01)
    panel.mode.value = "sweep"
    panel.intervals.value = ["push", "1d"]
    panel.run()
    assert panel.error == ""
    assert list(panel.result.results) == ["push", "1d"]
    table = panel.result.table
    assert table.filter(table["interval"] == "1d")["share_past_sla"][0] > 0.5

    panel.missing.value = "user 7"
    panel.run()
    assert panel.error.startswith("Simulate failed: missing entities must be JSON")
    assert SimulatorPanel(store).run() is None
