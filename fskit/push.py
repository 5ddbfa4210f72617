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
    source = fv.source
    assert isinstance(source, Source)
    frame = _rows_frame(rows)
    if frame.is_empty():
        return 0
    owner = f"push to {fv.ref!r}"
    source_schema = source.scan(store.repo_path).collect_schema()
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
    if to in ("online_and_offline", "online"):
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
