"""Materialization: the newest offline row per entity, copied into the online store.

``materialize(start, end)`` takes, for each online feature view, the rows with
``start <= event_timestamp <= end`` (both inclusive; ``start=None`` means from the beginning),
keeps the newest per entity key (ties broken by created timestamp, as in the offline join), and
writes them to the online store in chunks. Each chunk is one transaction of the backend and
an older value never overwrites a newer one, so a run killed half way leaves every entity with
either its old or its new value — and since the view's watermark is only written once the
whole view is done, the next incremental run starts again from the old watermark.

``materialize_incremental(end)`` takes, per view, the rows that became known since its
watermark (the ``end`` of its last successful run) — known from ``max(event_timestamp,
created_timestamp)`` — so a row that arrives late, with an event time before the last run,
is still written (an older value never overwrites a newer one online). Watermarks live in ``<repo>/watermarks.json``; every run is
appended to ``<repo>/materialization_log.jsonl`` (view, window, rows, seconds, status).

:class:`MaterializationSchedule` runs ``materialize_incremental`` every interval in a
background thread until stopped; a failed run is logged and retried on the next tick.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from fskit._utils.time import as_utc
from fskit.definitions import FeatureView, Source
from fskit.errors import DefinitionError
from fskit.offline import _utc, scan_view
from fskit.online import encode_frame
from fskit.transformations import OnDemandFeatureView, StreamFeatureView

if TYPE_CHECKING:
    from fskit.store import FeatureStore

__all__ = [
    "MaterializationRun",
    "MaterializationSchedule",
    "materialize",
    "read_watermarks",
]

log = logging.getLogger("fskit.materialize")

WATERMARKS_FILE = "watermarks.json"
LOG_FILE = "materialization_log.jsonl"
CHUNK_ROWS = 20_000

Progress = Callable[[str, int, int], None]
"""``progress(view_ref, rows_done, rows_total)``, called after each written chunk."""


@dataclass(frozen=True)
class MaterializationRun:
    """One view's materialization: its window, what was written and how long it took."""

    view: str
    start: datetime | None
    end: datetime
    rows: int
    written: int
    seconds: float
    status: str  # "ok" | "failed"
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["start"] = None if self.start is None else self.start.isoformat()
        out["end"] = self.end.isoformat()
        out["finished_at"] = datetime.now(UTC).isoformat()
        return out


def latest_rows(
    view: FeatureView,
    repo_path: Path,
    start: datetime | None,
    end: datetime,
    *,
    known_at: datetime | None = None,
    known_since: datetime | None = None,
) -> pl.DataFrame:
    """The newest row per entity key with ``start <= event_timestamp <= end``.

    Columns: the join keys, ``event_timestamp`` (UTC) and the features in schema order.
    With ``known_at``, rows created after it are not visible yet (used by the simulator).
    With ``known_since`` (incremental runs), only rows that became known after it count —
    a row is known from ``max(event_timestamp, created_timestamp)`` — so a late row whose
    event time lies before the last run's end is still picked up.
    """
    source = view.source
    assert isinstance(source, Source)
    keys = list(view.join_keys)
    scan = scan_view(view, repo_path)
    schema = scan.collect_schema()
    ts = _utc(pl.col(source.timestamp_field), schema[source.timestamp_field])
    exprs = [*(pl.col(k) for k in keys), ts.alias("__ts")]
    order = ["__ts"]
    if source.created_timestamp_field is not None:
        created = source.created_timestamp_field
        exprs.append(_utc(pl.col(created), schema[created]).alias("__created"))
        order.append("__created")
    exprs += [pl.col(f) for f in view.feature_names]
    rows = scan.select(exprs).filter(pl.col("__ts").is_not_null())
    for key in keys:
        rows = rows.filter(pl.col(key).is_not_null())
    naive = lambda d: d.astimezone(UTC).replace(tzinfo=None)  # noqa: E731
    if start is not None:
        rows = rows.filter(pl.col("__ts") >= naive(start))
    rows = rows.filter(pl.col("__ts") <= naive(end))
    if known_since is not None:
        known = pl.max_horizontal(order)  # created may be null: then the event time
        rows = rows.filter(known > naive(known_since))
    if known_at is not None and "__created" in order:
        rows = rows.filter(pl.col("__created").is_null() | (pl.col("__created") <= naive(known_at)))
    rows = (
        rows.sort(order, nulls_last=False, maintain_order=True)
        .unique(subset=keys, keep="last", maintain_order=False)
        .select(
            *keys,
            pl.col("__ts").dt.replace_time_zone("UTC").alias("event_timestamp"),
            *view.feature_names,
        )
    )
    return rows.collect()


BUFFER_EVENTS = "__events"


