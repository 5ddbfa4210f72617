"""``SkewPanel`` and ``DriftPanel``: pick a feature, see the chart and the numbers.

Skew compares, for the same entities at the same time, the offline point-in-time value with
the online-served one (one call: ``fk.skew.compare``). Drift compares a reference (training
data, or a model's stored profile) with current data (a serving log) feature by feature (one
call: ``fk.drift.compare``). Both list the flagged (drifted) features first.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import polars as pl

import fskit as fk

from ._base import MUTED_COLOR, Panel, Result, button, hbox, note, show

if TYPE_CHECKING:
    from fskit.store import FeatureStore

__all__ = ["DriftPanel", "SkewPanel"]


def _latest_watermark(store: FeatureStore) -> datetime:
    marks = store.watermarks()
    return max(marks.values()) if marks else datetime.now(UTC)


# ------------------------------------------------------------------------------------------
# Skew
# ------------------------------------------------------------------------------------------


class SkewPanel(Panel):
    """Training-serving skew: offline point-in-time values vs online-served values.

    Parameters
    ----------
    store
        The feature store (materialized online).
    entity_rows
        The entities to compare (join keys; request fields for on-demand features). Default:
        ``None``, which lets ``fk.skew.compare`` pick up to 1000 entities of the picked
        features' view (``fk.skew.default_entity_rows``).
    features
        The features picked at first (default: every feature of the latest online views).
    at
        The moment to compare at (default: the newest materialization watermark).

    Attributes
    ----------
    result : fskit.skew.SkewReport | None
        The last report (Check is one ``fk.skew.compare(...)`` call).
    feature : str
        The feature shown in detail.
    """

    result = Result(None, help="The last SkewReport.")

    def __init__(
        self,
        store: FeatureStore,
        entity_rows: pl.DataFrame | None = None,
        *,
        features: Sequence[str] | None = None,
        at: datetime | None = None,
    ) -> None:
        self.store = store
        self.entity_rows = entity_rows
        latest: dict[str, Any] = {}
        for view in store.list_feature_views():
            if getattr(view, "online", False) and view.join_keys:
                latest[view.name] = view
        refs = [f"{v.name}:{f}" for v in latest.values() for f in v.feature_names]
        chosen = [f for f in (features or refs) if f in refs]
        self.feature_select = widgets.SelectMultiple(
            options=refs, value=chosen, rows=8, layout=widgets.Layout(width="340px")
        )
        self.at = widgets.DatetimePicker(description="at", value=at or _latest_watermark(store))
        self.check_button = button("Check skew", button_style="primary", icon="balance-scale")
        self.feature = widgets.Dropdown(description="feature", layout=widgets.Layout(width="420px"))
        self.summary = widgets.HTML()
        self.table = widgets.Output()
        self.detail = widgets.Output()
        super().__init__(
            [
                hbox(
                    widgets.VBox([note("Features to compare"), self.feature_select]),
                    widgets.VBox(
                        [
                            note("Offline value at <i>at</i> vs online value read at <i>at</i>"),
                            self.at,
                            hbox(self.check_button),
                        ]
                    ),
                ),
                self.summary,
                self.table,
                self.feature,
                self.detail,
            ]
        )
        self.check_button.on_click(lambda _: self.check())
        self.feature.observe(lambda change: self._show_feature(change["new"]), "value")

    def check(self) -> Any:
        """What the Check button does: one ``fk.skew.compare(...)`` call."""
        features = list(self.feature_select.value)
        if not features:
            self._refuse("Check skew", "pick at least one feature")
            return None
        at = self.at.value or _latest_watermark(self.store)
        report = self._call(
            "Check skew",
            fk.skew.compare,
            self.store,
            self.entity_rows,  # None: compare picks the features' first 1000 entities
            features=features,
            at=at,
        )
        if report is None:
            return None
        table = report.features.sort(["flagged", "match_rate"], descending=[True, False])
        entities = int(report.features["n"].max() or 0)
        self.summary.value = (
            f"<b>{len(report.flagged)} of {report.features.height} features flagged</b> "
            f"({entities:,} entities at {at:%Y-%m-%d %H:%M} UTC)"
        )
        show(self.table, table, report.chart())
        self.result = report
        options = [
            (("⚠ " if r["flagged"] else "") + r["feature"], r["feature"])
            for r in table.iter_rows(named=True)
        ]
        _offer_features(self, options)
        return report

    def _show_feature(self, feature: str | None) -> None:
        report = self.result
        if report is None or not feature:
            show(self.detail)
            return
        numbers = report.features.filter(pl.col("feature") == feature)
        worst = report.worst(feature, 5)
        try:
            chart = report.scatter(feature)
        except fk.FskitError as exc:  # e.g. a string feature: no scatter, say why
            chart = f"(no scatter: {exc})"
        show(self.detail, numbers, chart, "Entities that differ most:", worst)


# ------------------------------------------------------------------------------------------
# Drift
# ------------------------------------------------------------------------------------------

FrameSource = Any  # a frame, a ReferenceProfile, or a zero-argument callable returning one


class DriftPanel(Panel):
    """Feature drift between a reference and current data; drifted features first.

    Parameters
    ----------
    reference, current
        Polars frames (pandas accepted), a :class:`fskit.drift.ReferenceProfile` for the
        reference (e.g. ``model_version.reference_profile()``), or zero-argument callables
        returning one, called at each Compare (e.g. to re-read a growing prediction log).
    features, categorical, config
        Passed to :func:`fskit.drift.compare`.

    Attributes
    ----------
    result : fskit.drift.DriftReport | None
        The last report (Compare is one ``fk.drift.compare(...)`` call).
    """

    result = Result(None, help="The last DriftReport.")

    def __init__(
        self,
        reference: FrameSource,
        current: FrameSource,
        *,
        features: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        config: Any = None,
    ) -> None:
        self.reference, self.current = reference, current
        self.options = {"features": features, "categorical": categorical, "config": config}
        self.compare_button = button("Compare", button_style="primary", icon="line-chart")
        self.summary = widgets.HTML(
            f"<span style='color:{MUTED_COLOR}'>Compare reference and current data, feature "
            "by feature (K-S for numbers, chi-square/PSI for categories).</span>"
        )
        self.overview = widgets.Output()
        self.feature = widgets.Dropdown(description="feature", layout=widgets.Layout(width="420px"))
        self.detail = widgets.Output()
        super().__init__(
            [self.compare_button, self.summary, self.overview, self.feature, self.detail]
        )
        self.compare_button.on_click(lambda _: self.compare())
        self.feature.observe(lambda change: self._show_feature(change["new"]), "value")

    def compare(self) -> Any:
        """What the Compare button does: one ``fk.drift.compare(reference, current)`` call."""
        report = self._call("Compare", _compare, self.reference, self.current, **self.options)
        if report is None:
            return None
        self.summary.value = f"<b>{html.escape(report.summary())}</b>"
        show(self.overview, report.overview_chart())
        drifted = report.drifted_features
        rest = [f for f in report.features["feature"].to_list() if f not in drifted]
        options = [(f"⚠ {f} (drift)", f) for f in drifted] + [(f, f) for f in rest]
        self.result = report
        _offer_features(self, options)
        return report

    def _show_feature(self, feature: str | None) -> None:
        report = self.result
        if report is None or not feature:
            show(self.detail)
            return
        numbers = report.features.filter(pl.col("feature") == feature).select(
            "feature",
            "kind",
            "drifted",
            "method",
            "drift_score",
            "threshold",
            "statistic",
            "p_value",
            "psi",
            "n_ref",
            "n_cur",
            "null_rate_cur",
            "out_of_range_share",
            "issues",
        )
        show(self.detail, numbers, report.chart(feature))


def _compare(reference: FrameSource, current: FrameSource, **options: Any) -> Any:
    """``fk.drift.compare`` on the (possibly lazily given) reference and current data."""
    ref = reference() if callable(reference) else reference
    cur = current() if callable(current) else current
    return fk.drift.compare(ref, cur, **options)


def _offer_features(panel: Any, options: list[tuple[str, str]]) -> None:
    """Fill a panel's feature picker and show the first feature (flagged ones come first)."""
    panel.feature.options = options
    panel.feature.value = options[0][1] if options else None
    if options:
        panel._show_feature(options[0][1])
