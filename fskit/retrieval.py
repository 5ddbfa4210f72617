"""Online retrieval: the latest materialized or pushed values for some entities, now.

The view's TTL applies on read exactly as in the offline join: a value whose event timestamp is
older than ``now - ttl`` is not served (its features read as null and its status says so).
Every view in the answer gets three columns beside its features:

* ``<view>__event_timestamp`` — the event time of the served row (UTC);
* ``<view>__staleness`` — ``now - event_timestamp``;
* ``<view>__status`` — Feast's field statuses: ``PRESENT``, ``NOT_FOUND`` (no value for the
  key), ``OUTSIDE_MAX_AGE`` (older than the TTL), or ``UNAVAILABLE`` (the store could not be
  read and ``on_unavailable="null"`` asked for nulls instead of an error).

A missing entity is never an exception: its features are null and its status ``NOT_FOUND``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from fskit._utils.time import as_utc, from_us, td_us, to_us
from fskit.definitions import FeatureRef, FeatureService, FeatureView
from fskit.errors import DefinitionError, EntityFrameError, StoreUnavailableError
from fskit.offline import FeatureLike, ResolvedFeature, resolve_features
from fskit.online import decode_row, encode_key, read_many
from fskit.transformations import TS, OnDemandFeatureView, StreamFeatureView

if TYPE_CHECKING:
    from fskit.store import FeatureStore

__all__ = ["OnlineView", "PRESENT", "NOT_FOUND", "OUTSIDE_MAX_AGE", "UNAVAILABLE"]

PRESENT = "PRESENT"
NOT_FOUND = "NOT_FOUND"
OUTSIDE_MAX_AGE = "OUTSIDE_MAX_AGE"
UNAVAILABLE = "UNAVAILABLE"


@dataclass(frozen=True)
class OnlineView:
    """One view's part of an online request, resolved once and cached per registry state."""

    view: FeatureView
    table: str  # the online table, "user_stats@v1"
    join_keys: tuple[str, ...]
    positions: tuple[int, ...]  # index of each requested feature in the stored row
    columns: tuple[str, ...]
    prefix: str
    ttl_us: int | None
    schema: dict[str, pl.DataType]  # output columns of this view and their dtypes
    kind: str = "batch"  # "batch" | "stream" | "on_demand"


def plan_request(
    store: FeatureStore, features: Sequence[FeatureLike], full_feature_names: bool
) -> list[OnlineView]:
    """Resolve refs once per registry version (cached: the hot path reads the same refs)."""
    store.registry.refresh()
    if isinstance(features, (str, FeatureRef, FeatureView, FeatureService)):
        features = [features]
    try:  # the hot path: the same refs (strings, refs, views or services; all hashable)
        key = (tuple(features), full_feature_names, store.registry._stamp)
        cached = store._online_plans.get(key)
    except TypeError:
        key, cached = None, None
    if cached is not None:
        return cached
    resolved = resolve_features(store.registry, features, full_feature_names=full_feature_names)
    groups: dict[str, list[ResolvedFeature]] = {}
    for r in resolved:
        groups.setdefault(r.view.ref, []).append(r)
    plan = []
    for group in groups.values():
        view = group[0].view
        pinned = any(r.ref.version is not None for r in group)
        prefix = f"{view.name}_v{view.version}" if pinned else view.name
        stored = view.feature_names
        dtypes = {f.name: f.dtype for f in view.schema or ()}
        schema = {r.column: dtypes[r.feature] for r in group}
        kind = (
            "on_demand"
            if isinstance(view, OnDemandFeatureView)
            else "stream"
            if isinstance(view, StreamFeatureView)
            else "batch"
        )
        if kind != "on_demand":
            schema[f"{prefix}__event_timestamp"] = pl.Datetime("us", "UTC")
            schema[f"{prefix}__staleness"] = pl.Duration("us")
            schema[f"{prefix}__status"] = pl.String()
        plan.append(
            OnlineView(
                view=view,
                table=view.ref,
                join_keys=view.join_keys,
                positions=tuple(stored.index(r.feature) for r in group),
                columns=tuple(r.column for r in group),
                prefix=prefix,
                ttl_us=None if view.ttl is None else td_us(view.ttl),
                schema=schema,
                kind=kind,
            )
        )
    if key is not None:
        if len(store._online_plans) > 256:
            store._online_plans.clear()
        store._online_plans[key] = plan
    return plan


