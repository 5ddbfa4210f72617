"""The online simulator: replay an event stream against a materialization schedule.

:func:`replay` answers "what would my model server have read?": it walks through a timestamped
event stream (the sample transactions, say) in simulated time, runs a materializer on its
schedule (or pushes rows as they arrive) into a throw-away online store, and makes one online
lookup per event, as a model server would. :func:`sweep` replays the same stream for several
schedules and draws the freshness/cost trade-off.

>>> from datetime import UTC, datetime, timedelta
>>> import tempfile
>>> import polars as pl
>>> import fskit as fk
>>> T = datetime(2026, 1, 1, 10, tzinfo=UTC)
>>> rows = pl.DataFrame({
...     "user_id": [1, 1],
...     "event_timestamp": [T, T + timedelta(minutes=20)],
...     "created_timestamp": [T + timedelta(minutes=5), T + timedelta(minutes=32)],
...     "score": [1.0, 2.0],
... })
>>> store = fk.FeatureStore(tempfile.mkdtemp())
>>> user = fk.Entity("user", join_keys=["user_id"])
>>> view = fk.FeatureView(name="stats", entities=[user], freshness_sla=timedelta(minutes=20),
...     source=fk.DataFrameSource(rows, created_timestamp_field="created_timestamp"))
>>> _ = store.apply([user, view])
>>> reads = pl.DataFrame({"user_id": [1, 1, 1], "event_timestamp": [
...     T + timedelta(minutes=15), T + timedelta(minutes=35), T + timedelta(minutes=45)]})
>>> result = replay(store, reads, features=["stats:score"], materialize_every=timedelta(minutes=10))
>>> result.reads.select("t", "score", "score__truth", "stats__staleness_s", "stats__past_sla")
shape: (3, 5)
┌─────────────────────────┬───────┬──────────────┬────────────────────┬─────────────────┐
│ t                       ┆ score ┆ score__truth ┆ stats__staleness_s ┆ stats__past_sla │
│ ---                     ┆ ---   ┆ ---          ┆ ---                ┆ ---             │
│ datetime[μs, UTC]       ┆ f64   ┆ f64          ┆ f64                ┆ bool            │
╞═════════════════════════╪═══════╪══════════════╪════════════════════╪═════════════════╡
│ 2026-01-01 10:15:00 UTC ┆ 1.0   ┆ 1.0          ┆ 900.0              ┆ false           │
│ 2026-01-01 10:35:00 UTC ┆ 1.0   ┆ 2.0          ┆ 2100.0             ┆ true            │
│ 2026-01-01 10:45:00 UTC ┆ 2.0   ┆ 2.0          ┆ 1500.0             ┆ true            │
└─────────────────────────┴───────┴──────────────┴────────────────────┴─────────────────┘

The second read is served the old value: the new row was created at 10:32, and the
materializer runs at 10:30 and 10:40.

Semantics
---------
**Simulated time.** Nothing sleeps. Times are instants (naive datetimes are UTC). Reads happen
at the events' timestamps between ``start`` and ``end`` (default: the first and the last event).

**Where.** Everything is written to a fresh temporary ``DiskcacheBackend`` reached through
:meth:`FeatureStore.with_online_backend`, closed and deleted at the end. The repo's own online
store, watermarks and materialization log are never opened; the materializer keeps its
watermarks in memory.

**When a row exists.** A feature row is *known* from ``max(event_timestamp,
created_timestamp)`` on (its event timestamp when it has no created timestamp): a daily
snapshot stamped at midnight but produced at 02:30 cannot be served before 02:30.

**Scheduled materialization** (``materialize_every``). The materializer runs at every multiple
of the interval since the Unix epoch, like cron (15 minutes means :00, :15, :30 and :45 UTC),
from the last such tick at or before ``start`` to ``end``. A run at tick ``T`` runs before the
reads at ``T``. Per online view it writes the newest row per entity (event timestamp, then
created timestamp, as in the offline join) among

* ``watermark="created"`` (default): the rows that became known since the view's last
  successful run (everything known for the first run). No row is ever lost.
* ``watermark="event"``: the rows with ``last run <= event_timestamp <= T`` that are known at
  ``T`` — a materializer that tracks event time only (fskit's own did, before it tracked
  known time). A row created after the run that covered its event time is never written:
  late data is lost. Kept to show that failure.

A stream view's run writes the event buffers of the entities with newly known events
(``"event"``: of every entity with events in the window, as ``materialize`` does).

**Push** (``push=True``, no schedule). The online store starts from a full materialization at
``start``; after that, every row is written at the moment it becomes known, one after the
other in that order (an older event never overwrites a newer one), as a stream consumer
would. Writes are flushed just before the next read, which no reader can tell apart.

**Reads.** Each sampled event (``read_fraction``) is one call of the real
:meth:`FeatureStore.get_online_features` for that event's keys with ``now`` = its timestamp;
its wall-clock duration (``time.perf_counter_ns``) is the read latency. TTLs apply on read.

**Truth** is what a training set holds for the same entity and time:
``get_historical_features(reads, features, as_known_at=True)``, one call for all reads.

**Recorded per read** (:attr:`SimulationResult.reads`): ``t``, the keys, ``latency_us``,
each feature served and its ``<feature>__truth``, and per view ``<view>__status`` (``PRESENT``,
``NOT_FOUND``, ``OUTSIDE_MAX_AGE``, ``UNAVAILABLE``; null when the read raised),
``<view>__event_timestamp``, ``<view>__staleness_s`` (``t`` minus the served row's event
timestamp, in seconds; null without a stored row) and ``<view>__past_sla`` (staleness above the
view's ``freshness_sla``; null without a stored row or an SLA). Then ``past_sla`` (any view),
``degraded`` (some view was not ``PRESENT``, or the read failed: the model got fallback values),
``error`` and ``matches_truth`` (every feature equals its truth, nulls equal nulls; null when
the read failed).

**Faults** (``faults=[...]``; windows are ``[start, end)``):

* :class:`StoreDown` — the store raises ``StoreUnavailableError`` while the simulated clock is
  in the window: reads get the fallback; materializer runs (and pushes) fail and are retried
  on the next tick, from the same watermark, so the data lands after the window.
* :class:`EntityMissing` — those entities are never written online: their reads are
  ``NOT_FOUND`` (the offline truth still has them).
* :class:`StaleData` — the materializer (or push) of a view is paused in the window: values age,
  and staleness and SLA breaches show it; it catches up after the window.

**Fallback** for a view that is not ``PRESENT``: ``"null"`` serves nulls (a store that is down
reads as ``UNAVAILABLE``), ``"defaults"`` serves ``defaults[feature]`` instead (nulls for
features without a default), ``"raise"`` lets a store outage raise: the read is recorded with
its ``error`` and no values.

**Cost** is the rows the backend actually wrote (a row older than the stored one is skipped
and not counted), per run in :attr:`SimulationResult.materializations`; ``runs`` counts the
materializer's runs, each of which would scan the offline store. In ``.summary``, staleness
and the share past the SLA are over the reads that found a stored row; the share matching the
truth is over the reads that did not raise.

**Limits.** On-demand features are served and compared with the truth, but staleness is
measured for the views requested directly: add a source view's features to see its
freshness. The offline truth of a stream view does not apply ``as_known_at``.
"""

from __future__ import annotations

import html
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl

from fskit._utils.html import table
from fskit._utils.time import as_utc, from_us, td_us, to_us
from fskit.definitions import FeatureView, _as_polars, format_timedelta
from fskit.errors import DefinitionError, EntityFrameError, StoreUnavailableError
from fskit.materialization import event_buffers, write_rows
from fskit.offline import FeatureLike, _utc, scan_view
from fskit.online import DiskcacheBackend
from fskit.retrieval import PRESENT, OnlineView, plan_request
from fskit.transformations import OnDemandFeatureView, StreamFeatureView

if TYPE_CHECKING:
    import altair as alt

    from fskit.store import FeatureStore

__all__ = [
    "EntityMissing",
    "Fault",
    "SimulationResult",
    "StaleData",
    "StoreDown",
    "SweepResult",
    "replay",
    "sweep",
]

#: The default schedule of :func:`replay`.
DEFAULT_MATERIALIZE_EVERY = timedelta(minutes=15)
#: The schedules :func:`sweep` compares by default.
DEFAULT_SWEEP = (
    "push",
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(days=1),
)
#: More ticks than this is a mistake (1 second over 60 days is 5 million runs): refuse it.
MAX_TICKS = 200_000
#: Charts draw at most this many time buckets and histogram bins.
TIME_BUCKETS = 100
HIST_BINS = 30

Fallback = Literal["null", "defaults", "raise"]
Progress = Callable[[int, int], None]
"""``progress(reads_done, reads_total)``, called every 0.5 % of the reads and at the end."""

_T = "__simulate_t"
_FAULT_COLORS = {"StoreDown": "#d62728", "StaleData": "#ff7f0e", "EntityMissing": "#9467bd"}


# --------------------------------------------------------------------------------------------
# time
# --------------------------------------------------------------------------------------------


def _instant(value: Any, owner: str, name: str) -> datetime:
    return as_utc(value, f"{owner}: {name}")


def _naive(us: int) -> datetime:
    return from_us(us).replace(tzinfo=None)