def buffer_columns(view: StreamFeatureView) -> list[str]:
    """Layout of a stream view's online value: event times (µs), then each value column."""
    return [BUFFER_EVENTS, *view.value_columns]


def event_buffers(
    view: StreamFeatureView,
    repo_path: Path,
    end: datetime,
    *,
    known_at: datetime | None = None,
    events: pl.LazyFrame | None = None,
    apply_filter: bool = True,
) -> pl.DataFrame:
    """Per entity, its filtered events in ``(end - longest window, end]`` as lists.

    Columns: the join keys, ``event_timestamp`` (the newest event), ``__events`` (event times
    in µs, ascending) and one list per aggregated column. ``events`` overrides the offline
    scan (push passes the merged buffer and new events through here).
    """
    source = view.source
    keys = list(view.join_keys)
    scan = scan_view(view, repo_path) if events is None else events
    schema = scan.collect_schema()
    ts_field = source.timestamp_field  # type: ignore[union-attr]
    naive = lambda d: d.astimezone(UTC).replace(tzinfo=None)  # noqa: E731
    selected = [*keys, _utc(pl.col(ts_field), schema[ts_field]).alias("__ts")]
    created = source.created_timestamp_field  # type: ignore[union-attr]
    if known_at is not None and created is not None:
        selected.append(_utc(pl.col(created), schema[created]).alias("__created"))
    frame = (view.filter_events(scan) if apply_filter else scan).select(
        *selected, *view.value_columns
    )
    frame = frame.filter(
        pl.col("__ts").is_not_null()
        & (pl.col("__ts") > naive(end) - view.max_window)
        & (pl.col("__ts") <= naive(end))
    )
    for key in keys:
        frame = frame.filter(pl.col(key).is_not_null())
    if known_at is not None and created is not None:
        frame = frame.filter(
            pl.col("__created").is_null() | (pl.col("__created") <= naive(known_at))
        )
    return (
        frame.sort("__ts", maintain_order=True)
        .group_by(keys)
        .agg(
            pl.col("__ts").max().dt.replace_time_zone("UTC").alias("event_timestamp"),
            pl.col("__ts").dt.epoch("us").alias(BUFFER_EVENTS),
            *(pl.col(c) for c in view.value_columns),
        )
        .collect()
    )


