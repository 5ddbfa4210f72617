"""The prediction log: every served row's features, prediction, version and time, as Parquet.

Rows are buffered in memory per model version and written as one Parquet part per version
and flush, ``<repo>/serving/logs/<model>/part-<utc time>-<pid>-<n>.parquet`` (a temporary
file renamed into place, so a reader never sees half a file). A flush happens when a buffer
holds ``flush_rows`` rows, every ``flush_seconds`` (by a background thread), and on a clean
stop: the server flushes in its shutdown hook after the last request has been answered, so
nothing is lost on SIGTERM.

Columns: ``request_id``, ``logged_at`` (UTC), ``model``, ``version``, ``route`` (``stable``,
``canary``, ``shadow``, ``pinned``, ``infer``, ``stream``), ``source`` (``live`` or
``batch``), ``degraded``, the entity keys, the model's input columns (named as in training,
so :func:`fskit.drift.compare` can compare them with the training reference) and ``score``.
:func:`read_prediction_log` reads them back as one frame.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from fskit.serving._models import check_model_name

if TYPE_CHECKING:
    from fskit.store import FeatureStore

__all__ = ["PredictionLog", "read_prediction_log"]

LOG_DIR = ("serving", "logs")
_META = {
    "request_id": pl.String,
    "logged_at": pl.Datetime("us", "UTC"),
    "model": pl.String,
    "version": pl.Int64,
    "route": pl.String,
    "source": pl.String,
    "degraded": pl.Boolean,
}


def log_dir(repo_path: Path, model: str) -> Path:
    return Path(repo_path).joinpath(*LOG_DIR, check_model_name(model))


class _Buffer:
    __slots__ = ("columns", "rows", "schema")

    def __init__(self, schema: dict[str, pl.DataType]) -> None:
        self.schema = schema
        self.columns: dict[str, list[Any]] = {name: [] for name in schema}
        self.rows = 0


class PredictionLog:
    """Buffered Parquet writer of served predictions, one per worker process.

    Parameters
    ----------
    directory
        Where parts go (``<repo>/serving/logs/<model>``).
    flush_rows, flush_seconds
        Write a part when a buffer holds this many rows, or this long after its first row.
    """

    def __init__(
        self, directory: Path, *, flush_rows: int = 5_000, flush_seconds: float = 5.0
    ) -> None:
        self.directory = Path(directory)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._buffers: dict[tuple[Any, ...], _Buffer] = {}
        self._first_row_at: float | None = None
        self._seq = itertools.count()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rows_written = 0
        self.errors: list[str] = []

    def start(self) -> PredictionLog:
        """Start the background thread that flushes every ``flush_seconds``."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="fskit-prediction-log", daemon=True
            )
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self.flush_seconds / 2)):
            first = self._first_row_at
            if first is not None and time.monotonic() - first >= self.flush_seconds:
                self.flush()

    def append(
        self,
        schema_key: tuple[Any, ...],
        schema: dict[str, pl.DataType],
        columns: dict[str, list[Any]],
        n_rows: int,
    ) -> None:
        """Buffer ``n_rows`` rows; ``columns`` holds a list for every name in ``schema``."""
        full = False
        with self._lock:
            buffer = self._buffers.get(schema_key)
            if buffer is None:
                buffer = self._buffers[schema_key] = _Buffer(schema)
            for name, values in buffer.columns.items():
                values.extend(columns[name])
            buffer.rows += n_rows
            if self._first_row_at is None:
                self._first_row_at = time.monotonic()
            full = buffer.rows >= self.flush_rows
        if full:
            self.flush()

    def flush(self) -> int:
        """Write every buffered row now; return how many were written."""
        with self._lock:
            buffers, self._buffers = self._buffers, {}
            self._first_row_at = None
        written = 0
        for buffer in buffers.values():
            if not buffer.rows:
                continue
            try:
                frame = pl.DataFrame(
                    [
                        pl.Series(name, values, dtype=buffer.schema[name], strict=False)
                        for name, values in buffer.columns.items()
                    ]
                )
                self.directory.mkdir(parents=True, exist_ok=True)
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
                name = (
                    f"part-{stamp}-{os.getpid()}-{next(self._seq)}-{uuid.uuid4().hex[:6]}.parquet"
                )
                tmp = self.directory / f".{name}.tmp"
                frame.write_parquet(tmp)
                os.replace(tmp, self.directory / name)
                written += buffer.rows
            except Exception as exc:  # never take the server down for the log
                self.errors.append(f"{type(exc).__name__}: {exc}")
        self.rows_written += written
        return written

    def close(self) -> int:
        """Stop the background thread and flush what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        return self.flush()


def read_prediction_log(store: FeatureStore | str | os.PathLike[str], model: str) -> pl.DataFrame:
    """Every logged prediction of ``model`` in the repo, oldest part first.

    Parts of different model versions may have different feature columns; missing ones are
    null. An empty frame with the metadata columns when nothing was logged yet.
    """
    from fskit.store import FeatureStore

    repo = store.repo_path if isinstance(store, FeatureStore) else Path(store)
    parts = sorted(log_dir(repo, model).glob("part-*.parquet"))
    if not parts:
        return pl.DataFrame(schema={**_META, "score": pl.Float64})
    frames = [pl.read_parquet(p) for p in parts]
    return pl.concat(frames, how="diagonal_relaxed").sort("logged_at", maintain_order=True)