def _human(seconds: float | None) -> str:
    """``5400.0`` -> ``'1.5h'``: a duration short enough for a summary line."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if abs(seconds) >= 2 * size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds:.3g}s"


def _label(every: timedelta | str | None) -> str:
    if every is None:
        return "never"
    return every if isinstance(every, str) else format_timedelta(every)


# --------------------------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------------------------


def _window(fault: Any) -> None:
    owner = type(fault).__name__
    start = _instant(fault.start, owner, "start")
    end = _instant(fault.end, owner, "end")
    if start >= end:
        raise DefinitionError(f"{owner}: start {start} must be before end {end}")
    object.__setattr__(fault, "start", start)
    object.__setattr__(fault, "end", end)


@dataclass(frozen=True)
class StoreDown:
    """The online store is unreachable from ``start`` (inclusive) to ``end`` (exclusive).

    Reads in the window get the fallback; materializer runs in it fail and are retried on the
    next tick.

    >>> from datetime import datetime
    >>> StoreDown(datetime(2026, 1, 5, 9), datetime(2026, 1, 5, 10))
    StoreDown(start=datetime.datetime(2026, 1, 5, 9, 0, tzinfo=datetime.timezone.utc), end=...)
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        _window(self)


@dataclass(frozen=True)
class StaleData:
    """The materializer (or push) of ``view`` (default: every view) is paused in the window.

    ``view`` is a view name (``"user_stats"``) or versioned ref (``"user_stats@v1"``).
    """

    start: datetime
    end: datetime
    view: str | None = None

    def __post_init__(self) -> None:
        _window(self)
        if self.view is not None and not isinstance(self.view, str):
            raise DefinitionError(f"StaleData: view must be a view name or None, got {self.view!r}")


@dataclass(frozen=True)
class EntityMissing:
    """These entities are never written online, so their reads are ``NOT_FOUND``.

    ``keys`` names join keys and values: ``{"user_id": 7}``, ``{"user_id": [7, 8]}`` or
    ``[{"user_id": 7}, {"user_id": 8}]``. The fault applies to every view whose join keys are
    exactly these (or only to ``view`` when given).

    >>> EntityMissing([{"user_id": 7}, {"user_id": 8}])
    EntityMissing(keys={'user_id': (7, 8)}, view=None)
    """

    keys: Any
    view: str | None = None

    def __post_init__(self) -> None:
        keys = self.keys
        if isinstance(keys, Mapping):
            columns = {
                str(k): tuple(v) if isinstance(v, (list, tuple)) else (v,) for k, v in keys.items()
            }
        elif isinstance(keys, (list, tuple)) and keys and all(isinstance(r, Mapping) for r in keys):
            names = list(dict.fromkeys(k for row in keys for k in row))
            if any(set(row) != set(names) for row in keys):
                raise DefinitionError(
                    f"EntityMissing: every key row must name the same join keys {names}, "
                    f"got {keys!r}"
                )
            columns = {name: tuple(row[name] for row in keys) for name in names}
        else:
            raise DefinitionError(
                "EntityMissing: keys must be a dict like {'user_id': 7} or {'user_id': [7, 8]}, "
                f"or a list of such dicts, got {keys!r}"
            )
        if not columns or len({len(v) for v in columns.values()}) != 1:
            raise DefinitionError(
                f"EntityMissing: keys must give the same number of values per join key, got "
                f"{keys!r}"
            )
        object.__setattr__(self, "keys", columns)


Fault = StoreDown | StaleData | EntityMissing


def _matches(view: FeatureView, name: str | None) -> bool:
    return name is None or name in (view.name, view.ref)


# --------------------------------------------------------------------------------------------
# the simulation's online store
# --------------------------------------------------------------------------------------------


class _FaultyBackend:
    """A real backend that raises ``StoreUnavailableError`` while the simulated clock
    (``now_us``, set by the simulator before every operation) is in a StoreDown window."""

    def __init__(self, inner: Any, windows: list[tuple[int, int]]) -> None:
        self.inner, self.windows, self.now_us = inner, windows, 0

    def __repr__(self) -> str:
        return f"_FaultyBackend({self.inner!r}, outages={len(self.windows)})"

    def _check(self) -> None:
        for start, end in self.windows:
            if start <= self.now_us < end:
                raise StoreUnavailableError(
                    f"simulated outage: the online store is down from {from_us(start):%Y-%m-%d %H:%M} "
                    f"to {from_us(end):%Y-%m-%d %H:%M} UTC (StoreDown fault)"
                )

    def write(self, table: str, items: Any, *, only_newer: bool = True) -> int:
        self._check()
        return self.inner.write(table, items, only_newer=only_newer)

    def read(self, table: str, keys: Sequence[bytes]) -> list[bytes | None]:
        self._check()
        return self.inner.read(table, keys)

    def delete_table(self, table: str) -> int:
        self._check()
        return self.inner.delete_table(table)

    def tables(self) -> list[str]:
        self._check()
        return self.inner.tables()

    def ping(self) -> None:
        self._check()
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> _FaultyBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# the materializer: each view's rows, loaded once, sliced by time
# --------------------------------------------------------------------------------------------


class _ViewRows:
    """One online view's offline rows in memory, sorted by the time they become known.

    ``batch(mark, t, mode)`` gives what to write at ``t`` when the view's watermark is
    ``mark`` (None before the first run): rows ready for :func:`write_rows`.
    """

    def __init__(self, view: FeatureView, repo_path: Path, missing: list[dict]) -> None:
        self.view, self.repo_path = view, repo_path
        self.stream = isinstance(view, StreamFeatureView)
        self.keys = list(view.join_keys)
        source = view.source
        scan = scan_view(view, repo_path)
        schema = scan.collect_schema()
        ts, created = source.timestamp_field, source.created_timestamp_field  # type: ignore[union-attr]
        stamps = [_utc(pl.col(ts), schema[ts]).alias("__ts")]
        if created is not None:
            stamps.append(_utc(pl.col(created), schema[created]).alias("__created"))
        else:
            stamps.append(pl.lit(None, pl.Datetime("us")).alias("__created"))
        if self.stream:
            frame = view.filter_events(scan).with_columns(stamps)  # type: ignore[attr-defined]
        else:
            frame = scan.select(*self.keys, *stamps, *view.feature_names)
        frame = frame.filter(pl.col("__ts").is_not_null())
        for key in self.keys:
            frame = frame.filter(pl.col(key).is_not_null())
        for keys in missing:
            absent = pl.DataFrame(keys).select(pl.col(k).cast(schema[k]) for k in self.keys)
            frame = frame.join(absent.lazy(), on=self.keys, how="anti", maintain_order="left")
        frame = frame.with_columns(
            pl.max_horizontal("__ts", "__created").alias("__known"),
            pl.col("__ts").dt.replace_time_zone("UTC").alias("event_timestamp"),
        )
        # arrival order; equal times keep the source order, so the last row wins as offline
        self.rows = frame.sort(
            ["__known", "__ts", "__created"], nulls_last=False, maintain_order=True
        ).collect()
        self.known = self.rows["__known"].dt.epoch("us").to_numpy()
        self._by_event: tuple[pl.DataFrame, np.ndarray] | None = None
        self.columns = [*self.keys, "event_timestamp", *view.feature_names]

    def by_event(self) -> tuple[pl.DataFrame, np.ndarray]:
        if self._by_event is None:
            rows = self.rows.sort(["__ts", "__created"], nulls_last=False, maintain_order=True)
            self._by_event = rows, rows["__ts"].dt.epoch("us").to_numpy()
        return self._by_event

    def _newest(self, rows: pl.DataFrame) -> pl.DataFrame:
        return (
            rows.sort(["__ts", "__created"], nulls_last=False, maintain_order=True)
            .unique(subset=self.keys, keep="last", maintain_order=True)
            .select(self.columns)
        )

    def _span(self, mark: int | None, t: int) -> tuple[int, int]:
        """Positions of the rows that became known in ``(mark, t]``."""
        lo = 0 if mark is None else int(np.searchsorted(self.known, mark, side="right"))
        return lo, int(np.searchsorted(self.known, t, side="right"))

    def batch(self, mark: int | None, t: int, mode: str) -> pl.DataFrame | None:
        """What to write at ``t``, or None when there is nothing. ``mode``: "created" (known
        since mark, newest per entity), "push" (known since mark, every row in arrival order)
        or "event" (what ``latest_rows(view, repo, mark, t, known_at=t)`` gives)."""
        if self.stream:
            return self._buffers(mark, t, mode)
        if mode == "event":
            rows, ts = self.by_event()
            lo = 0 if mark is None else int(np.searchsorted(ts, mark, side="left"))
            hi = int(np.searchsorted(ts, t, side="right"))
            if lo >= hi:
                return None
            chunk = rows.slice(lo, hi - lo).filter(
                pl.col("__created").is_null() | (pl.col("__created") <= _naive(t))
            )
            return None if chunk.is_empty() else self._newest(chunk)
        lo, hi = self._span(mark, t)  # cheap: most ticks have nothing new
        if lo >= hi:
            return None
        chunk = self.rows.slice(lo, hi - lo)
        return chunk.select(self.columns) if mode == "push" else self._newest(chunk)

    def _buffers(self, mark: int | None, t: int, mode: str) -> pl.DataFrame | None:
        view: StreamFeatureView = self.view  # type: ignore[assignment]
        rows, ts = self.by_event()
        lo = int(np.searchsorted(ts, t - td_us(view.max_window), side="right"))
        hi = int(np.searchsorted(ts, t, side="right"))
        window = rows.slice(lo, max(hi - lo, 0))
        if mode != "event":
            new_lo, new_hi = self._span(mark, t)
            if new_lo >= new_hi:
                return None
            touched = self.rows.slice(new_lo, new_hi - new_lo).select(self.keys).unique()
            window = window.join(touched, on=self.keys, how="semi")
        if window.is_empty():
            return None
        at = from_us(t)
        return event_buffers(
            view, self.repo_path, at, known_at=at, events=window.lazy(), apply_filter=False
        )