def write_rows(
    backend: Any,
    view: FeatureView,
    rows: pl.DataFrame,
    *,
    progress: Progress | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> int:
    """Encode and write ``rows`` (keys, event_timestamp, values) in chunked transactions.

    The values are the view's features, or for a stream view its event buffer columns.
    """
    if isinstance(view, StreamFeatureView):
        value_columns = buffer_columns(view)
    else:
        value_columns = list(view.feature_names)
    written, total = 0, rows.height
    for offset in range(0, max(total, 1), chunk_rows):
        chunk = rows.slice(offset, chunk_rows)
        if chunk.is_empty():
            break
        keys, values = encode_frame(chunk, list(view.join_keys), "event_timestamp", value_columns)
        written += backend.write(view.ref, list(zip(keys, values, strict=True)))
        if progress is not None:
            progress(view.ref, min(offset + chunk_rows, total), total)
    return written


def materialize(
    store: FeatureStore,
    start: datetime | None,
    end: datetime,
    *,
    views: Sequence[str] | None = None,
    incremental: bool = False,
    known_at: datetime | None = None,
    progress: Progress | None = None,
) -> list[MaterializationRun]:
    """Materialize online views over ``[start, end]``; see the module docs.

    With ``incremental=True`` each view starts at its own watermark and ``start`` is ignored.
    A view that fails is recorded with ``status="failed"`` and its watermark is left alone; the
    error is re-raised after the other views ran.
    """
    end = as_utc(end, "materialize: end")
    if start is not None:
        start = as_utc(start, "materialize: start")
        if start > end:
            raise DefinitionError(f"materialize: start {start} is after end {end}")
    if known_at is not None:
        known_at = as_utc(known_at, "materialize: known_at")
    chosen = _choose_views(store, views)
    backend = store.online_backend
    runs: list[MaterializationRun] = []
    failure: BaseException | None = None
    for view in chosen:
        began = time.perf_counter()
        window_start = read_watermarks(store.repo_path).get(view.ref) if incremental else start
        since, window_start = (window_start, None) if incremental else (None, window_start)
        try:
            if isinstance(view, StreamFeatureView):
                rows = event_buffers(view, store.repo_path, end, known_at=known_at)
            else:
                rows = latest_rows(
                    view, store.repo_path, window_start, end, known_at=known_at, known_since=since
                )
            written = write_rows(backend, view, rows, progress=progress)
        except Exception as exc:  # recorded, then re-raised below
            failure = failure or exc
            run = MaterializationRun(
                view.ref,
                since if incremental else window_start,
                end,
                0,
                0,
                time.perf_counter() - began,
                "failed",
                f"{type(exc).__name__}: {exc}",
            )
            log.error("materialize %s failed: %s", view.ref, run.error)
        else:
            run = MaterializationRun(
                view.ref,
                since if incremental else window_start,
                end,
                rows.height,
                written,
                time.perf_counter() - began,
                "ok",
            )
            _advance_watermark(store.repo_path, view.ref, end)
        _append_log(store.repo_path, run)
        runs.append(run)
    if failure is not None:
        raise failure
    return runs


def _choose_views(store: FeatureStore, names: Sequence[str] | None) -> list[FeatureView]:
    if names is None:
        latest: dict[str, FeatureView] = {}
        for view in store.list_feature_views():
            if view.online and not isinstance(view, OnDemandFeatureView):
                latest[view.ref] = view
        return list(latest.values())
    chosen = []
    for name in names:
        view_name, _, version = name.partition("@v")
        chosen.append(store.get_feature_view(view_name, int(version) if version else None))
    return chosen


# -- watermarks and the run log ------------------------------------------------------------


@contextlib.contextmanager
def _locked(repo_path: Path) -> Iterator[None]:
    with open(repo_path / ".materialize.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_watermarks(repo_path: Path) -> dict[str, datetime]:
    """Each view ref's watermark: the end of its last successful materialization."""
    path = repo_path / WATERMARKS_FILE
    if not path.exists():
        return {}
    return {ref: datetime.fromisoformat(v) for ref, v in json.loads(path.read_text()).items()}


def _advance_watermark(repo_path: Path, ref: str, end: datetime) -> None:
    with _locked(repo_path):
        marks = read_watermarks(repo_path)
        if ref in marks and marks[ref] >= end:
            return
        marks[ref] = end
        path = repo_path / WATERMARKS_FILE
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({r: m.isoformat() for r, m in sorted(marks.items())}, indent=2))
        os.replace(tmp, path)


def _append_log(repo_path: Path, run: MaterializationRun) -> None:
    line = json.dumps(run.to_json()) + "\n"
    with _locked(repo_path), open(repo_path / LOG_FILE, "a") as fh:
        fh.write(line)


def read_log(repo_path: Path) -> pl.DataFrame:
    """Every recorded materialization run, oldest first."""
    path = repo_path / LOG_FILE
    schema = {
        "view": pl.String,
        "start": pl.String,
        "end": pl.String,
        "rows": pl.Int64,
        "written": pl.Int64,
        "seconds": pl.Float64,
        "status": pl.String,
        "error": pl.String,
        "finished_at": pl.String,
    }
    if not path.exists():
        return pl.DataFrame(schema=schema)
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    frame = pl.DataFrame(records, schema=schema)
    return frame.with_columns(
        pl.col("start", "end", "finished_at").str.to_datetime(time_zone="UTC")
    )


# -- the schedule --------------------------------------------------------------------------


class MaterializationSchedule:
    """Run ``store.materialize_incremental(now)`` every ``every`` until :meth:`stop`.

    A run that raises is logged (``errors``) and simply retried on the next tick; it never
    advances a watermark. Use :meth:`FeatureStore.schedule_materialization` to start one.
    """

    def __init__(
        self,
        store: FeatureStore,
        every: timedelta,
        *,
        views: Sequence[str] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not isinstance(every, timedelta) or every <= timedelta(0):
            raise DefinitionError(f"schedule: every must be a positive timedelta, got {every!r}")
        self.store, self.every, self.views, self._clock = store, every, views, clock
        self.runs: list[MaterializationRun] = []
        self.errors: list[str] = []
        self.ticks = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (
            f"MaterializationSchedule(every={self.every}, {state}, ticks={self.ticks}, "
            f"errors={len(self.errors)})"
        )

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def tick(self) -> list[MaterializationRun]:
        """One incremental run now; failures are recorded, not raised."""
        self.ticks += 1
        try:
            runs = self.store.materialize_incremental(self._clock(), views=self.views)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            self.errors.append(message)
            log.warning("scheduled materialization failed, retrying next tick: %s", message)
            log.debug("%s", traceback.format_exc())
            return []
        self.runs.extend(runs)
        for run in runs:
            log.info("materialized %s: %d rows in %.2f s", run.view, run.rows, run.seconds)
        return runs

    def start(self) -> MaterializationSchedule:
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="fskit-materialize", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.tick()
            self._stop.wait(max(0.0, self.every.total_seconds() - (time.monotonic() - began)))

    def stop(self, timeout: float | None = 30) -> None:
        """Stop after the current run (if any) finishes."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> MaterializationSchedule:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