def _entity_columns(entity_rows: Any) -> dict[str, list[Any]]:
    if type(entity_rows) is list and all(type(row) is dict for row in entity_rows):
        if len(entity_rows) == 1:  # the serving hot path: one entity
            return {k: [v] for k, v in entity_rows[0].items()}
        names = list(dict.fromkeys(k for row in entity_rows for k in row))
        return {k: [row.get(k) for row in entity_rows] for k in names}
    if isinstance(entity_rows, Mapping):
        columns = {k: list(v) for k, v in entity_rows.items()}
    elif isinstance(entity_rows, pl.DataFrame):
        columns = entity_rows.to_dict(as_series=False)
    elif type(entity_rows).__module__.startswith("pandas"):
        columns = pl.from_pandas(entity_rows).to_dict(as_series=False)
    elif isinstance(entity_rows, Sequence) and not isinstance(entity_rows, (str, bytes)):
        if not all(isinstance(row, Mapping) for row in entity_rows):
            raise EntityFrameError(
                "get_online_features: entity_rows must be a list of dicts like "
                "[{'user_id': 1}], a dict of lists, or a DataFrame"
            )
        names = list(dict.fromkeys(k for row in entity_rows for k in row))
        columns = {k: [row.get(k) for row in entity_rows] for k in names}
    else:
        raise EntityFrameError(
            "get_online_features: entity_rows must be a list of dicts, a dict of lists or a "
            f"DataFrame, got {type(entity_rows).__name__}"
        )
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise EntityFrameError(
            f"get_online_features: entity_rows columns differ in length: {lengths}"
        )
    return columns


def get_online_features(
    store: FeatureStore,
    features: Sequence[FeatureLike],
    entity_rows: Any,
    *,
    full_feature_names: bool = False,
    now: datetime | None = None,
    return_type: Literal["polars", "dict"] = "polars",
    on_unavailable: Literal["raise", "null"] = "raise",
) -> pl.DataFrame | dict[str, list[Any]]:
    """Latest online values for ``entity_rows`` (see the module docs)."""
    if return_type not in ("polars", "dict"):
        raise DefinitionError(
            f"get_online_features: return_type must be 'polars' or 'dict', got {return_type!r}"
        )
    if on_unavailable not in ("raise", "null"):
        raise DefinitionError(
            f"get_online_features: on_unavailable must be 'raise' or 'null', got {on_unavailable!r}"
        )
    plan = plan_request(store, features, full_feature_names)
    columns = _entity_columns(entity_rows)
    for part in plan:
        missing = [k for k in part.view.join_keys if k not in columns]
        if part.kind == "on_demand":
            missing += [f.name for f in part.view.request_schema if f.name not in columns]  # type: ignore[union-attr]
        if missing:
            raise EntityFrameError(
                f"get_online_features: entity_rows lack {missing} needed by feature view "
                f"{part.view.ref!r} (given: {list(columns)})"
            )
    now_dt = datetime.now(UTC) if now is None else as_utc(now, "get_online_features: now")
    out = read_online(store, plan, columns, now_dt, on_unavailable)
    if return_type == "dict":
        return out
    n_rows = len(next(iter(columns.values()))) if columns else 0
    schema: dict[str, Any] = {}
    for part in plan:
        schema.update(part.schema)
    if 0 < n_rows <= 64:  # building few rows as dicts is ~5x faster than column by column
        names = list(out)
        rows = [dict(zip(names, values, strict=True)) for values in zip(*out.values(), strict=True)]
        return pl.from_dicts(rows, schema_overrides=schema, infer_schema_length=None)
    return pl.DataFrame(
        [pl.Series(name, col, dtype=schema.get(name), strict=False) for name, col in out.items()]
    )


def read_online(
    store: FeatureStore,
    plan: Sequence[OnlineView],
    columns: Mapping[str, list[Any]],
    now: datetime,
    on_unavailable: str = "raise",
    *,
    timings: dict[str, float] | None = None,
) -> dict[str, list[Any]]:
    """The core of :func:`get_online_features`, without its argument checks: the join keys,
    each planned feature column and each view's status columns, as lists.

    ``columns`` holds every join key and request field the plan needs, lists of one length;
    ``now`` is an aware UTC datetime. The model server calls this directly (it has checked
    its requests already), so it reads exactly as ``get_online_features`` does. With
    ``timings``, the seconds spent in on-demand transforms are added under ``"transforms"``.
    """
    now_us = to_us(now)
    out: dict[str, list[Any]] = {}
    for part in plan:
        for key in part.join_keys:
            out.setdefault(key, columns[key])
    meta: dict[str, list[Any]] = {}
    stored = [part for part in plan if part.kind != "on_demand"]
    # every stored view's keys, then one read for all of them (one query / MGET)
    encoded_keys: list[list[bytes | None]] = []
    for part in stored:
        encoded_keys.append(
            [
                None if None in parts else encode_key(parts)
                for parts in zip(*(columns[k] for k in part.join_keys), strict=True)
            ]
        )
    status_default = NOT_FOUND
    requests = [
        (part.table, [k for k in encoded if k is not None])
        for part, encoded in zip(stored, encoded_keys, strict=True)
    ]
    try:
        results = read_many(store.online_backend, requests) if stored else []
    except StoreUnavailableError:
        if on_unavailable == "raise":
            raise
        results, status_default = [[] for _ in stored], UNAVAILABLE
    for part, encoded, values_read in zip(stored, encoded_keys, results, strict=True):
        raw = iter(values_read)
        found = [None if key is None else next(raw, None) for key in encoded]
        if part.kind == "stream":
            _read_stream(part, found, encoded, status_default, now, now_us, out, meta)
            continue
        ttl_us = part.ttl_us
        values: list[list[Any]] = [[] for _ in part.columns]
        stamps: list[datetime | None] = []
        staleness: list[timedelta | None] = []
        statuses: list[str] = []
        for key, data in zip(encoded, found, strict=True):
            if data is None:
                for column in values:
                    column.append(None)
                stamps.append(None)
                staleness.append(None)
                statuses.append(NOT_FOUND if key is None else status_default)
                continue
            ts_us, row = decode_row(data)
            age_us = now_us - ts_us
            stamps.append(from_us(ts_us))
            staleness.append(timedelta(microseconds=age_us))
            if ttl_us is not None and age_us > ttl_us:
                for column in values:
                    column.append(None)
                statuses.append(OUTSIDE_MAX_AGE)
            else:
                for column, pos in zip(values, part.positions, strict=True):
                    column.append(row[pos])
                statuses.append(PRESENT)
        for name, column in zip(part.columns, values, strict=True):
            out[name] = column
        meta[f"{part.prefix}__event_timestamp"] = stamps
        meta[f"{part.prefix}__staleness"] = staleness
        meta[f"{part.prefix}__status"] = statuses
    for part in plan:
        if part.kind == "on_demand":
            _read_on_demand(store, part, columns, now, on_unavailable, out, timings)
    out.update(meta)
    return out