class _Writer:
    """The simulation's materializer/pusher: watermarks in memory, one record per run."""

    def __init__(
        self,
        views: list[_ViewRows],
        backend: _FaultyBackend,
        mode: str,
        paused: dict[str, list[tuple[int, int]]],
    ) -> None:
        self.views, self.backend, self.mode, self.paused = views, backend, mode, paused
        self.marks: dict[str, int | None] = {v.view.ref: None for v in views}
        self.records: list[tuple[Any, ...]] = []

    def run(self, t: int, kind: str) -> None:
        """One run at ``t``: kind "schedule" (a tick), "initial" (push's starting state) or
        "push" (flush what became known). Empty pushes are not recorded."""
        self.backend.now_us = t
        mode = {"schedule": self.mode, "initial": "created", "push": "push"}[kind]
        for data in self.views:
            ref = data.view.ref
            mark = self.marks[ref]
            if any(s <= t < e for s, e in self.paused.get(ref, ())):
                if kind != "push":
                    self.records.append((t, kind, ref, "paused", mark, 0, 0, 0.0, None))
                continue
            began = time.perf_counter()
            rows = data.batch(mark, t, mode)
            if rows is None or rows.is_empty():
                self.marks[ref] = t
                if kind != "push":
                    seconds = time.perf_counter() - began
                    self.records.append((t, kind, ref, "ok", mark, 0, 0, seconds, None))
                continue
            try:
                written = write_rows(self.backend, data.view, rows)
            except StoreUnavailableError as exc:
                seconds = time.perf_counter() - began
                self.records.append(
                    (t, kind, ref, "failed", mark, rows.height, 0, seconds, str(exc))
                )
                continue
            self.marks[ref] = t
            seconds = time.perf_counter() - began
            self.records.append((t, kind, ref, "ok", mark, rows.height, written, seconds, None))

    def frame(self) -> pl.DataFrame:
        ts = pl.Datetime("us", "UTC")
        frame = pl.DataFrame(
            self.records,
            schema={
                "at": pl.Int64,
                "kind": pl.String,
                "view": pl.String,
                "status": pl.String,
                "since": pl.Int64,
                "rows": pl.Int64,
                "written": pl.Int64,
                "seconds": pl.Float64,
                "error": pl.String,
            },
            orient="row",
        )
        return frame.with_columns(pl.col("at", "since").cast(ts))


# --------------------------------------------------------------------------------------------
# preparing a replay (shared by every run of a sweep)
# --------------------------------------------------------------------------------------------


@dataclass
class _Prepared:
    store: FeatureStore
    features: list[FeatureLike]
    full_feature_names: bool
    plan: list[OnlineView]
    stored: list[_ViewRows]
    reads: pl.DataFrame  # read_id, t, entity columns
    truth: pl.DataFrame  # <column>__truth per feature
    entity: dict[str, list[Any]]
    read_us: list[int]
    read_dt: list[datetime]
    start_us: int
    end_us: int
    faults: tuple[Any, ...]
    down: list[tuple[int, int]]
    paused: dict[str, list[tuple[int, int]]]
    fallback: str
    defaults: dict[str, Any]
    settings: dict[str, Any]

    @property
    def feature_columns(self) -> list[str]:
        return [c for part in self.plan for c in part.columns]

    @property
    def status_parts(self) -> list[OnlineView]:
        return [part for part in self.plan if part.kind != "on_demand"]


def _prepare(
    store: FeatureStore,
    events: Any,
    *,
    features: Sequence[FeatureLike],
    read_fraction: float,
    start: datetime | None,
    end: datetime | None,
    faults: Sequence[Fault],
    full_feature_names: bool,
    timestamp_column: str,
    seed: int,
    fallback: str,
    defaults: Mapping[str, Any] | None,
) -> _Prepared:
    from fskit.store import FeatureStore

    owner = "simulate"
    if not isinstance(store, FeatureStore):
        raise DefinitionError(f"{owner}: store must be a fk.FeatureStore, got {store!r}")
    if isinstance(features, (str, FeatureView)):
        features = [features]
    features = list(features)
    if isinstance(read_fraction, bool) or not isinstance(read_fraction, (int, float)):
        raise DefinitionError(f"{owner}: read_fraction must be a number, got {read_fraction!r}")
    if not 0 < read_fraction <= 1:
        raise DefinitionError(
            f"{owner}: read_fraction must be in (0, 1] (the share of events read), "
            f"got {read_fraction!r}"
        )
    faults = tuple(faults)
    for fault in faults:
        if not isinstance(fault, (StoreDown, StaleData, EntityMissing)):
            raise DefinitionError(
                f"{owner}: faults must be StoreDown, StaleData or EntityMissing, got {fault!r}"
            )

    plan = plan_request(store, features, full_feature_names)
    checked = _check_fallback(plan, fallback, defaults)
    registry_view = store.registry.get_feature_view
    stored: dict[str, FeatureView] = {}
    needed: list[str] = []
    for part in plan:
        if part.kind == "on_demand":
            odfv: OnDemandFeatureView = part.view  # type: ignore[assignment]
            sources = [registry_view(r.view, r.version) for r in odfv.sources]  # type: ignore[union-attr]
            needed += [f.name for f in odfv.request_schema]  # type: ignore[union-attr]
        else:
            sources = [part.view]
        for view in sources:
            needed += view.join_keys
            stored.setdefault(view.ref, view)
    needed = list(dict.fromkeys(needed))
    reserved = sorted({"t", "read_id"} & set(needed))
    if reserved:
        raise EntityFrameError(
            f"{owner}: the features need columns named {reserved}, which the simulator uses "
            "for the read time and number; rename them"
        )
    offline = [ref for ref, view in stored.items() if not view.online]
    if offline:
        raise DefinitionError(
            f"{owner}: feature views {offline} have online=False, so they are never served "
            "online; set online=True and apply, or leave their features out"
        )

    # reads
    try:
        frame = _as_polars(events, owner, "events")
    except DefinitionError as exc:
        raise EntityFrameError(str(exc)) from None
    if isinstance(frame, pl.LazyFrame):
        frame = frame.collect()
    lacking = [c for c in [*needed, timestamp_column] if c not in frame.columns]
    if lacking:
        raise EntityFrameError(
            f"{owner}: events lack column(s) {lacking} (columns: {frame.columns}); the "
            f"features need {needed} and a Datetime column {timestamp_column!r} "
            "(pass timestamp_column= for another name)"
        )
    dtype = frame.schema[timestamp_column]
    if not isinstance(dtype, (pl.Datetime, pl.Date)):
        raise EntityFrameError(
            f"{owner}: events column {timestamp_column!r} must be Datetime, got {dtype}"
        )
    frame = frame.select(
        _utc(pl.col(timestamp_column), dtype).dt.replace_time_zone("UTC").alias("t"),
        *(c for c in needed if c != "t"),
    ).filter(pl.col("t").is_not_null())
    if frame.is_empty():
        raise EntityFrameError(f"{owner}: events has no rows with a timestamp")
    start = frame["t"].min() if start is None else _instant(start, owner, "start")  # type: ignore[assignment]
    end = frame["t"].max() if end is None else _instant(end, owner, "end")  # type: ignore[assignment]
    assert isinstance(start, datetime) and isinstance(end, datetime)
    if start > end:
        raise DefinitionError(f"{owner}: start {start} is after end {end}")
    frame = frame.filter(pl.col("t").is_between(start, end, closed="both"))
    n_events = frame.height
    if read_fraction < 1:
        keep = np.random.default_rng(seed).random(frame.height) < read_fraction
        frame = frame.filter(pl.Series(keep))
    if frame.is_empty():
        raise EntityFrameError(
            f"{owner}: no events between {start} and {end} (with read_fraction={read_fraction})"
        )
    reads = frame.sort("t", maintain_order=True).with_row_index("read_id")

    # faults
    views = list(stored.values())
    missing: dict[str, list[dict]] = {ref: [] for ref in stored}
    down, paused = [], {ref: [] for ref in stored}
    for fault in faults:
        if isinstance(fault, StoreDown):
            down.append((to_us(fault.start), to_us(fault.end)))
            continue
        chosen = [v for v in views if _matches(v, fault.view)]
        if fault.view is not None and not chosen:
            raise DefinitionError(
                f"{owner}: {type(fault).__name__} names view {fault.view!r}, which these "
                f"features do not read; views: {sorted(stored)}"
            )
        if isinstance(fault, StaleData):
            for view in chosen:
                paused[view.ref].append((to_us(fault.start), to_us(fault.end)))
            continue
        names = set(fault.keys)
        hit = [v for v in chosen if set(v.join_keys) == names]
        if not hit:
            raise DefinitionError(
                f"{owner}: EntityMissing keys {sorted(names)} are not the join keys of any "
                f"view read: { ({v.ref: list(v.join_keys) for v in chosen}) }"
            )
        for view in hit:
            missing[view.ref].append(fault.keys)

    stored_rows = [_ViewRows(v, store.repo_path, missing[v.ref]) for v in views]
    truth = store.get_historical_features(
        reads.select(*needed, pl.col("t").alias(_T)),
        features,
        full_feature_names=full_feature_names,
        event_timestamp_column=_T,
        as_known_at=True,
    )
    columns = [c for part in plan for c in part.columns]
    truth = truth.select(pl.col(c).alias(f"{c}__truth") for c in columns)
    entity = {c: reads[c].to_list() for c in needed}
    read_dt = reads["t"].to_list()
    return _Prepared(
        store=store,
        features=features,
        full_feature_names=full_feature_names,
        plan=plan,
        stored=stored_rows,
        reads=reads,
        truth=truth,
        entity=entity,
        read_us=reads["t"].dt.epoch("us").to_list(),
        read_dt=read_dt,
        start_us=to_us(start),
        end_us=to_us(end),
        faults=faults,
        down=down,
        paused=paused,
        fallback=fallback,
        defaults=checked,
        settings={
            "events": n_events,
            "reads": reads.height,
            "read_fraction": read_fraction,
            "start": start,
            "end": end,
            "seed": seed,
            "faults": faults,
        },
    )


