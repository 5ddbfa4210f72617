"""Push ingestion: fresh rows from a stream into the online store *and* the offline store.

``store.push("user_stats", rows)`` validates the rows against the view (join keys, event
timestamp and every feature, cast to the view's dtypes; a created timestamp is filled with
the time of the push when missing), appends them to the offline store as one Parquet part
(so a later training set sees exactly what serving saw), then writes the newest row per entity
to the online store, where an older event never overwrites a newer one. Nothing is written
when validation fails.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from fskit.definitions import Source, _as_polars
from fskit.errors import DefinitionError, SchemaError
from fskit.offline import _utc, pushed_dir
from fskit.transformations import OnDemandFeatureView, StreamFeatureView

if TYPE_CHECKING:
    from fskit.store import FeatureStore

__all__ = ["push"]

PushMode = Literal["online_and_offline", "online", "offline"]


def _rows_frame(rows: Any) -> pl.DataFrame:
    if isinstance(rows, list):
        return pl.DataFrame(rows)
    if isinstance(rows, dict):
        return pl.DataFrame(rows)
    frame = _as_polars(rows, "push", "rows")
    return frame.collect() if isinstance(frame, pl.LazyFrame) else frame


def push(
    store: FeatureStore,
    view: str,
    rows: Any,
    *,
    to: PushMode = "online_and_offline",
    now: datetime | None = None,
) -> int:
    """Ingest ``rows`` into feature view ``view`` (``"name"`` or ``"name@v2"``); see module."""
    if to not in ("online_and_offline", "online", "offline"):
        raise DefinitionError(
            f"push: to must be 'online_and_offline', 'online' or 'offline', got {to!r}"
        )
    name, _, version = view.partition("@v")
    fv = store.get_feature_view(name, int(version) if version else None)
    if isinstance(fv, OnDemandFeatureView):
        raise DefinitionError(
            f"push: {fv.ref!r} is an on-demand view, computed at request time; push to the "
            f"views it reads instead: {[str(s) for s in fv.sources]}"
        )
    stream = isinstance(fv, StreamFeatureView)
    source = fv.source
    assert isinstance(source, Source)
    frame = _rows_frame(rows)
    if frame.is_empty():
        return 0
    owner = f"push to {fv.ref!r}"
    source_schema = source.scan(store.repo_path).collect_schema()
    if stream:  # raw events: every column the aggregations and the filter read
        required = [c for c in fv.input_columns if c != source.created_timestamp_field]
    else:
        required = [*fv.join_keys, source.timestamp_field, *fv.feature_names]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise SchemaError(f"{owner}: rows lack column(s) {missing}; expected {required}")
    created = source.created_timestamp_field
    pushed_at = datetime.now(UTC) if now is None else now
    if created is not None and created not in frame.columns:
        frame = frame.with_columns(pl.lit(pushed_at).alias(created))
    columns = required + ([created] if created else [])
    casts = []
    for column in columns:
        want, have = source_schema[column], frame.schema[column]
        if isinstance(want, pl.Datetime) and isinstance(have, pl.Datetime):
            # Compare instants: naive pushed stamps are UTC, like everywhere in fskit.
            expr = _utc(pl.col(column), have)
            if want.time_zone is not None:
                expr = expr.dt.replace_time_zone("UTC").dt.convert_time_zone(want.time_zone)
            casts.append(expr.dt.cast_time_unit(want.time_unit).alias(column))
        else:
            casts.append(pl.col(column).cast(want, strict=True))
    try:
        frame = frame.select(casts)
    except pl.exceptions.PolarsError as exc:
        raise SchemaError(
            f"{owner}: rows do not fit the view's dtypes "
            f"({ {c: str(source_schema[c]) for c in columns} }): {str(exc).splitlines()[0]}"
        ) from None
    nulls = {c: frame[c].null_count() for c in [*fv.join_keys, source.timestamp_field]}
    nulls = {c: n for c, n in nulls.items() if n}
    if nulls:
        raise SchemaError(f"{owner}: null join keys or event timestamps: {nulls}")

    if to in ("online_and_offline", "offline"):
        folder = pushed_dir(fv, store.repo_path)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = pushed_at.strftime("%Y%m%dT%H%M%S%f")
        target = folder / f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = folder / f".{target.name}.tmp"
        frame.write_parquet(tmp)
        os.replace(tmp, target)
    if to in ("online_and_offline", "online") and stream:
        _push_events(store, fv, frame)  # type: ignore[arg-type]
    elif to in ("online_and_offline", "online"):
        from fskit.materialization import write_rows

        order = [source.timestamp_field] + ([created] if created else [])
        latest = (
            frame.sort(order, nulls_last=False, maintain_order=True)
            .unique(subset=list(fv.join_keys), keep="last", maintain_order=True)
            .select(
                *fv.join_keys,
                _utc(pl.col(source.timestamp_field), frame.schema[source.timestamp_field])
                .dt.replace_time_zone("UTC")
                .alias("event_timestamp"),
                *fv.feature_names,
            )
        )
        write_rows(store.online_backend, fv, latest)
    return frame.height


def _push_events(store: FeatureStore, view: StreamFeatureView, frame: pl.DataFrame) -> None:
    """Append events to the online buffers of their entities (read, merge, trim, write).

    Pushers to the same stream view serialize on a lock file in the repo, so a concurrent
    push cannot lose another's events on this machine.
    """
    from fskit.materialization import _locked, event_buffers, write_rows
    from fskit.online import decode_row, encode_key

    keys = list(view.join_keys)
    source = view.source
    ts_field = source.timestamp_field  # type: ignore[union-attr]
    backend = store.online_backend
    with _locked(store.repo_path):
        entities = frame.select(keys).unique(maintain_order=True)
        stored = backend.read(view.ref, [encode_key(k) for k in entities.iter_rows()])
        old: dict[str, list[Any]] = {c: [] for c in [*keys, ts_field, *view.value_columns]}
        for key_values, data in zip(entities.iter_rows(), stored, strict=True):
            if data is None:
                continue
            _, row = decode_row(data)
            n = len(row[0])
            for key, value in zip(keys, key_values, strict=True):
                old[key].extend([value] * n)
            old[ts_field].extend(row[0])
            for column, values in zip(view.value_columns, row[1:], strict=True):
                old[column].extend(values)
        schema = frame.schema
        dtype = schema[ts_field]
        stamps = pl.Series(old[ts_field], dtype=pl.Int64).cast(pl.Datetime("us"))
        if dtype.time_zone is not None:  # type: ignore[union-attr]
            stamps = stamps.dt.replace_time_zone("UTC").dt.convert_time_zone(dtype.time_zone)  # type: ignore[union-attr]
        previous = pl.DataFrame(
            {
                **{k: pl.Series(old[k], dtype=schema[k]) for k in keys},
                ts_field: stamps.dt.cast_time_unit(dtype.time_unit),  # type: ignore[union-attr]
                **{c: pl.Series(old[c], dtype=schema[c], strict=False) for c in view.value_columns},
            }
        )
        new = view.filter_events(frame).select(previous.columns)
        merged = pl.concat([previous, new], how="vertical")
        newest = merged.select(
            _utc(pl.col(ts_field), dtype).max().dt.replace_time_zone("UTC")
        ).item()
        if newest is None:  # nothing passed the filter and nothing was stored
            return
        # the stored events passed the filter when they were pushed; the new ones just did
        buffers = event_buffers(
            view, store.repo_path, newest, events=merged.lazy(), apply_filter=False
        )
        write_rows(backend, view, buffers)
