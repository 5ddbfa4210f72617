"""Streaming scoring: consume events, push their features, score them, write the predictions.

:func:`run` reads events (JSON objects) from a **source** in small batches; for each batch it

1. pushes the events' feature values into a feature view (``push="user_stats"``: the
   events carry the view's join keys, event timestamp and features) through
   :meth:`FeatureStore.push`, so that the features are fresh online;
2. scores the events with :class:`fskit.serving.Predictor` — the code path of the server's
   ``/predict``, with the same canary routing — so a streamed event gets exactly the answer a
   ``/predict`` request with the same keys and fields would get;
3. writes one record per event to a **sink**: the ``passthrough`` fields of the event (its id,
   say), the entity keys and the prediction (``score``, ``version``, ``route``, ``degraded``,
   ``missing``, ``expired``, ``freshness``). An event that cannot be scored gets a record with
   ``"error"`` instead; the stream goes on.

Sources: :class:`JsonlSource` (a file of JSON lines, tailed with ``follow=True``),
:class:`ParquetSource` (Parquet files appearing in a directory), :class:`RedisStreamSource`
(``XREAD`` on a Redis stream). Sinks: :class:`JsonlSink`, :class:`ParquetSink`,
:class:`RedisStreamSink`, or any callable taking a list of records. A path string picks a
JSON-lines (``.jsonl``/``.json``) or Parquet (``.parquet`` or a directory) source or sink.

>>> import fskit as fk                                                     # doctest: +SKIP
>>> stats = fk.stream.run(store, "fraud", "events.jsonl", "scores.jsonl")  # doctest: +SKIP
>>> stats.scored                                                           # doctest: +SKIP
1000
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from fskit.store import FeatureStore

__all__ = [
    "JsonlSink",
    "JsonlSource",
    "ParquetSink",
    "ParquetSource",
    "RedisStreamSink",
    "RedisStreamSource",
    "StreamStats",
    "run",
]


class Source(Protocol):
    def read(self, max_events: int) -> list[dict[str, Any]]:
        """Up to ``max_events`` new events; ``[]`` when none is available now."""
        ...


class Sink(Protocol):
    def write(self, records: list[dict[str, Any]]) -> None: ...


# -- sources -----------------------------------------------------------------------------------
class JsonlSource:
    """Events as JSON objects, one per line, read from ``path`` (complete lines only).

    The file is read from its start; with :func:`run` ``(follow=True)`` new lines appended
    later are picked up (a tail). A line that is not a JSON object becomes an error record.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._offset = 0
        self._partial = b""

    def read(self, max_events: int) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read(1 << 20)
        except FileNotFoundError:
            return []
        events: list[dict[str, Any]] = []
        consumed = 0
        for line in chunk.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # a line still being written
            consumed += len(line)
            text = line.strip()
            if text:
                try:
                    event = json.loads(text)
                except ValueError as exc:
                    event = {"__error__": f"line is not JSON: {exc}"}
                if not isinstance(event, dict):
                    event = {"__error__": f"line is not a JSON object: {text[:80]!r}"}
                events.append(event)
            if len(events) >= max_events:
                break
        self._offset += consumed
        return events


class ParquetSource:
    """Events as rows of Parquet files in ``directory``, each file read once, in name order."""

    def __init__(self, directory: str | os.PathLike[str], pattern: str = "*.parquet") -> None:
        self.directory = Path(directory)
        self.pattern = pattern
        self._done: set[str] = set()
        self._pending: list[dict[str, Any]] = []

    def read(self, max_events: int) -> list[dict[str, Any]]:
        import polars as pl

        if not self._pending:
            for path in sorted(self.directory.glob(self.pattern)):
                if path.name in self._done or path.name.startswith("."):
                    continue
                self._done.add(path.name)
                self._pending.extend(pl.read_parquet(path).to_dicts())
                if len(self._pending) >= max_events:
                    break
        out, self._pending = self._pending[:max_events], self._pending[max_events:]
        return out


class RedisStreamSource:
    """Events from a Redis stream (``XREAD``): a ``data`` field holding JSON, or flat fields."""

    def __init__(
        self, url: str, stream: str, *, start_id: str = "0-0", block_ms: int = 100
    ) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.stream = stream
        self.last_id = start_id
        self.block_ms = block_ms

    def read(self, max_events: int) -> list[dict[str, Any]]:
        answer = self.client.xread(
            {self.stream: self.last_id}, count=max_events, block=self.block_ms
        )
        events = []
        for _, entries in answer or ():
            for entry_id, fields in entries:
                self.last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                decoded = {
                    (k.decode() if isinstance(k, bytes) else k): (
                        v.decode() if isinstance(v, bytes) else v
                    )
                    for k, v in fields.items()
                }
                if "data" in decoded:
                    try:
                        event = json.loads(decoded["data"])
                    except ValueError as exc:
                        event = {"__error__": f"data is not JSON: {exc}"}
                    events.append(
                        event if isinstance(event, dict) else {"__error__": "not an object"}
                    )
                else:
                    events.append(decoded)
        return events