# --------------------------------------------------------------------------------------------
# running it
# --------------------------------------------------------------------------------------------


def _check_fallback(
    plan: list[OnlineView], fallback: str, defaults: Mapping[str, Any] | None
) -> dict[str, Any]:
    if fallback not in ("null", "defaults", "raise"):
        raise DefinitionError(
            f"simulate: fallback must be 'null', 'defaults' or 'raise', got {fallback!r}"
        )
    if fallback != "defaults":
        if defaults:
            raise DefinitionError(
                f"simulate: defaults are only served with fallback='defaults' (got "
                f"fallback={fallback!r}); pass fallback='defaults'"
            )
        return {}
    if not isinstance(defaults, Mapping) or not defaults:
        raise DefinitionError(
            "simulate: fallback='defaults' needs defaults={feature: value}, e.g. "
            "{'total_purchases': 0}"
        )
    columns = [c for part in plan for c in part.columns]
    unknown = sorted(set(defaults) - set(columns))
    if unknown:
        raise DefinitionError(
            f"simulate: defaults name {unknown}, which are not requested features; "
            f"features: {columns}"
        )
    schema = {c: d for part in plan for c, d in part.schema.items()}
    for name, value in defaults.items():
        try:
            pl.Series([value]).cast(schema[name], strict=True)
        except (pl.exceptions.PolarsError, TypeError) as exc:
            raise DefinitionError(
                f"simulate: default {value!r} for {name!r} does not fit its dtype "
                f"{schema[name]}: {exc}"
            ) from None
    return dict(defaults)


def _schedule(prepared: _Prepared, every: timedelta | None, push: bool) -> list[tuple[int, str]]:
    """The materializer's runs, in time order: ticks, or push's start and fault boundaries."""
    start, end = prepared.start_us, prepared.end_us
    if push:
        runs = [(start, "initial")]
        windows = prepared.down + [w for ws in prepared.paused.values() for w in ws]
        for s, e in windows:  # push right before a fault and right after it
            runs += [(t, "push") for t in (s - 1, e) if start < t <= end]
        return sorted(set(runs), key=lambda r: (r[0], r[1] != "initial"))
    if every is None:
        return []
    step = td_us(every)
    first = start // step * step
    count = (end - first) // step + 1
    if count > MAX_TICKS:
        raise DefinitionError(
            f"simulate: materialize_every={_label(every)} gives {count:,} runs between "
            f"{from_us(start)} and {from_us(end)} (at most {MAX_TICKS:,}); use a longer interval, or "
            "push=True for per-row freshness"
        )
    return [(first + k * step, "schedule") for k in range(count)]


def _run(
    prepared: _Prepared,
    *,
    every: timedelta | None,
    push: bool,
    watermark: str,
    progress: Progress | None,
    progress_offset: int = 0,
    progress_total: int | None = None,
) -> SimulationResult:
    p = prepared
    runs = _schedule(p, every, push)
    columns = p.feature_columns
    meta = [
        f"{part.prefix}__{what}"
        for part in p.status_parts
        for what in ("event_timestamp", "staleness", "status")
    ]
    values: dict[str, list[Any]] = {c: [] for c in [*columns, *meta]}
    latency: list[int] = []
    errors: list[str | None] = []
    n = len(p.read_us)
    total = n if progress_total is None else progress_total
    step = max(1, n // 200)
    on_unavailable = "raise" if p.fallback == "raise" else "null"
    entity_names = list(p.entity)
    entity_values = list(zip(*p.entity.values(), strict=True))

    workdir = Path(tempfile.mkdtemp(prefix="fskit-simulate-"))
    inner = None
    try:
        inner = DiskcacheBackend(workdir / "online")
        backend = _FaultyBackend(inner, p.down)
        sim = p.store.with_online_backend(backend)
        writer = _Writer(p.stored, backend, watermark, p.paused)
        j, pushed_at = 0, None
        for i in range(n):
            t = p.read_us[i]
            while j < len(runs) and runs[j][0] <= t:
                writer.run(*runs[j])
                j += 1
            if push and t != pushed_at:  # once per instant, however many reads share it
                writer.run(t, "push")
                pushed_at = t
            backend.now_us = t
            rows = {name: [v] for name, v in zip(entity_names, entity_values[i], strict=True)}
            began = time.perf_counter_ns()
            try:
                out = sim.get_online_features(
                    p.features,
                    rows,
                    full_feature_names=p.full_feature_names,
                    now=p.read_dt[i],
                    return_type="dict",
                    on_unavailable=on_unavailable,
                )
            except StoreUnavailableError as exc:
                latency.append(time.perf_counter_ns() - began)
                errors.append(str(exc))
                for column in values.values():
                    column.append(None)
            else:
                latency.append(time.perf_counter_ns() - began)
                errors.append(None)
                for name, column in values.items():
                    column.append(out[name][0])  # type: ignore[index]
            if progress is not None and ((i + 1) % step == 0 or i + 1 == n):
                progress(progress_offset + i + 1, total)
        while j < len(runs):
            writer.run(*runs[j])
            j += 1
        if push and pushed_at != p.end_us:
            writer.run(p.end_us, "push")
    finally:
        if inner is not None:
            inner.close()
        shutil.rmtree(workdir, ignore_errors=True)

    settings = {
        **p.settings,
        "materialize_every": None if push else every,
        "push": push,
        "watermark": None if push or every is None else watermark,
        "fallback": p.fallback,
        "defaults": p.defaults,
        "features": [str(getattr(f, "ref", f)) for f in p.features],
        "views": [
            {
                "view": part.view.ref,
                "prefix": part.prefix,
                "freshness_sla_s": _seconds(part.view.freshness_sla),
                "ttl_s": _seconds(part.view.ttl),
            }
            for part in p.status_parts
        ],
    }
    reads = _reads_frame(p, values, latency, errors, p.defaults)
    materializations = writer.frame()
    return SimulationResult(
        reads=reads,
        materializations=materializations,
        summary=_summary(p, reads, materializations),
        features=_feature_gaps(p, reads),
        settings=settings,
    )


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _reads_frame(
    p: _Prepared,
    values: dict[str, list[Any]],
    latency: list[int],
    errors: list[str | None],
    defaults: dict[str, Any],
) -> pl.DataFrame:
    schema: dict[str, Any] = {}
    for part in p.plan:
        schema.update(part.schema)
    served = pl.DataFrame(
        [
            pl.Series(name, column, dtype=schema[name], strict=False)
            for name, column in values.items()
        ]
    )
    frame = pl.concat(
        [
            p.reads,
            pl.DataFrame(
                {
                    "latency_us": pl.Series(latency, dtype=pl.Int64) / 1000,
                    "error": pl.Series(errors, dtype=pl.String),
                }
            ),
            served,
            p.truth,
        ],
        how="horizontal",
    )
    failed = pl.col("error").is_not_null()
    not_present = {
        part.prefix: pl.col(f"{part.prefix}__status").fill_null("") != PRESENT
        for part in p.status_parts
    }
    if defaults:
        anything_missing = (
            pl.any_horizontal(list(not_present.values())) if not_present else pl.lit(False)
        )
        fills = []
        for part in p.plan:
            for column in part.columns:
                if column not in defaults:
                    continue
                if part.kind == "on_demand":  # computed from other views: where it is null
                    use = anything_missing & pl.col(column).is_null()
                else:
                    use = not_present[part.prefix]
                value = pl.lit(defaults[column]).cast(schema[column])
                fills.append(pl.when(use).then(value).otherwise(pl.col(column)).alias(column))
        frame = frame.with_columns(fills)
    per_view = [
        (pl.col(f"{part.prefix}__staleness").dt.total_microseconds() / 1e6).alias(
            f"{part.prefix}__staleness_s"
        )
        for part in p.status_parts
    ]
    frame = frame.with_columns(per_view)
    breaches = []
    for part in p.status_parts:
        sla = part.view.freshness_sla
        staleness = pl.col(f"{part.prefix}__staleness_s")
        breach = pl.lit(None, pl.Boolean) if sla is None else staleness > sla.total_seconds()
        breaches.append(breach.alias(f"{part.prefix}__past_sla"))
    frame = frame.with_columns(breaches)
    columns = p.feature_columns
    match = pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}__truth")) for c in columns)
    breach_cols = [f"{part.prefix}__past_sla" for part in p.status_parts]
    degraded = failed
    for cond in not_present.values():
        degraded = degraded | cond
    frame = frame.with_columns(
        (pl.any_horizontal(breach_cols) if breach_cols else pl.lit(None, pl.Boolean)).alias(
            "past_sla"
        ),
        degraded.alias("degraded"),
        pl.when(failed).then(None).otherwise(match).alias("matches_truth"),
    )
    per_view_columns = [
        f"{part.prefix}__{what}"
        for part in p.status_parts
        for what in ("status", "event_timestamp", "staleness_s", "past_sla")
    ]
    return frame.select(
        "read_id",
        "t",
        *p.entity,
        "latency_us",
        "degraded",
        "matches_truth",
        "past_sla",
        "error",
        *per_view_columns,
        *(name for c in columns for name in (c, f"{c}__truth")),
    )