def _read_stream(
    part: OnlineView,
    found: list[bytes | None],
    encoded: list[bytes | None],
    status_default: str,
    now: datetime,
    now_us: int,
    out: dict[str, list[Any]],
    meta: dict[str, list[Any]],
) -> None:
    """Windowed aggregates at ``now`` from each entity's stored events (same expressions
    as the batch engine, see :meth:`StreamFeatureView.aggregate_online`)."""
    view: StreamFeatureView = part.view  # type: ignore[assignment]
    value_columns = list(view.value_columns)
    entity: list[int] = []
    times: list[int] = []
    values: list[list[Any]] = [[] for _ in value_columns]
    stamps: list[datetime | None] = []
    staleness: list[timedelta | None] = []
    statuses: list[str] = []
    for i, (key, data) in enumerate(zip(encoded, found, strict=True)):
        if data is None:
            stamps.append(None)
            staleness.append(None)
            statuses.append(NOT_FOUND if key is None else status_default)
            continue
        ts_us, row = decode_row(data)
        entity.extend([i] * len(row[0]))
        times.extend(row[0])
        for column, stored in zip(values, row[1:], strict=True):
            column.extend(stored)
        stamps.append(from_us(ts_us))
        staleness.append(timedelta(microseconds=now_us - ts_us))
        statuses.append(PRESENT)
    events = pl.DataFrame(
        {
            "__entity": pl.Series(entity, dtype=pl.Int64),
            TS: pl.Series(times, dtype=pl.Int64).cast(pl.Datetime("us")),
            **{
                c: pl.Series(v, dtype=pl.Float64, strict=False)
                for c, v in zip(value_columns, values, strict=True)
            },
        }
    )
    aggregates = view.aggregate_online(events, len(encoded), now.replace(tzinfo=None))
    names = view.feature_names
    for column, pos in zip(part.columns, part.positions, strict=True):
        out[column] = aggregates[names[pos]].to_list()
    meta[f"{part.prefix}__event_timestamp"] = stamps
    meta[f"{part.prefix}__staleness"] = staleness
    meta[f"{part.prefix}__status"] = statuses


def _read_on_demand(
    store: FeatureStore,
    part: OnlineView,
    columns: dict[str, list[Any]],
    now: datetime,
    on_unavailable: str,
    out: dict[str, list[Any]],
    timings: dict[str, float] | None = None,
) -> None:
    """Source features read online, then the view's own :meth:`transform` — the very
    expressions ``get_historical_features`` applies to training frames. The transform's
    seconds (not the reads') are added to ``timings["transforms"]`` when given."""
    odfv: OnDemandFeatureView = part.view  # type: ignore[assignment]
    sources = get_online_features(
        store,
        list(odfv.sources),
        columns,
        now=now,
        return_type="dict",
        on_unavailable=on_unavailable,  # type: ignore[arg-type]
    )
    assert isinstance(sources, dict)
    started = time.perf_counter()
    dtypes = {f.name: f.dtype for f in odfv.request_schema}  # type: ignore[union-attr]
    inputs = pl.DataFrame(
        {
            **{
                ref.feature: pl.Series(sources[ref.feature], strict=False)
                for ref in odfv.sources  # type: ignore[union-attr]
            },
            **{
                name: pl.Series(columns[name], dtype=dtype, strict=False)
                for name, dtype in dtypes.items()
            },
        }
    )
    values = odfv.transform(inputs)
    names = odfv.feature_names
    for column, pos in zip(part.columns, part.positions, strict=True):
        out[column] = values[names[pos]].to_list()
    if timings is not None:
        timings["transforms"] = timings.get("transforms", 0.0) + time.perf_counter() - started
