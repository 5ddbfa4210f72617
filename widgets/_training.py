"""``TrainingSetBuilder`` and ``TrainPanel``: from feature refs to a registered model.

The builder's Build button is one call, ``store.get_historical_features`` (its ``progress``
callback drives the bar view by view); the train panel's Train button is one call,
``fk.train`` (its ``progress`` callback drives the bar round by round), and its Register
button is one call, ``TrainResult.register``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import polars as pl

import fskit as fk

from ._base import MUTED_COLOR, Panel, Result, button, hbox, note, show

if TYPE_CHECKING:
    from fskit.store import FeatureStore

__all__ = ["TrainPanel", "TrainingSetBuilder"]


def _feature_refs(store: FeatureStore) -> list[str]:
    """Every feature of the latest version of every view, as ``"view:feature"``."""
    latest: dict[str, Any] = {}
    for view in store.list_feature_views():
        latest[view.name] = view  # sorted by ref: the last one per name is the latest
    return [f"{v.name}:{f}" for v in latest.values() for f in v.feature_names]


def _as_utc(day: date | None, end: bool) -> datetime | None:
    if day is None:
        return None
    stamp = datetime.combine(day, time(0), tzinfo=UTC)
    return stamp + timedelta(days=1) if end else stamp


# ------------------------------------------------------------------------------------------
# TrainingSetBuilder
# ------------------------------------------------------------------------------------------


class TrainingSetBuilder(Panel):
    """Pick features, the entity rows (and a time range of them) and a label; build the
    point-in-time correct training set.

    Parameters
    ----------
    store
        The feature store.
    entity_df
        The entity rows: join keys, ``timestamp_column`` and any labels (for the sample data,
        ``fskit.datasets.fraud_entity_rows()``).
    features
        Feature refs selected at first (default: none).
    label
        The label column (default: the last boolean or integer column that is not a key).
    timestamp_column
        The entity rows' timestamp column.

    Attributes
    ----------
    result : polars.DataFrame | None
        The training set of the last Build.
    chosen : list[str]
        The selected feature refs.

    The Build button makes one call: ``store.get_historical_features(rows, chosen,
    as_known_at=..., progress=...)``, where ``rows`` is ``entity_df`` restricted to the picked
    dates; the progress bar counts the feature views joined.
    """

    result = Result(None, help="The last training set built (polars DataFrame).")

    def __init__(
        self,
        store: FeatureStore,
        entity_df: pl.DataFrame | None = None,
        *,
        features: Sequence[str] = (),
        label: str | None = None,
        timestamp_column: str = "event_timestamp",
    ) -> None:
        self.store = store
        self.entity_df = entity_df
        self.timestamp_column = timestamp_column
        all_refs = _feature_refs(store)
        self.search = widgets.Text(
            placeholder="filter features (e.g. user_stats or 7d)",
            layout=widgets.Layout(width="340px"),
        )
        self.feature_select = widgets.SelectMultiple(
            options=all_refs,
            value=[f for f in features if f in all_refs],
            rows=10,
            layout=widgets.Layout(width="340px"),
        )
        self._chosen = list(self.feature_select.value)
        self._filtering = False
        columns = [] if entity_df is None else list(entity_df.columns)
        self.label = widgets.Dropdown(
            description="label",
            options=[c for c in columns if c != timestamp_column],
            value=label or _guess_label(entity_df, timestamp_column),
        )
        start, end = _date_range(entity_df, timestamp_column)
        self.start = widgets.DatePicker(description="from", value=start)
        self.end = widgets.DatePicker(description="to", value=end)
        self.as_known_at = widgets.Checkbox(
            value=True,
            description="as known at each row's time (ignore late corrections)",
            indent=False,
            layout=widgets.Layout(width="auto"),
        )
        self.build_button = button("Build training set", button_style="primary", icon="table")
        self.summary = widgets.HTML()
        self.preview = widgets.Output()
        rows_note = (
            "no entity rows: pass entity_df=..."
            if entity_df is None
            else f"{entity_df.height:,} entity rows, columns {', '.join(entity_df.columns)}"
        )
        super().__init__(
            [
                hbox(
                    widgets.VBox(
                        [
                            note("Features (ctrl/shift-click to pick several)"),
                            self.search,
                            self.feature_select,
                        ]
                    ),
                    widgets.VBox(
                        [
                            note(html.escape(rows_note)),
                            self.label,
                            self.start,
                            self.end,
                            self.as_known_at,
                            hbox(self.build_button),
                        ]
                    ),
                ),
                self.summary,
                self.preview,
            ]
        )
        self.search.observe(self._on_search, "value")
        self.feature_select.observe(self._on_pick, "value")
        self.build_button.on_click(lambda _: self.build())

    @property
    def chosen(self) -> list[str]:
        return list(self._chosen)

    @chosen.setter
    def chosen(self, refs: Sequence[str]) -> None:
        self._chosen = list(refs)
        self._on_search({"new": self.search.value})

    def entity_rows(self) -> pl.DataFrame | None:
        """``entity_df`` restricted to the picked dates (what Build joins features to)."""
        if self.entity_df is None:
            return None
        start, end = _as_utc(self.start.value, False), _as_utc(self.end.value, True)
        ts = pl.col(self.timestamp_column)
        rows = self.entity_df
        if start is not None:
            rows = rows.filter(ts >= start)
        if end is not None:
            rows = rows.filter(ts < end)
        return rows

    def build(self) -> pl.DataFrame | None:
        """What the Build button does (one ``store.get_historical_features`` call)."""
        rows = self.entity_rows()
        if rows is None:
            self._refuse("Build training set", "no entity rows: create the panel with entity_df=")
            return None
        if not self._chosen:
            self._refuse("Build training set", "pick at least one feature on the left")
            return None
        frame = self._call(
            "Build training set",
            self.store.get_historical_features,
            rows,
            list(self._chosen),
            event_timestamp_column=self.timestamp_column,
            as_known_at=self.as_known_at.value,
            progress=self._on_view,
            # a step per view ("view:x", "view:y" share one); the callback's total corrects it
            steps=len({ref.split(":")[0] for ref in self._chosen}),
        )
        if frame is None:
            return None
        label = self.label.value
        positives = ""
        if label in frame.columns and frame.schema[label] in (pl.Boolean, *_INTS):
            rate = frame[label].cast(pl.Float64).mean()
            positives = f", label <code>{html.escape(label)}</code> positive rate {rate:.2%}"
        self.summary.value = (
            f"<b>Training set</b>: {frame.height:,} rows × {frame.width} columns, built in "
            f"{self.seconds:.2f} s{positives}"
        )
        added = [c for c in frame.columns if c not in rows.columns]
        nulls = (
            frame.select(added)
            .null_count()
            .transpose(include_header=True, header_name="feature", column_names=["nulls"])
            .with_columns((pl.col("nulls") / max(frame.height, 1)).round(4).alias("null share"))
        )
        show(self.preview, "Null counts per feature:", nulls, "First rows:", frame.head(8))
        self.result = frame
        return frame

    # -- handlers --------------------------------------------------------------------------------
    def _on_view(self, done: int, total: int, view_ref: str) -> None:
        self._step(done, total, f"joined {view_ref} ({done}/{total} feature views)")

    def _on_search(self, change: dict[str, Any]) -> None:
        needle = (change["new"] or "").strip().lower()
        refs = _feature_refs(self.store)
        shown = [r for r in refs if needle in r.lower() and r not in self._chosen]
        chosen = [r for r in self._chosen if r in refs]
        self._filtering = True  # new options reset the value: keep what was picked
        try:
            self.feature_select.options = chosen + shown  # picked ones stay visible, on top
            self.feature_select.value = chosen
        finally:
            self._filtering = False

    def _on_pick(self, change: dict[str, Any]) -> None:
        if not self._filtering:
            self._chosen = list(change["new"])


_INTS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)


def _guess_label(frame: pl.DataFrame | None, ts: str) -> str | None:
    if frame is None:
        return None
    candidates = [
        c
        for c, dtype in frame.schema.items()
        if c != ts and (dtype == pl.Boolean or dtype in _INTS) and not c.endswith("_id")
    ]
    others = [c for c in frame.columns if c != ts]
    return candidates[-1] if candidates else (others[-1] if others else None)


def _date_range(frame: pl.DataFrame | None, ts: str) -> tuple[date | None, date | None]:
    if frame is None or ts not in frame.columns or frame.is_empty():
        return None, None
    low, high = frame[ts].min(), frame[ts].max()
    return getattr(low, "date", lambda: None)(), getattr(high, "date", lambda: None)()


# ------------------------------------------------------------------------------------------
# TrainPanel
# ------------------------------------------------------------------------------------------


class TrainPanel(Panel):
    """Train XGBoost on a training set with a live progress bar, see its metrics and charts,
    and register it as the next model version.

    Parameters
    ----------
    store
        The feature store the training set was built from.
    training_set
        A training set (polars DataFrame), or a :class:`TrainingSetBuilder` whose latest
        result is used (the choices follow it).
    features
        The feature refs offered (default: the builder's, or every ``view:feature`` of the
        store with a column in the training set).
    label
        The label column (default: the builder's label, else a guess).
    extra_columns
        Plain columns of the training set also used as model inputs (e.g. ``"amount"``).
    model_name
        The name Register writes the model under.

    Attributes
    ----------
    result : fskit.TrainResult | None
        The last trained model (Train is one ``fk.train(...)`` call).
    model_version : fskit.ModelVersion | None
        The last registered version (Register is one ``result.register(name)`` call).
    """

    result = Result(None, help="The last TrainResult.")
    model_version = Result(None, help="The last ModelVersion registered.")

    def __init__(
        self,
        store: FeatureStore,
        training_set: pl.DataFrame | TrainingSetBuilder | None = None,
        *,
        features: Sequence[str] | None = None,
        label: str | None = None,
        extra_columns: Sequence[str] = (),
        model_name: str = "model",
    ) -> None:
        self.store = store
        self.builder = training_set if isinstance(training_set, TrainingSetBuilder) else None
        self._frame = None if self.builder is not None else training_set
        self._features, self._label, self._extra = features, label, list(extra_columns)
        self.label = widgets.Dropdown(description="label")
        self.feature_select = widgets.SelectMultiple(rows=8, layout=widgets.Layout(width="340px"))
        self.extra_select = widgets.SelectMultiple(rows=4, layout=widgets.Layout(width="340px"))
        style = {"description_width": "150px"}
        wide = widgets.Layout(width="420px")
        self.max_depth = widgets.IntSlider(
            value=6, min=1, max=12, description="max_depth", style=style, layout=wide
        )
        self.eta = widgets.FloatLogSlider(
            value=0.1,
            base=10,
            min=-2.5,
            max=0,
            step=0.05,
            description="eta (learning rate)",
            style=style,
            layout=wide,
            readout_format=".3f",
        )
        self.rounds = widgets.IntSlider(
            value=200,
            min=10,
            max=1000,
            step=10,
            description="boosting rounds",
            style=style,
            layout=wide,
        )
        self.early_stopping = widgets.IntSlider(
            value=20,
            min=0,
            max=100,
            description="early stopping (0: off)",
            style=style,
            layout=wide,
        )
        self.validation_fraction = widgets.FloatSlider(
            value=0.2,
            min=0.05,
            max=0.5,
            step=0.05,
            description="validate on latest",
            readout_format=".0%",
            style=style,
            layout=wide,
        )
        self.train_button = button("Train", button_style="primary", icon="play")
        self.model_name = widgets.Text(value=model_name, description="model name")
        self.register_button = button("Register", icon="save", disabled=True, tooltip="Train first")
        self.metrics = widgets.Output()
        self.charts = widgets.Output()
        self.source_note = note("")
        super().__init__(
            [
                self.source_note,
                hbox(
                    widgets.VBox(
                        [
                            self.label,
                            note("Features"),
                            self.feature_select,
                            note("Extra input columns (request-time fields)"),
                            self.extra_select,
                        ]
                    ),
                    widgets.VBox(
                        [
                            self.max_depth,
                            self.eta,
                            self.rounds,
                            self.early_stopping,
                            self.validation_fraction,
                            hbox(self.train_button),
                        ]
                    ),
                ),
                self.metrics,
                self.charts,
                hbox(self.model_name, self.register_button),
            ]
        )
        self.train_button.on_click(lambda _: self.train())
        self.register_button.on_click(lambda _: self.register())
        if self.builder is not None:
            self.builder.observe(lambda _: self._refresh_choices(), "result")
        self._refresh_choices()

    @property
    def training_set(self) -> pl.DataFrame | None:
        if self.builder is not None:
            return self.builder.result
        return self._frame

    def _refresh_choices(self) -> None:
        frame = self.training_set
        if frame is None:
            self.source_note.value = (
                f"<span style='color:{MUTED_COLOR}'>No training set yet: build one first.</span>"
            )
            return
        if self._features is not None:
            refs = list(self._features)
        elif self.builder is not None:
            refs = self.builder.chosen
        else:
            refs = [r for r in _feature_refs(self.store) if r.split(":")[1] in frame.columns]
        label = self._label or (self.builder.label.value if self.builder else None)
        label = label if label in frame.columns else _guess_label(frame, "event_timestamp")
        feature_columns = {r.split(":")[1] for r in refs}
        others = [
            c
            for c, dtype in frame.schema.items()
            if c not in feature_columns and c != label and dtype.is_numeric()
        ]
        self.label.options = [c for c in frame.columns if c != "event_timestamp"]
        self.label.value = label
        self.feature_select.options = refs
        self.feature_select.value = refs
        self.extra_select.options = others
        self.extra_select.value = [c for c in self._extra if c in others]
        self.source_note.value = (
            f"<span style='color:{MUTED_COLOR}'>Training set: {frame.height:,} rows × "
            f"{frame.width} columns.</span>"
        )

    def train(self) -> Any:
        """What the Train button does: one ``fk.train(...)`` call with a live progress bar."""
        frame = self.training_set
        if frame is None:
            self._refuse("Train", "no training set: build one in the training-set tab first")
            return None
        rounds = self.rounds.value
        result = self._call(
            "Train",
            fk.train,
            self.store,
            frame,
            label=self.label.value,
            features=list(self.feature_select.value),
            extra_columns=list(self.extra_select.value),
            params={"max_depth": self.max_depth.value, "eta": self.eta.value},
            split=fk.TimeSplit(validation_fraction=self.validation_fraction.value),
            num_boost_round=rounds,
            early_stopping_rounds=self.early_stopping.value or None,
            progress=self._on_round,
            steps=rounds,
        )
        if result is None:
            return None
        m = result.metrics
        self._set_status(
            f"Trained in {result.seconds:.1f} s: validation AUC {m['auc']:.4f}, PR-AUC "
            f"{m['pr_auc']:.4f}, best round {result.best_round} of {result.rounds}",
            "#1a7f37",
        )
        show(self.metrics, result)
        show(self.charts, result.curve_chart(), result.importance_chart())
        self.register_button.disabled = False
        self.register_button.tooltip = ""
        self.result = result
        return result

    def register(self) -> Any:
        """What the Register button does: one ``result.register(name)`` call."""
        if self.result is None:
            self._refuse("Register", "train a model first")
            return None
        mv = self._call("Register", self.result.register, self.model_name.value.strip())
        if mv is not None:
            self._set_status(
                f"Registered <code>{html.escape(mv.ref)}</code> in {html.escape(str(mv.path))}",
                "#1a7f37",
            )
            self.model_version = mv
        return mv

    def _on_round(self, done: int, total: int, logloss: dict[str, float]) -> None:
        valid = logloss.get("valid_logloss")
        text = f"round {done}/{total}" + ("" if valid is None else f", valid logloss {valid:.4f}")
        self._step(done, total, text)