# -- sinks ---------------------------------------------------------------------------------------
def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


class JsonlSink:
    """Append records to ``path`` as JSON lines (flushed after every batch)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, records: list[dict[str, Any]]) -> None:
        with open(self.path, "a") as fh:
            for record in records:
                fh.write(json.dumps(record, default=_default) + "\n")


class ParquetSink:
    """Write each batch of records as a Parquet part in ``directory`` (nested fields as JSON)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._n = 0

    def write(self, records: list[dict[str, Any]]) -> None:
        import polars as pl

        if not records:
            return
        flat = [
            {
                k: json.dumps(v, default=_default) if isinstance(v, (dict, list)) else v
                for k, v in r.items()
            }
            for r in records
        ]
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"predictions-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{self._n:06d}.parquet"
        self._n += 1
        tmp = self.directory / f".{name}.tmp"
        pl.DataFrame(flat, infer_schema_length=None).write_parquet(tmp)
        os.replace(tmp, self.directory / name)


class RedisStreamSink:
    """``XADD`` each record to a Redis stream as a ``data`` field holding JSON."""

    def __init__(self, url: str, stream: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.stream = stream

    def write(self, records: list[dict[str, Any]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for record in records:
            pipe.xadd(self.stream, {"data": json.dumps(record, default=_default)})
        pipe.execute()


class _CallableSink:
    def __init__(self, fn: Callable[[list[dict[str, Any]]], Any]) -> None:
        self.fn = fn

    def write(self, records: list[dict[str, Any]]) -> None:
        self.fn(records)


def _source(value: Any) -> Source:
    if hasattr(value, "read") and callable(value.read):
        return value
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if path.is_dir() or path.suffix == ".parquet":
            return ParquetSource(
                path.parent if path.suffix == ".parquet" else path,
                path.name if path.suffix == ".parquet" else "*.parquet",
            )
        return JsonlSource(path)
    raise TypeError(
        f"source must be a path (.jsonl file or Parquet directory) or an object with "
        f"read(max_events), got {type(value).__name__}"
    )


def _sink(value: Any) -> Sink:
    if hasattr(value, "write") and callable(value.write):
        return value
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if path.suffix in (".jsonl", ".json", ".ndjson"):
            return JsonlSink(path)
        return ParquetSink(path)
    if callable(value):
        return _CallableSink(value)
    raise TypeError(
        f"sink must be a path (.jsonl file or a directory for Parquet), a callable or an "
        f"object with write(records), got {type(value).__name__}"
    )


# -- the loop ------------------------------------------------------------------------------------
@dataclass
class StreamStats:
    """What a :func:`run` did."""

    events: int = 0
    pushed: int = 0
    scored: int = 0
    errors: int = 0
    batches: int = 0
    seconds: float = 0.0
    last_errors: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return (
            f"StreamStats(events={self.events}, pushed={self.pushed}, scored={self.scored}, "
            f"errors={self.errors}, seconds={self.seconds:.2f})"
        )


def _push_rows(
    events: list[dict[str, Any]], timestamp_fields: Sequence[str]
) -> list[dict[str, Any]]:
    rows = []
    for event in events:
        row = dict(event)
        for name in timestamp_fields:
            value = row.get(name)
            if isinstance(value, str):
                row[name] = datetime.fromisoformat(value.replace("Z", "+00:00"))
        rows.append(row)
    return rows


def run(
    store: FeatureStore | str | os.PathLike[str],
    model: str,
    source: Any,
    sink: Any,
    *,
    push: str | Sequence[str] | None = None,
    push_to: str = "online_and_offline",
    passthrough: Sequence[str] = (),
    batch_size: int = 100,
    follow: bool = False,
    idle_timeout: float | None = None,
    poll_interval: float = 0.05,
    max_events: int | None = None,
    stop: threading.Event | None = None,
    log_predictions: bool = True,
    on_unavailable: str = "degrade",
) -> StreamStats:
    """Consume ``source`` until it is exhausted (or stopped), scoring every event.

    Parameters
    ----------
    store, model
        The feature store (or its repo path) and the registered, deployed model name.
    source, sink
        See the module docs; paths pick a file format by suffix.
    push
        Feature view(s) to push each batch of events into before scoring (``"user_stats"``).
    push_to
        ``"online_and_offline"`` (default, as :meth:`FeatureStore.push`) or ``"online"``.
    passthrough
        Event fields copied into each prediction record (e.g. ``["transaction_id"]``).
    follow
        Keep polling for new events at the end of the source (a tail) until ``stop`` is set,
        ``max_events`` were read, or no event came for ``idle_timeout`` seconds.
    log_predictions
        Append the predictions to the model's prediction log, as the server does.
    """
    from fskit.serving._errors import RequestError
    from fskit.serving._log import PredictionLog, log_dir
    from fskit.serving._predictor import Predictor
    from fskit.serving._state import ensure_deployed
    from fskit.store import FeatureStore

    owned = not isinstance(store, FeatureStore)
    if owned:
        store = FeatureStore(store)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    views = [push] if isinstance(push, str) else list(push or ())
    timestamp_fields: list[str] = []
    for name in views:
        view_name, _, version = name.partition("@v")
        view = store.get_feature_view(view_name, int(version) if version else None)
        timestamp_fields.append(view.source.timestamp_field)  # type: ignore[union-attr]
        created = getattr(view.source, "created_timestamp_field", None)
        if created:
            timestamp_fields.append(created)
    ensure_deployed(store, model)
    log = PredictionLog(log_dir(store.repo_path, model)) if log_predictions else None
    predictor = Predictor(store, model, on_unavailable=on_unavailable, log=log)
    src, out = _source(source), _sink(sink)
    stats = StreamStats()
    started = time.perf_counter()
    idle_since = time.monotonic()

    def record(
        event: Mapping[str, Any], keys: Sequence[str], prediction: Mapping[str, Any]
    ) -> dict[str, Any]:
        base = {k: event.get(k) for k in passthrough}
        base.update({k: event.get(k) for k in keys})
        base.update(prediction)
        return base

    try:
        while stop is None or not stop.is_set():
            want = batch_size if max_events is None else min(batch_size, max_events - stats.events)
            if want <= 0:
                break
            events = src.read(want)
            if not events:
                if not follow or (
                    idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout
                ):
                    break
                if stop is not None:
                    stop.wait(poll_interval)
                else:
                    time.sleep(poll_interval)
                continue
            idle_since = time.monotonic()
            stats.events += len(events)
            stats.batches += 1
            records: list[dict[str, Any] | None] = [None] * len(events)
            good = []
            for i, event in enumerate(events):
                if "__error__" in event:
                    records[i] = {"error": event["__error__"]}
                else:
                    good.append(i)
            for name in views:
                rows = _push_rows([events[i] for i in good], timestamp_fields)
                try:
                    stats.pushed += store.push(name, rows, to=push_to) if rows else 0
                except Exception:  # isolate the bad events, push the others
                    kept = []
                    for i, row in zip(good, rows, strict=True):
                        try:
                            stats.pushed += store.push(name, [row], to=push_to)
                            kept.append(i)
                        except Exception as one:  # noqa: BLE001
                            records[i] = {
                                **{k: events[i].get(k) for k in passthrough},
                                "error": f"push to {name!r} failed: {one}",
                            }
                    good = kept
            keys = predictor.spec().join_keys
            if good:
                try:
                    result = predictor.predict([events[i] for i in good], route="stream")
                    for i, prediction in zip(good, result.body["predictions"], strict=True):
                        records[i] = record(events[i], keys, prediction)
                    if result.deferred is not None:
                        result.deferred()
                except RequestError:  # score one by one to name the bad events
                    for i in good:
                        try:
                            result = predictor.predict([events[i]], route="stream")
                            records[i] = record(events[i], keys, result.body["predictions"][0])
                            if result.deferred is not None:
                                result.deferred()
                        except RequestError as exc:
                            records[i] = {
                                **{k: events[i].get(k) for k in passthrough},
                                "error": str(exc),
                            }
            done = [r for r in records if r is not None]
            for r in done:
                if "error" in r:
                    stats.errors += 1
                    stats.last_errors = [*stats.last_errors[-9:], str(r["error"])]
                else:
                    stats.scored += 1
            out.write(done)
    finally:
        if log is not None:
            log.close()
        if owned:
            store.close()
    stats.seconds = time.perf_counter() - started
    return stats