def _summary(p: _Prepared, reads: pl.DataFrame, materializations: pl.DataFrame) -> pl.DataFrame:
    rows = []
    q = "linear"
    latency = reads["latency_us"]
    for part in p.status_parts:
        prefix, ref = part.prefix, part.view.ref
        status = reads[f"{prefix}__status"]
        staleness = reads[f"{prefix}__staleness_s"].drop_nulls()
        breach = reads[f"{prefix}__past_sla"].drop_nulls()
        ok = reads.filter(pl.col("error").is_null())
        match = pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}__truth")) for c in part.columns)
        runs = materializations.filter(pl.col("view") == ref)
        rows.append(
            {
                "view": ref,
                "reads": reads.height,
                "present": int((status == "PRESENT").sum()),
                "not_found": int((status == "NOT_FOUND").sum()),
                "outside_max_age": int((status == "OUTSIDE_MAX_AGE").sum()),
                "unavailable": int((status == "UNAVAILABLE").sum()),
                "errors": int(reads["error"].is_not_null().sum()),
                "degraded": int((status.fill_null("") != "PRESENT").sum()),
                "p50_latency_us": latency.quantile(0.5, q),
                "p99_latency_us": latency.quantile(0.99, q),
                "mean_staleness_s": staleness.mean() if len(staleness) else None,
                "p95_staleness_s": staleness.quantile(0.95, q) if len(staleness) else None,
                "max_staleness_s": staleness.max() if len(staleness) else None,
                "freshness_sla_s": _seconds(part.view.freshness_sla),
                "share_past_sla": breach.mean() if len(breach) else None,
                "share_matching_truth": ok.select(match.mean()).item() if ok.height else None,
                "rows_written": int(runs["written"].sum()),
                "runs": int(runs.filter(pl.col("kind") != "push").height),
                "failed_runs": int((runs["status"] == "failed").sum()),
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "view": pl.String,
            "reads": pl.Int64,
            "present": pl.Int64,
            "not_found": pl.Int64,
            "outside_max_age": pl.Int64,
            "unavailable": pl.Int64,
            "errors": pl.Int64,
            "degraded": pl.Int64,
            "p50_latency_us": pl.Float64,
            "p99_latency_us": pl.Float64,
            "mean_staleness_s": pl.Float64,
            "p95_staleness_s": pl.Float64,
            "max_staleness_s": pl.Float64,
            "freshness_sla_s": pl.Float64,
            "share_past_sla": pl.Float64,
            "share_matching_truth": pl.Float64,
            "rows_written": pl.Int64,
            "runs": pl.Int64,
            "failed_runs": pl.Int64,
        },
    )


def _feature_gaps(p: _Prepared, reads: pl.DataFrame) -> pl.DataFrame:
    """Per feature: how often and how far the served value is from the point-in-time truth."""
    ok = reads.filter(pl.col("error").is_null())
    rows = []
    for part in p.plan:
        for column in part.columns:
            served, truth = pl.col(column), pl.col(f"{column}__truth")
            numeric = ok.schema[column].is_numeric() and ok.schema[f"{column}__truth"].is_numeric()
            diff = (served.cast(pl.Float64) - truth.cast(pl.Float64)).abs()
            stats = ok.select(
                served.eq_missing(truth).mean().alias("share_matching_truth"),
                served.is_null().mean().alias("served_null_share"),
                truth.is_null().mean().alias("truth_null_share"),
                (diff.mean() if numeric else pl.lit(None, pl.Float64)).alias("mean_abs_diff"),
                (diff.max() if numeric else pl.lit(None, pl.Float64)).alias("max_abs_diff"),
            ).row(0, named=True)
            rows.append({"feature": column, "view": part.view.ref, "reads": ok.height, **stats})
    return pl.DataFrame(
        rows,
        schema={
            "feature": pl.String,
            "view": pl.String,
            "reads": pl.Int64,
            "share_matching_truth": pl.Float64,
            "served_null_share": pl.Float64,
            "truth_null_share": pl.Float64,
            "mean_abs_diff": pl.Float64,
            "max_abs_diff": pl.Float64,
        },
    )


# --------------------------------------------------------------------------------------------
# the public functions
# --------------------------------------------------------------------------------------------


def _check_every(every: Any, push: bool) -> timedelta | None:
    if push:
        if every is not None and every is not DEFAULT_MATERIALIZE_EVERY:
            raise DefinitionError(
                f"simulate: push=True writes rows as they arrive instead of on a schedule; "
                f"drop materialize_every={_label(every)} (or pass push=False)"
            )
        return None
    if every is None:
        return None
    if not isinstance(every, timedelta) or every <= timedelta(0):
        raise DefinitionError(
            f"simulate: materialize_every must be a positive timedelta or None, got {every!r}"
        )
    return every


def _check_watermark(watermark: Any) -> None:
    if watermark not in ("created", "event"):
        raise DefinitionError(
            f"simulate: watermark must be 'created' or 'event', got {watermark!r}"
        )


def replay(
    store: FeatureStore,
    events: Any,
    *,
    features: Sequence[FeatureLike],
    materialize_every: timedelta | None = DEFAULT_MATERIALIZE_EVERY,
    push: bool = False,
    watermark: Literal["created", "event"] = "created",
    read_fraction: float = 1.0,
    start: datetime | None = None,
    end: datetime | None = None,
    faults: Sequence[Fault] = (),
    fallback: Fallback = "null",
    defaults: Mapping[str, Any] | None = None,
    full_feature_names: bool = False,
    timestamp_column: str = "event_timestamp",
    seed: int = 0,
    progress: Progress | None = None,
) -> SimulationResult:
    """Replay ``events`` in simulated time and record what an online reader gets.

    See the module docs for the exact semantics.

    Parameters
    ----------
    store
        The feature store; its definitions and offline data are read, its online store is not.
    events
        polars DataFrame/LazyFrame (pandas accepted) with the join keys the features need and
        a Datetime ``timestamp_column``; each (sampled) row is one online read at that time.
        ``fk.datasets.fraud_entity_rows()`` is such a stream.
    features
        ``"view:feature"`` refs (or views), as for ``get_online_features``.
    materialize_every
        The materializer's interval (runs on multiples of it since the epoch); ``None``: never.
    push
        Write every row as soon as it is known instead of on a schedule.
    watermark
        ``"created"``: each run picks up the rows known since the last run. ``"event"``: each run
        covers the event-time window since the last run, like ``materialize_incremental``
        (rows created after their window are lost).
    read_fraction
        Share of the events that make a read (a seeded random sample).
    start, end
        The simulated period (default: the first and last event).
    faults
        :class:`StoreDown`, :class:`EntityMissing`, :class:`StaleData` faults.
    fallback, defaults
        What a reader gets for a view that is not ``PRESENT``: ``"null"``, ``"defaults"``
        (``defaults={"feature": value}``) or ``"raise"`` (a store outage is an error).
    progress
        ``progress(reads_done, reads_total)`` for progress bars.

    Returns
    -------
    SimulationResult
        ``.reads``, ``.materializations``, ``.summary``, ``.features`` and charts.
    """
    every = _check_every(materialize_every, push)
    _check_watermark(watermark)
    prepared = _prepare(
        store,
        events,
        features=features,
        read_fraction=read_fraction,
        start=start,
        end=end,
        faults=faults,
        full_feature_names=full_feature_names,
        timestamp_column=timestamp_column,
        seed=seed,
        fallback=fallback,
        defaults=defaults,
    )
    return _run(prepared, every=every, push=push, watermark=watermark, progress=progress)


