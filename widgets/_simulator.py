"""``SimulatorPanel``: replay an event stream against a materialization schedule, with faults.

The Run button is one call: ``fk.simulate.replay(...)`` for one schedule, or
``fk.simulate.sweep(...)`` for several (the freshness/cost trade-off); its ``progress``
callback drives the bar. The charts are the result's own (``result.chart()``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import polars as pl

import fskit as fk
from fskit import simulate

from ._base import Panel, Result, button, hbox, note, show

if TYPE_CHECKING:
    from fskit.store import FeatureStore

__all__ = ["SimulatorPanel"]

#: The schedules offered, by label.
INTERVALS: dict[str, Any] = {
    "push": "push",
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "1d": timedelta(days=1),
}


class SimulatorPanel(Panel):
    """Run the online simulator: staleness, latency, cost and faults, in simulated time.

    Parameters
    ----------
    store
        The feature store (its definitions and offline data; its online store is untouched).
    events
        The event stream: join keys and a timestamp per row, each row an online read (for
        the sample data, ``fskit.datasets.fraud_entity_rows()``).
    features
        Features picked at first (default: one per online view).
    read_fraction
        The share of events that read, at first (a seeded sample keeps runs quick).

    Attributes
    ----------
    result : fskit.simulate.SimulationResult | fskit.simulate.SweepResult | None
        The last run's result.
    """

    result = Result(None, help="The last SimulationResult or SweepResult.")

    def __init__(
        self,
        store: FeatureStore,
        events: pl.DataFrame | None = None,
        *,
        features: Sequence[str] | None = None,
        read_fraction: float = 0.01,
    ) -> None:
        self.store = store
        self.events = events
        latest: dict[str, Any] = {}
        for view in store.list_feature_views():
            if getattr(view, "online", False) and view.join_keys:
                latest[view.name] = view
        refs = [f"{v.name}:{f}" for v in latest.values() for f in v.feature_names]
        default = features or [f"{v.name}:{v.feature_names[0]}" for v in latest.values()]
        self.feature_select = widgets.SelectMultiple(
            options=refs,
            value=[f for f in default if f in refs],
            rows=7,
            layout=widgets.Layout(width="320px"),
        )
        self.mode = widgets.ToggleButtons(options=["one schedule", "sweep"], value="one schedule")
        self.interval = widgets.Dropdown(
            options=list(INTERVALS), value="1h", description="materialize"
        )
        self.intervals = widgets.SelectMultiple(
            options=list(INTERVALS),
            value=["push", "1h", "6h", "1d"],
            rows=5,
            description="compare",
            layout=widgets.Layout(display="none"),
        )
        self.read_fraction = widgets.FloatLogSlider(
            value=read_fraction,
            base=10,
            min=-3,
            max=0,
            step=0.1,
            description="reads",
            readout_format=".1%",
        )
        start, end = _period(events)
        self.fault_start = widgets.DatetimePicker(description="fault from", value=start)
        self.fault_hours = widgets.BoundedIntText(
            value=24, min=1, max=24 * 365, description="for (hours)"
        )
        self.store_down = widgets.Checkbox(
            value=False, description="online store down", indent=False
        )
        self.stale = widgets.Checkbox(value=False, description="materializer paused", indent=False)
        self.missing = widgets.Text(
            description="missing",
            placeholder='entities never written, e.g. {"user_id": [1, 2, 3]}',
            layout=widgets.Layout(width="420px"),
        )
        self.run_button = button("Run", button_style="primary", icon="play")
        self.charts = widgets.Output()
        super().__init__(
            [
                hbox(
                    widgets.VBox([note("Features read online"), self.feature_select]),
                    widgets.VBox(
                        [
                            self.mode,
                            self.interval,
                            self.intervals,
                            self.read_fraction,
                            note("Faults (in simulated time)"),
                            self.store_down,
                            self.stale,
                            self.fault_start,
                            self.fault_hours,
                            self.missing,
                            hbox(self.run_button),
                        ]
                    ),
                ),
                self.charts,
            ]
        )
        if end is not None:
            self.fault_start.value = start + (end - start) / 3
        self.mode.observe(self._on_mode, "value")
        self.run_button.on_click(lambda _: self.run())

    def faults(self) -> list[Any]:
        """The faults the checkboxes and boxes describe, as ``fskit.simulate`` values."""
        out: list[Any] = []
        start = self.fault_start.value
        if (self.store_down.value or self.stale.value) and start is not None:
            end = start + timedelta(hours=self.fault_hours.value)
            if self.store_down.value:
                out.append(simulate.StoreDown(start, end))
            if self.stale.value:
                out.append(simulate.StaleData(start, end))
        if self.missing.value.strip():
            try:
                keys = json.loads(self.missing.value)
            except ValueError as exc:
                raise fk.FskitError(
                    f'missing entities must be JSON like {{"user_id": [1, 2]}}, got '
                    f"{self.missing.value!r} ({exc})"
                ) from None
            out.append(simulate.EntityMissing(keys))
        return out

    def run(self) -> Any:
        """What the Run button does: one ``fk.simulate.replay`` or ``fk.simulate.sweep`` call."""
        if self.events is None:
            self._refuse("Simulate", "no event stream: create the panel with events=...")
            return None
        if not self.feature_select.value:
            self._refuse("Simulate", "pick at least one feature")
            return None
        try:
            faults = self.faults()
        except Exception as exc:
            self._fail("Simulate", exc)
            return None
        common = {
            "features": list(self.feature_select.value),
            "read_fraction": self.read_fraction.value,
            "faults": faults,
            "progress": self._step,
        }
        if self.mode.value == "sweep":
            intervals = [INTERVALS[label] for label in self.intervals.value]
            result = self._call(
                "Sweep",
                simulate.sweep,
                self.store,
                self.events,
                intervals=intervals,
                steps=1,
                **common,
            )
        else:
            every = INTERVALS[self.interval.value]
            push = every == "push"
            result = self._call(
                f"Simulate ({self.interval.value})",
                simulate.replay,
                self.store,
                self.events,
                materialize_every=None if push else every,
                push=push,
                steps=1,
                **common,
            )
        if result is None:
            return None
        show(self.charts, result, result.chart())
        self.result = result
        return result

    def _on_mode(self, change: dict[str, Any]) -> None:
        sweep = change["new"] == "sweep"
        self.intervals.layout.display = None if sweep else "none"
        self.interval.layout.display = "none" if sweep else None


def _period(events: pl.DataFrame | None) -> tuple[datetime | None, datetime | None]:
    if events is None or "event_timestamp" not in events.columns or events.is_empty():
        return None, None
    low, high = events["event_timestamp"].min(), events["event_timestamp"].max()
    if not isinstance(low, datetime) or not isinstance(high, datetime):
        return None, None
    fix = (lambda d: d.replace(tzinfo=UTC)) if low.tzinfo is None else (lambda d: d)
    return fix(low), fix(high)