def sweep(
    store: FeatureStore,
    events: Any,
    *,
    features: Sequence[FeatureLike],
    intervals: Sequence[timedelta | Literal["push"]] = DEFAULT_SWEEP,
    progress: Progress | None = None,
    **replay_kwargs: Any,
) -> SweepResult:
    """Replay the same reads for each interval (``"push"`` for push) and compare them.

    ``replay_kwargs`` are :func:`replay`'s other arguments (``read_fraction``, ``faults``...).
    The events are sampled, the data loaded and the truth computed once for all runs.
    ``progress(done, total)`` counts reads over all runs.
    """
    for name in ("materialize_every", "push"):
        if name in replay_kwargs:
            raise DefinitionError(
                f"sweep: {name} is set per run by intervals=[...]; use 'push' in intervals "
                "for push ingestion"
            )
    intervals = list(intervals)
    if not intervals:
        raise DefinitionError("sweep: intervals is empty; give timedeltas and/or 'push'")
    for interval in intervals:
        if interval != "push":
            _check_every(interval, False)
            if interval is None:
                raise DefinitionError("sweep: intervals must be timedeltas or 'push', got None")
    labels = [_label(i) for i in intervals]
    if len(set(labels)) != len(labels):
        raise DefinitionError(f"sweep: intervals repeat: {labels}")
    watermark = replay_kwargs.pop("watermark", "created")
    _check_watermark(watermark)
    fallback = replay_kwargs.pop("fallback", "null")
    defaults = replay_kwargs.pop("defaults", None)
    prep_args = {
        "read_fraction": 1.0,
        "start": None,
        "end": None,
        "faults": (),
        "full_feature_names": False,
        "timestamp_column": "event_timestamp",
        "seed": 0,
    }
    unknown = sorted(set(replay_kwargs) - set(prep_args))
    if unknown:
        raise DefinitionError(f"sweep: unknown argument(s) {unknown}; see fk.simulate.replay")
    prep_args.update(replay_kwargs)
    prepared = _prepare(
        store, events, features=features, fallback=fallback, defaults=defaults, **prep_args
    )
    n = len(prepared.read_us)
    results: dict[str, SimulationResult] = {}
    for k, interval in enumerate(intervals):
        push = interval == "push"
        result = _run(
            prepared,
            every=None if push else interval,  # type: ignore[arg-type]
            push=push,
            watermark=watermark,
            progress=progress,
            progress_offset=k * n,
            progress_total=len(intervals) * n,
        )
        results[_label(interval)] = result
    return SweepResult(results)


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


def _altair() -> Any:
    import altair as alt

    return alt


_UNITS = (("s", 1.0), ("min", 60.0), ("h", 3_600.0), ("d", 86_400.0))


def _unit(seconds: float | None) -> tuple[str, float]:
    """A readable unit for durations around ``seconds``."""
    if seconds is None or not math.isfinite(seconds):
        return "s", 1.0
    chosen = _UNITS[0]
    for unit in _UNITS:
        if seconds >= 2 * unit[1]:
            chosen = unit
    return chosen


def _iso(column: str) -> pl.Expr:
    return pl.col(column).dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _histogram(values: np.ndarray, bins: int, *, log: bool = False) -> pl.DataFrame:
    values = values[np.isfinite(values)]
    schema = {
        "bin_start": pl.Float64,
        "bin_end": pl.Float64,
        "reads": pl.Int64,
        "share": pl.Float64,
    }
    if values.size == 0:
        return pl.DataFrame(schema=schema)
    lo, hi = float(values.min()), float(values.max())
    if log:
        lo = max(lo, 1e-3)
        hi = max(hi, lo * 1.01)
        edges = np.geomspace(lo, hi, bins + 1)
    else:
        hi = hi if hi > lo else lo + 1.0
        edges = np.linspace(lo, hi, bins + 1)
    counts, _ = np.histogram(np.clip(values, lo, hi), bins=edges)
    return pl.DataFrame(
        {
            "bin_start": edges[:-1],
            "bin_end": edges[1:],
            "reads": counts.astype(np.int64),
            "share": counts / values.size,
        },
        schema=schema,
    )


_NICE_BUCKETS = [
    timedelta(seconds=s)
    for s in (1, 10, 60, 300, 900, 1800, 3600, 7200, 3 * 3600, 6 * 3600, 12 * 3600, 86_400)
] + [timedelta(days=d) for d in (2, 7, 14, 30, 91, 365)]


def _bucket(start: datetime, end: datetime) -> timedelta:
    span = max((end - start).total_seconds(), 1.0)
    for size in _NICE_BUCKETS:
        if span / size.total_seconds() <= TIME_BUCKETS:
            return size
    return timedelta(seconds=math.ceil(span / TIME_BUCKETS))


def _bucketed(column: str, size: timedelta) -> pl.Expr:
    step = td_us(size)
    us = pl.col(column).dt.epoch("us")
    return (us // step * step).cast(pl.Datetime("us", "UTC")).alias("bucket")


@dataclass(frozen=True, repr=False)
class SimulationResult:
    """What :func:`replay` saw: one row per read, one per materializer run, and summaries."""

    reads: pl.DataFrame
    """One row per read: t, keys, latency, per-view status/staleness/SLA, served vs truth."""
    materializations: pl.DataFrame
    """One row per materializer run and view (and per non-empty push flush): at, kind, view,
    status (ok/failed/paused), since (the watermark before), rows, written, seconds, error."""
    summary: pl.DataFrame
    """One row per view read: statuses, latency, staleness, SLA, truth, rows written, runs."""
    features: pl.DataFrame
    """One row per feature: share matching the truth, null shares, mean/max absolute gap."""
    settings: dict[str, Any]
    """How the replay was run (schedule, faults, fallback, period, views...)."""

    # -- text ------------------------------------------------------------------------------
    @property
    def rows_written(self) -> int:
        return int(self.materializations["written"].sum())

    def _headline(self) -> str:
        s = self.settings
        if s["push"]:
            how = "push"
        elif s["materialize_every"] is None:
            how = "no materialization"
        else:
            how = (
                f"materialize every {_label(s['materialize_every'])} (watermark: {s['watermark']})"
            )
        period = f"{s['start']:%Y-%m-%d %H:%M} → {s['end']:%Y-%m-%d %H:%M} UTC"
        return f"{self.reads.height:,} reads, {period}, {how}"

    def _lines(self) -> list[str]:
        reads = self.reads
        degraded = int(reads["degraded"].sum())
        errors = int(reads["error"].is_not_null().sum())
        runs = self.materializations.filter(pl.col("kind") != "push")
        failed = int((self.materializations["status"] == "failed").sum())
        lines = [
            f"latency p50 {reads['latency_us'].quantile(0.5, 'linear'):.0f} µs, "
            f"p99 {reads['latency_us'].quantile(0.99, 'linear'):.0f} µs · rows written "
            f"{self.rows_written:,} in {runs.height:,} runs ({failed:,} failed)",
        ]
        for r in self.summary.iter_rows(named=True):
            sla = r["freshness_sla_s"]
            breach = (
                f", {r['share_past_sla']:.1%} past SLA {_human(sla)}"
                if sla is not None and r["share_past_sla"] is not None
                else ""
            )
            truth = r["share_matching_truth"]
            lines.append(
                f"{r['view']}: staleness mean {_human(r['mean_staleness_s'])}, p95 "
                f"{_human(r['p95_staleness_s'])}{breach}; "
                f"{'-' if truth is None else f'{truth:.1%}'} match truth; "
                f"{r['present']:,} present, {r['not_found']:,} not found, "
                f"{r['outside_max_age']:,} too old, {r['unavailable']:,} unavailable"
            )
        lines.append(
            f"degraded reads: {degraded:,} ({degraded / max(reads.height, 1):.1%}), "
            f"errors: {errors:,}"
        )
        if self.settings["faults"]:
            lines.append("faults: " + ", ".join(_fault_text(f) for f in self.settings["faults"]))
        return lines

    def __repr__(self) -> str:
        return "\n".join(
            [f"SimulationResult: {self._headline()}", *("  " + x for x in self._lines())]
        )

    def _repr_html_(self) -> str:
        columns = [
            "view",
            "present",
            "not_found",
            "outside_max_age",
            "unavailable",
            "mean_staleness_s",
            "p95_staleness_s",
            "share_past_sla",
            "share_matching_truth",
            "rows_written",
            "failed_runs",
        ]
        rows = [
            [
                r["view"],
                f"{r['present']:,}",
                f"{r['not_found']:,}",
                f"{r['outside_max_age']:,}",
                f"{r['unavailable']:,}",
                _human(r["mean_staleness_s"]),
                _human(r["p95_staleness_s"]),
                "-" if r["share_past_sla"] is None else f"{r['share_past_sla']:.1%}",
                "-" if r["share_matching_truth"] is None else f"{r['share_matching_truth']:.1%}",
                f"{r['rows_written']:,}",
                f"{r['failed_runs']:,}",
            ]
            for r in self.summary.iter_rows(named=True)
        ]
        lines = "".join(f"<li>{html.escape(x)}</li>" for x in self._lines())
        return (
            f"<b>SimulationResult</b>: {html.escape(self._headline())}<ul>{lines}</ul>"
            + table(columns, rows)
            + "<p><code>.reads</code>, <code>.materializations</code>, <code>.summary</code>, "
            "<code>.features</code>; <code>.chart()</code> draws the dashboard.</p>"
        )

    # -- tables for the charts ---------------------------------------------------------------
    def timeline(self, every: timedelta | None = None) -> pl.DataFrame:
        """Reads per time bucket (about 100 buckets by default): per view mean and max
        staleness (s) and share past SLA, and the shares degraded and matching the truth."""
        s = self.settings
        size = every or _bucket(s["start"], s["end"])
        aggs: list[pl.Expr] = [
            pl.len().alias("reads"),
            pl.col("degraded").mean().alias("share_degraded"),
            pl.col("matches_truth").mean().alias("share_matching_truth"),
            pl.col("past_sla").mean().alias("share_past_sla"),
        ]
        for v in s["views"]:
            p = v["prefix"]
            aggs += [
                pl.col(f"{p}__staleness_s").mean().alias(f"{p}__mean_staleness_s"),
                pl.col(f"{p}__staleness_s").max().alias(f"{p}__max_staleness_s"),
            ]
        return self.reads.group_by(_bucketed("t", size)).agg(aggs).sort("bucket")

    def _focus(self, view: str | None) -> dict[str, Any] | None:
        views = self.settings["views"]
        if view is not None:
            for v in views:
                if view in (v["view"], v["prefix"], v["view"].split("@")[0]):
                    return v
            raise DefinitionError(
                f"SimulationResult: no view {view!r} was read; views: {[v['view'] for v in views]}"
            )
        with_sla = [v for v in views if v["freshness_sla_s"] is not None]
        return (with_sla or views or [None])[0]

    # -- charts ----------------------------------------------------------------------------
    def latency_chart(self) -> alt.TopLevelMixin:
        """Histogram of read latency (log-spaced bins) with the p50 and p99 marked."""
        alt = _altair()
        latency = self.reads["latency_us"].to_numpy()
        data = _histogram(latency, HIST_BINS, log=True)
        p50, p99 = np.percentile(latency, [50, 99]) if latency.size else (0.0, 0.0)
        marks = pl.DataFrame({"stat": ["p50", "p99"], "latency_us": [p50, p99]})
        x = alt.X(
            "bin_start:Q", bin="binned", scale=alt.Scale(type="log"), title="read latency (µs)"
        )
        bars = (
            alt.Chart(data)
            .mark_bar(binSpacing=0, color="#4c78a8")
            .encode(
                x=x,
                x2="bin_end:Q",
                y=alt.Y("share:Q", title="share of reads", axis=alt.Axis(format="%")),
                tooltip=[
                    alt.Tooltip("bin_start:Q", format=".0f", title="from µs"),
                    alt.Tooltip("bin_end:Q", format=".0f", title="to µs"),
                    alt.Tooltip("reads:Q", format=","),
                ],
            )
        )
        rules = (
            alt.Chart(marks)
            .mark_rule(color="#d62728", strokeDash=[4, 3])
            .encode(x="latency_us:Q", tooltip=["stat:N", alt.Tooltip("latency_us:Q", format=".0f")])
        )
        labels = (
            alt.Chart(marks)
            .mark_text(align="left", dx=3, dy=-60, color="#d62728")
            .encode(x="latency_us:Q", text="stat:N")
        )
        return alt.layer(bars, rules, labels).properties(
            width=300,
            height=160,
            title=alt.TitleParams(
                f"Read latency: p50 {p50:.0f} µs, p99 {p99:.0f} µs",
                subtitle=f"{self.reads.height:,} reads of a real diskcache store",
                anchor="start",
            ),
        )

    def staleness_chart(self) -> alt.TopLevelMixin:
        """Per view: histogram of the staleness of the values served, the SLA as a red rule."""
        alt = _altair()
        panels = []
        for v in self.settings["views"]:
            p = v["prefix"]
            seconds = self.reads[f"{p}__staleness_s"].drop_nulls().to_numpy()
            unit, size = _unit(float(np.median(seconds)) if seconds.size else None)
            data = _histogram(seconds / size, HIST_BINS)
            sla = v["freshness_sla_s"]
            breach = self.reads[f"{p}__past_sla"].drop_nulls()
            subtitle = f"{seconds.size:,} reads with a stored value"
            if sla is not None and len(breach):
                subtitle += f"; {breach.mean():.1%} past the SLA of {_human(sla)}"
            layers = [
                alt.Chart(data)
                .mark_bar(binSpacing=0, color="#72b7b2")
                .encode(
                    x=alt.X("bin_start:Q", bin="binned", title=f"staleness ({unit})"),
                    x2="bin_end:Q",
                    y=alt.Y("share:Q", title="share of reads", axis=alt.Axis(format="%")),
                    tooltip=[
                        alt.Tooltip("bin_start:Q", format=".3g", title=f"from ({unit})"),
                        alt.Tooltip("bin_end:Q", format=".3g", title=f"to ({unit})"),
                        alt.Tooltip("reads:Q", format=","),
                    ],
                )
            ]
            if sla is not None:
                rule = pl.DataFrame({"sla": [sla / size], "label": [f"SLA {_human(sla)}"]})
                layers.append(
                    alt.Chart(rule)
                    .mark_rule(color="#d62728", strokeWidth=2)
                    .encode(x="sla:Q", tooltip=["label:N"])
                )
            panels.append(
                alt.layer(*layers).properties(
                    width=260,
                    height=160,
                    title=alt.TitleParams(
                        f"Staleness of {v['view']}", subtitle=subtitle, anchor="start"
                    ),
                )
            )
        if not panels:
            return _empty(alt, "no feature view with a stored value was read")
        return alt.hconcat(*panels)

    def _fault_layer(self, alt: Any) -> list[Any]:
        windows = [
            {
                "start": f.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "end": f.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "fault": _fault_text(f),
                "kind": type(f).__name__,
            }
            for f in self.settings["faults"]
            if isinstance(f, (StoreDown, StaleData))
        ]
        if not windows:
            return []
        kinds = [k for k in _FAULT_COLORS if any(w["kind"] == k for w in windows)]
        return [
            alt.Chart(pl.DataFrame(windows))
            .mark_rect(opacity=0.15)
            .encode(
                x=alt.X("start:T", scale=alt.Scale(type="utc")),
                x2="end:T",
                fill=alt.Fill(  # not `color`: the lines over it have their own colour scale
                    "kind:N",
                    scale=alt.Scale(domain=kinds, range=[_FAULT_COLORS[k] for k in kinds]),
                    legend=alt.Legend(title="fault"),
                ),
                tooltip=["fault:N"],
            )
        ]

    def timeline_chart(self, view: str | None = None) -> alt.TopLevelMixin:
        """Over simulated time: staleness of ``view`` (mean and max per bucket, default: the
        first view with an SLA) and the shares of reads past SLA, degraded and matching the
        truth; fault windows are shaded."""
        alt = _altair()
        focus = self._focus(view)
        frame = self.timeline().with_columns(_iso("bucket"))
        x = alt.X("bucket:T", scale=alt.Scale(type="utc"), title=None)
        faults = self._fault_layer(alt)
        charts = []
        if focus is not None:
            p = focus["prefix"]
            mean = frame[f"{p}__mean_staleness_s"].drop_nulls()
            unit, size = _unit(float(mean.median()) if len(mean) else None)
            data = frame.select(
                "bucket",
                (pl.col(f"{p}__mean_staleness_s") / size).alias("mean"),
                (pl.col(f"{p}__max_staleness_s") / size).alias("max"),
            ).unpivot(index="bucket", variable_name="stat", value_name="staleness")
            layers = [
                *faults,
                alt.Chart(data)
                .mark_line(interpolate="step-after")
                .encode(
                    x=x,
                    y=alt.Y("staleness:Q", title=f"staleness ({unit})"),
                    strokeDash=alt.StrokeDash(
                        "stat:N", scale=alt.Scale(domain=["mean", "max"]), legend=None
                    ),
                    tooltip=[
                        alt.Tooltip("bucket:T", format="%Y-%m-%d %H:%M", title="from"),
                        "stat:N",
                        alt.Tooltip("staleness:Q", format=".3g"),
                    ],
                ),
            ]
            sla = focus["freshness_sla_s"]
            if sla is not None:
                rule = pl.DataFrame({"sla": [sla / size], "label": [f"SLA {_human(sla)}"]})
                layers.append(
                    alt.Chart(rule)
                    .mark_rule(color="#d62728", strokeDash=[4, 3])
                    .encode(y="sla:Q", tooltip=["label:N"])
                )
            charts.append(
                alt.layer(*layers).properties(
                    width=620,
                    height=150,
                    title=alt.TitleParams(
                        f"Staleness of {focus['view']} over time",
                        subtitle="per time bucket: mean (solid) and max (dashed)",
                        anchor="start",
                    ),
                )
            )
        shares = frame.select(
            "bucket",
            pl.col("share_past_sla").alias("past SLA"),
            pl.col("share_degraded").alias("degraded"),
            pl.col("share_matching_truth").alias("matches truth"),
        ).unpivot(index="bucket", variable_name="measure", value_name="share")
        charts.append(
            alt.layer(
                *faults,
                alt.Chart(shares)
                .mark_line(interpolate="step-after")
                .encode(
                    x=x,
                    y=alt.Y("share:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
                    color=alt.Color(
                        "measure:N",
                        scale=alt.Scale(
                            domain=["past SLA", "degraded", "matches truth"],
                            range=["#d62728", "#ff7f0e", "#54a24b"],
                        ),
                        legend=alt.Legend(title=None),
                    ),
                    tooltip=[
                        alt.Tooltip("bucket:T", format="%Y-%m-%d %H:%M", title="from"),
                        "measure:N",
                        alt.Tooltip("share:Q", format=".1%"),
                    ],
                ),
            ).properties(
                width=620,
                height=120,
                title=alt.TitleParams("Share of reads over time", anchor="start"),
            )
        )
        return alt.vconcat(*charts).resolve_scale(color="independent")

    def cost_chart(self) -> alt.TopLevelMixin:
        """Rows written (the cost) per time bucket, stacked by view; failed runs in the title."""
        alt = _altair()
        s = self.settings
        mats = self.materializations.filter(pl.col("at") >= s["start"])
        size = _bucket(s["start"], s["end"])
        data = (
            mats.group_by(_bucketed("at", size), "view")
            .agg(pl.col("written").sum(), (pl.col("status") == "failed").sum().alias("failed"))
            .sort("bucket", "view")
            .with_columns(_iso("bucket"))
        )
        failed = int((self.materializations["status"] == "failed").sum())
        initial = self.materializations.filter(pl.col("at") < s["start"])["written"].sum()
        subtitle = f"{failed:,} failed runs"
        if initial:
            subtitle += f"; plus {initial:,} rows at the first run, before the period"
        return (
            alt.Chart(data)
            .mark_bar()
            .encode(
                x=alt.X("bucket:T", scale=alt.Scale(type="utc"), title=None),
                y=alt.Y("written:Q", title="rows written", stack=True),
                color=alt.Color("view:N", legend=alt.Legend(title=None, orient="bottom")),
                tooltip=[
                    alt.Tooltip("bucket:T", format="%Y-%m-%d %H:%M", title="from"),
                    "view:N",
                    alt.Tooltip("written:Q", format=","),
                    alt.Tooltip("failed:Q", title="failed runs"),
                ],
            )
            .properties(
                width=300,
                height=150,
                title=alt.TitleParams(
                    f"Rows written (cost): {self.rows_written:,}", subtitle=subtitle, anchor="start"
                ),
            )
        )

    def truth_chart(self) -> alt.TopLevelMixin:
        """Per feature: the share of reads served the point-in-time truth."""
        alt = _altair()
        data = self.features.select(
            "feature",
            "view",
            "share_matching_truth",
            (1 - pl.col("share_matching_truth")).alias("share_differing"),
            "mean_abs_diff",
        )
        return (
            alt.Chart(data)
            .mark_bar(color="#54a24b")
            .encode(
                x=alt.X(
                    "share_matching_truth:Q",
                    title="share of reads served the point-in-time truth",
                    axis=alt.Axis(format="%"),
                    scale=alt.Scale(domain=[0, 1]),
                ),
                y=alt.Y("feature:N", sort=None, title=None),
                tooltip=[
                    "feature:N",
                    "view:N",
                    alt.Tooltip("share_matching_truth:Q", format=".1%"),
                    alt.Tooltip("mean_abs_diff:Q", format=".4g"),
                ],
            )
            .properties(
                width=300,
                height=18 * max(data.height, 1),
                title=alt.TitleParams("Served vs truth", anchor="start"),
            )
        )

    def chart(self) -> alt.TopLevelMixin:
        """The dashboard: latency, staleness, timeline, cost and truth, in one chart."""
        alt = _altair()
        return (
            alt.vconcat(
                alt.hconcat(self.latency_chart(), self.staleness_chart()),
                self.timeline_chart(),
                alt.hconcat(self.cost_chart(), self.truth_chart()),
            )
            .resolve_scale(color="independent")
            .properties(
                title=alt.TitleParams(f"Online simulation: {self._headline()}", anchor="start")
            )
        )


def _empty(alt: Any, text: str) -> Any:
    return (
        alt.Chart(pl.DataFrame({"text": [text]}))
        .mark_text(color="gray")
        .encode(text="text:N")
        .properties(width=260, height=160)
    )


def _fault_text(fault: Any) -> str:
    if isinstance(fault, EntityMissing):
        n = len(next(iter(fault.keys.values())))
        where = f" in {fault.view}" if fault.view else ""
        return f"EntityMissing({n} entities{where})"
    where = f" {fault.view}" if getattr(fault, "view", None) else ""
    return (
        f"{type(fault).__name__}{where} {fault.start:%Y-%m-%d %H:%M} → {fault.end:%Y-%m-%d %H:%M}"
    )


@dataclass(frozen=True, repr=False)
class SweepResult:
    """Several replays of the same reads, one per schedule: the freshness/cost trade-off."""

    results: dict[str, SimulationResult]
    """Each run's full result, by interval label (``"15m"``, ``"push"``)."""

    @property
    def table(self) -> pl.DataFrame:
        """One row per interval and view: rows written, staleness, SLA, truth, latency."""
        frames = []
        for label, result in self.results.items():
            every = result.settings["materialize_every"]
            frames.append(
                result.summary.select(
                    pl.lit(label).alias("interval"),
                    pl.lit(None if every is None else every.total_seconds(), pl.Float64).alias(
                        "interval_s"
                    ),
                    "view",
                    "rows_written",
                    "runs",
                    "mean_staleness_s",
                    "p95_staleness_s",
                    "share_past_sla",
                    "share_matching_truth",
                    "p99_latency_us",
                    "degraded",
                )
            )
        return pl.concat(frames, how="vertical")

    def __repr__(self) -> str:
        lines = [f"SweepResult: {len(self.results)} schedules"]
        for r in self.table.iter_rows(named=True):
            breach = "-" if r["share_past_sla"] is None else f"{r['share_past_sla']:.1%}"
            truth = "-" if r["share_matching_truth"] is None else f"{r['share_matching_truth']:.1%}"
            lines.append(
                f"  {r['interval']:>6} {r['view']}: {r['rows_written']:,} rows written, "
                f"staleness mean {_human(r['mean_staleness_s'])}, past SLA {breach}, "
                f"truth {truth}"
            )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        headers = ["interval", "view", "rows written", "runs", "mean staleness", "past SLA",
                   "matches truth", "p99 latency µs"]  # fmt: skip
        rows = [
            [
                r["interval"],
                r["view"],
                f"{r['rows_written']:,}",
                f"{r['runs']:,}",
                _human(r["mean_staleness_s"]),
                "-" if r["share_past_sla"] is None else f"{r['share_past_sla']:.1%}",
                "-" if r["share_matching_truth"] is None else f"{r['share_matching_truth']:.1%}",
                f"{r['p99_latency_us']:.0f}",
            ]
            for r in self.table.iter_rows(named=True)
        ]
        return (
            f"<b>SweepResult</b>: {len(self.results)} schedules; <code>.chart()</code> draws "
            "the freshness/cost trade-off" + table(headers, rows)
        )

    def chart(self, views: Sequence[str] | None = None) -> alt.TopLevelMixin:
        """The freshness/cost trade-off against the interval: rows written (stacked by view),
        then the mean staleness and the share of reads past the SLA of ``views`` (default:
        the views with a freshness SLA, else all)."""
        alt = _altair()
        table = self.table
        order = list(self.results)
        if views is not None:
            names = list(views)
            fresh = table.filter(
                pl.col("view").is_in(names)
                | pl.col("view").str.split("@").list.first().is_in(names)
            )
        elif table["share_past_sla"].is_not_null().any():
            fresh = table.filter(
                pl.col("view").is_in(
                    table.filter(pl.col("share_past_sla").is_not_null())["view"].implode()
                )
            )
        else:
            fresh = table
        staleness = fresh["mean_staleness_s"].drop_nulls()
        unit, size = _unit(float(staleness.median()) if len(staleness) else None)
        fresh = fresh.with_columns((pl.col("mean_staleness_s") / size).alias("staleness"))
        x = alt.X("interval:N", sort=order, title="materialization", axis=alt.Axis(labelAngle=0))
        tooltip = [
            "interval:N",
            "view:N",
            alt.Tooltip("rows_written:Q", format=","),
            alt.Tooltip("runs:Q", format=","),
            alt.Tooltip("mean_staleness_s:Q", format=",.0f", title="mean staleness (s)"),
            alt.Tooltip("share_past_sla:Q", format=".1%"),
            alt.Tooltip("share_matching_truth:Q", format=".1%"),
        ]
        cost = (
            alt.Chart(
                table.select(
                    "interval",
                    "view",
                    "rows_written",
                    "runs",
                    "mean_staleness_s",
                    "share_past_sla",
                    "share_matching_truth",
                )
            )  # fmt: skip
            .mark_bar()
            .encode(
                x=x,
                y=alt.Y("rows_written:Q", title="rows written", stack=True),
                color=alt.Color("view:N", legend=alt.Legend(title=None, orient="bottom")),
                tooltip=tooltip,
            )
            .properties(width=220, height=200, title="Cost: rows written")
        )

        def line(field: str, title: str, heading: str, fmt: str | None) -> Any:
            axis = alt.Axis(format=fmt) if fmt else alt.Axis()
            return (
                alt.Chart(fresh)
                .mark_line(point=True)
                .encode(
                    x=x,
                    y=alt.Y(f"{field}:Q", title=title, axis=axis),
                    color=alt.Color("view:N"),
                    tooltip=tooltip,
                )
                .properties(width=220, height=200, title=heading)
            )

        return alt.hconcat(
            cost,
            line("staleness", f"mean staleness ({unit})", "Freshness: mean staleness", None),
            line("share_past_sla", "share of reads", "Reads past the freshness SLA", "%"),
        ).properties(
            title=alt.TitleParams(
                "Freshness vs cost, by materialization schedule",
                subtitle="shorter intervals serve fresher values; past the data's own update "
                "rate they cost runs, not rows",
                anchor="start",
            )
        )
