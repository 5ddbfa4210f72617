"""Transformations defined once: windowed aggregations and on-demand features.

Training-serving skew is the same feature computed one way for training and another way for
serving. fskit's answer is structural: a transformation is *one* polars expression object,
stored in the registry, and every path runs that object.

:class:`StreamFeatureView` — windowed aggregations over raw events (Feast's name). Each
:class:`Aggregation` is ``function(column)`` over the events of one entity in the window
``(t - window, t]`` that pass the view's row ``filter``. The batch engine evaluates the
expressions at every entity row's timestamp (a polars ``rolling`` over events and query
points), so a training row at ``t`` uses only events at or before ``t``. Online, the store
keeps each entity's filtered events of the longest window (materialized, or appended by
``push``), and a read at ``now`` evaluates *the same expressions* over the events in
``(now - window, now]``. With no event in the window, ``count`` and ``sum`` are 0 and the
other functions null, on both paths.

:class:`OnDemandFeatureView` — request-time features: named polars expressions over request
fields and other features (``pl.col("amount") / pl.col("amount_mean_30d")``), applied by
:meth:`OnDemandFeatureView.transform` to the training frame in ``get_historical_features``
and to the request rows in ``get_online_features`` (which the model server calls).

Expressions are stored as polars' JSON serialization. That form depends on the polars
version, so the registry records the version and refuses to load expressions written by
another one (re-apply the definitions). Python functions (``map_elements``...) are refused:
they could only be stored with pickle.

>>> from datetime import timedelta
>>> import polars as pl
>>> Aggregation("amount", "mean", timedelta(days=30)).name
'amount_mean_30d'
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import timedelta
from typing import Any

import polars as pl

from fskit.definitions import (
    FeatureRef,
    FeatureView,
    Field,
    _check_ident,
    _check_tags,
    _check_text,
    format_timedelta,
)
from fskit.errors import DefinitionError, RegistryError

__all__ = [
    "AGGREGATIONS",
    "Aggregation",
    "OnDemandFeatureView",
    "StreamFeatureView",
    "expr_from_config",
    "expr_to_config",
]

AGGREGATIONS = ("count", "sum", "mean", "min", "max", "std")
EVENT = "__fskit_event"  # 1 on event rows, 0 on query rows in the batch engine
TS = "__fskit_ts"  # event time as naive UTC, as in fskit.offline

_UNSAFE = re.compile(r"python|pickle|udf|anonymous|plugin", re.IGNORECASE)


# ---------------------------------------------------------------------- expression storage


def expr_to_config(expr: pl.Expr, owner: str) -> Any:
    """A polars expression as JSON data for the registry file."""
    if not isinstance(expr, pl.Expr):
        raise DefinitionError(f"{owner} must be a polars expression, got {expr!r}")
    try:
        text = expr.meta.serialize(format="json")
    except Exception as exc:  # polars raises ComputeError for Python functions
        raise DefinitionError(
            f"{owner} cannot be stored: {str(exc).splitlines()[0]}. Use native polars "
            "expressions only (no map_elements/map_batches): they are stored without pickle"
        ) from None
    data = json.loads(text)
    _check_safe(data, owner)
    return data


def expr_from_config(data: Any, owner: str = "expression") -> pl.Expr:
    """Rebuild an expression stored by :func:`expr_to_config`; Python functions refused."""
    _check_safe(data, owner)
    try:
        return pl.Expr.deserialize(io.StringIO(json.dumps(data)), format="json")
    except Exception as exc:
        raise RegistryError(
            f"{owner}: stored expression cannot be read by polars {pl.__version__} "
            f"({str(exc).splitlines()[0]}); re-apply the definitions"
        ) from None


def _check_safe(data: Any, owner: str) -> None:
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if _UNSAFE.search(str(key)):
                    raise DefinitionError(
                        f"{owner} contains a Python function or plugin ({key!r}); only native "
                        "polars expressions can be stored (without pickle)"
                    )
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def _expr_equal(a: pl.Expr | None, b: pl.Expr | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.meta.eq(b)


# --------------------------------------------------------------------------- aggregations


@dataclass(frozen=True)
class Aggregation:
    """``function(column)`` over one entity's events in ``(t - window, t]``.

    ``function`` is one of ``count`` (events, whatever ``column`` holds), ``sum``, ``mean``,
    ``min``, ``max``, ``std`` (sample standard deviation). The feature is named
    ``<column>_<function>_<window>`` unless ``name`` says otherwise.
    """

    column: str
    function: str
    window: timedelta
    _: KW_ONLY
    name: str | None = None

    def __post_init__(self) -> None:
        _check_ident("Aggregation", "column", self.column)
        if self.function not in AGGREGATIONS:
            raise DefinitionError(
                f"Aggregation on {self.column!r}: function must be one of {AGGREGATIONS}, "
                f"got {self.function!r}"
            )
        if not isinstance(self.window, timedelta) or self.window <= timedelta(0):
            raise DefinitionError(
                f"Aggregation on {self.column!r}: window must be a positive timedelta, got "
                f"{self.window!r}"
            )
        name = self.name or f"{self.column}_{self.function}_{format_timedelta(self.window)}"
        _check_ident("Aggregation", "name", name)
        object.__setattr__(self, "name", name)

    @property
    def dtype(self) -> pl.DataType:
        return pl.Int64() if self.function == "count" else pl.Float64()

    def expr(self) -> pl.Expr:
        """The one expression both the batch engine and online reads evaluate."""
        if self.function == "count":
            out = pl.col(EVENT).sum().cast(pl.Int64)
        else:
            value = pl.col(self.column).cast(pl.Float64)
            out = {
                "sum": value.sum(),
                "mean": value.mean(),
                "min": value.min(),
                "max": value.max(),
                "std": value.std(),
            }[self.function]
        return out.alias(self.name)  # type: ignore[arg-type]

    def to_config(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "function": self.function,
            "window_seconds": self.window.total_seconds(),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Aggregation:
        return cls(
            config["column"],
            config["function"],
            timedelta(seconds=config["window_seconds"]),
            name=config["name"],
        )


@dataclass(frozen=True, kw_only=True, repr=False)
class StreamFeatureView(FeatureView):
    """Windowed aggregations over raw events, the same for training and serving.

    Takes the parameters of :class:`~fskit.FeatureView` (its ``source`` holds the raw events;
    ``schema`` is derived) plus ``aggregations`` and an optional row ``filter`` expression.

    >>> from datetime import timedelta
    >>> import fskit as fk
    >>> user = fk.Entity("user", join_keys=["user_id"])
    >>> events = pl.DataFrame({"user_id": [1], "event_timestamp": [None], "amount": [2.0]})
    >>> StreamFeatureView(
    ...     name="user_txn", entities=[user], source=events,
    ...     filter=pl.col("amount") > 0,
    ...     aggregations=[Aggregation("amount", "sum", timedelta(hours=1))],
    ... ).feature_names
    ('amount_sum_1h',)
    """

    aggregations: Sequence[Aggregation] = ()
    filter: pl.Expr | None = None

    def __post_init__(self) -> None:
        owner = f"StreamFeatureView {self.name!r}"
        aggs = tuple(self.aggregations)
        if not aggs or not all(isinstance(a, Aggregation) for a in aggs):
            raise DefinitionError(
                f"{owner}: aggregations must be a non-empty list of fk.Aggregation, got "
                f"{self.aggregations!r}"
            )
        names = [a.name for a in aggs]
        if len(set(names)) != len(names):
            raise DefinitionError(f"{owner}: aggregation names repeat: {names}")
        object.__setattr__(self, "aggregations", aggs)
        derived = tuple(Field(a.name, a.dtype) for a in aggs)  # type: ignore[arg-type]
        if self.schema is not None and tuple(self.schema) != derived:
            raise DefinitionError(f"{owner}: schema is derived from the aggregations; leave it out")
        object.__setattr__(self, "schema", derived)
        if self.filter is not None:
            expr_to_config(self.filter, f"{owner}: filter")  # refuse what cannot be stored
        super().__post_init__()

    def __repr__(self) -> str:
        return (
            f"StreamFeatureView({self.ref!r}, entities={[e.name for e in self.entities]!r}, "  # type: ignore[union-attr]
            f"aggregations={[a.name for a in self.aggregations]!r})"
        )

    @property
    def max_window(self) -> timedelta:
        return max(a.window for a in self.aggregations)

    @property
    def value_columns(self) -> tuple[str, ...]:
        """Raw event columns the aggregations read."""
        return tuple(dict.fromkeys(a.column for a in self.aggregations))

    @property
    def input_columns(self) -> tuple[str, ...]:
        """Every raw column the view needs: keys, timestamps, aggregated and filter columns."""
        source = self.source
        cols = [*self.join_keys, source.timestamp_field]  # type: ignore[union-attr]
        if source.created_timestamp_field:  # type: ignore[union-attr]
            cols.append(source.created_timestamp_field)  # type: ignore[union-attr]
        cols += self.value_columns
        if self.filter is not None:
            cols += self.filter.meta.root_names()
        return tuple(dict.fromkeys(cols))

    def filter_events(self, events: pl.LazyFrame | pl.DataFrame) -> Any:
        """Keep the events that pass the view's row filter (nulls in the filter drop)."""
        if self.filter is None:
            return events
        return events.filter(self.filter.fill_null(False))

    def aggregate_online(self, events: pl.DataFrame, n_entities: int, now: Any) -> pl.DataFrame:
        """Aggregates at ``now`` for entities ``0..n_entities-1``, one row each, in order.

        ``events`` (already filtered) hold ``__entity`` (the entity's position), the event
        time ``__fskit_ts`` (naive UTC) and the value columns. Like the batch engine, every
        entity gets a non-event query row at ``now``, and each aggregation runs the same
        expression over ``(now - window, now]``: no event gives count 0, sum 0, others null.
        """
        schema = events.schema
        queries = pl.LazyFrame({"__entity": range(n_entities)}).select(
            pl.col("__entity").cast(schema["__entity"]),
            pl.lit(now, schema[TS]).alias(TS),
            *(pl.lit(None, schema[c]).alias(c) for c in self.value_columns),
            pl.lit(0, pl.Int64).alias(EVENT),
        )
        both = pl.concat(
            [events.lazy().with_columns(pl.lit(1, pl.Int64).alias(EVENT)), queries],
            how="vertical",
        )
        out = None
        for window, aggs in _by_window(self.aggregations).items():
            part = (
                both.filter((pl.col(TS) > now - window) & (pl.col(TS) <= now))
                .group_by("__entity")
                .agg(a.expr() for a in aggs)
            )
            out = part if out is None else out.join(part, on="__entity", how="left")
        assert out is not None
        return out.sort("__entity").drop("__entity").collect()  # one query, collected once

    def to_config(self) -> dict[str, Any]:
        config = super().to_config()
        config["kind"] = "stream"
        config["aggregations"] = [a.to_config() for a in self.aggregations]
        config["filter"] = (
            None if self.filter is None else expr_to_config(self.filter, f"{self.ref} filter")
        )
        config["schema"] = None
        return config

    def _logic(self) -> dict[str, Any]:
        logic = super()._logic()
        config = self.to_config()
        logic["aggregations"] = config["aggregations"]
        logic["filter"] = config["filter"]
        return logic


def _by_window(aggs: Sequence[Aggregation]) -> dict[timedelta, list[Aggregation]]:
    groups: dict[timedelta, list[Aggregation]] = {}
    for agg in aggs:
        groups.setdefault(agg.window, []).append(agg)
    return groups


def stream_view_from_config(config: Mapping[str, Any], base: FeatureView) -> StreamFeatureView:
    return StreamFeatureView(
        name=base.name,
        version=base.version,
        entities=base.entities,
        source=base.source,
        ttl=base.ttl,
        online=base.online,
        description=base.description,
        owner=base.owner,
        tags=base.tags,
        freshness_sla=base.freshness_sla,
        aggregations=[Aggregation.from_config(a) for a in config["aggregations"]],
        filter=None
        if config["filter"] is None
        else expr_from_config(config["filter"], f"{config['name']} filter"),
    )


def rolling_aggregates(
    view: StreamFeatureView, events: pl.LazyFrame, queries: pl.LazyFrame
) -> pl.LazyFrame:
    """Aggregates at each query point: ``queries`` (keys + ``__fskit_ts``) → keys, ``__fskit_ts``, features.

    ``events`` are filtered and hold keys, ``__fskit_ts`` (UTC naive) and the value columns. Query
    points are interleaved with the events (as rows that are not events) and every window is
    evaluated with polars' ``rolling`` on ``(t - window, t]``, per entity.
    """
    keys = list(view.join_keys)
    values = list(view.value_columns)
    ev = events.select(*keys, TS, *values).with_columns(pl.lit(1, pl.Int64).alias(EVENT))
    q = queries.select(*keys, TS).unique()
    schema = ev.collect_schema()
    q = q.with_columns(
        *(pl.lit(None, schema[c]).alias(c) for c in values), pl.lit(0, pl.Int64).alias(EVENT)
    )
    both = pl.concat([ev, q], how="vertical").sort([*keys, TS])
    result = q.select(*keys, TS)
    for window, aggs in _by_window(view.aggregations).items():
        rolled = (
            both.rolling(index_column=TS, period=window, closed="right", group_by=keys)
            .agg(a.expr() for a in aggs)
            .unique(subset=[*keys, TS])
        )
        result = result.join(rolled, on=[*keys, TS], how="left")
    return result


# ------------------------------------------------------------------------ on-demand views


@dataclass(frozen=True, kw_only=True)
class OnDemandFeatureView:
    """Request-time features: polars expressions over request fields and other features.

    Parameters
    ----------
    name, version, description, owner, tags
        As for :class:`~fskit.FeatureView`.
    sources
        The feature references the expressions read (``"user_txn_stats:amount_mean_30d"``);
        an expression reads them by their feature name. Unversioned refs are pinned to the
        latest version when the view is applied.
    request_schema
        Fields that come with the request (the entity frame's columns offline, the request
        body online), e.g. ``fk.Field("amount", pl.Float64)``.
    features
        Output name → expression, e.g. ``{"amount_ratio": pl.col("amount") /
        pl.col("amount_mean_30d")}``.
    """

    name: str
    sources: Sequence[str | FeatureRef]
    features: Mapping[str, pl.Expr]
    request_schema: Sequence[Field] = ()
    schema: Sequence[Field] | None = None
    version: int = 1
    description: str = ""
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    online: bool = True

    def __post_init__(self) -> None:
        _check_ident("OnDemandFeatureView", "name", self.name)
        owner = f"OnDemandFeatureView {self.name!r}"
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise DefinitionError(f"{owner}: version must be an int >= 1, got {self.version!r}")
        sources = self.sources
        if isinstance(sources, (str, FeatureRef)):
            sources = [sources]
        refs = tuple(FeatureRef.parse(s) for s in sources)
        short = [r.feature for r in refs]
        if len(set(short)) != len(short):
            raise DefinitionError(
                f"{owner}: sources {[str(r) for r in refs]} repeat a feature name; expressions "
                "read sources by feature name, so each must be unique"
            )
        object.__setattr__(self, "sources", refs)
        request = tuple(self.request_schema)
        if not all(isinstance(f, Field) for f in request):
            raise DefinitionError(f"{owner}: request_schema must be a list of fk.Field")
        clash = set(short) & {f.name for f in request}
        if clash:
            raise DefinitionError(f"{owner}: {sorted(clash)} is both a source and a request field")
        object.__setattr__(self, "request_schema", request)
        if not isinstance(self.features, Mapping) or not self.features:
            raise DefinitionError(
                f"{owner}: features must be a non-empty dict of name -> polars expression"
            )
        for name, expr in self.features.items():
            _check_ident(owner, "features", name)
            expr_to_config(expr, f"{owner}: feature {name!r}")
        object.__setattr__(self, "features", dict(self.features))
        if self.schema is not None:
            object.__setattr__(self, "schema", tuple(self.schema))
        _check_text(owner, "description", self.description)
        _check_text(owner, "owner", self.owner)
        object.__setattr__(self, "tags", _check_tags(owner, self.tags))

    # The registry and the joins treat all views alike through these.
    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.features)

    @property
    def join_keys(self) -> tuple[str, ...]:
        return ()

    @property
    def ttl(self) -> None:
        return None

    @property
    def freshness_sla(self) -> None:  # computed per request: never stale by itself
        return None

    def __getitem__(self, feature: str) -> FeatureRef:
        return FeatureRef(self.name, feature, self.version)

    def __repr__(self) -> str:
        return (
            f"OnDemandFeatureView({self.ref!r}, sources={[str(s) for s in self.sources]!r}, "
            f"features={list(self.features)!r})"
        )

    def transform(self, inputs: pl.DataFrame) -> pl.DataFrame:
        """Apply the expressions to ``inputs`` (request fields + source features by name).

        This one method is what training (``get_historical_features``), online retrieval and
        the model server run.
        """
        exprs = [expr.alias(name) for name, expr in self.features.items()]  # type: ignore[union-attr]
        out = inputs.select(exprs)
        if self.schema is not None:
            out = out.cast({f.name: f.dtype for f in self.schema})  # type: ignore[union-attr]
        return out

    def infer_schema(self, input_schema: Mapping[str, pl.DataType]) -> tuple[Field, ...]:
        """Output fields, by running the expressions on an empty frame of the inputs."""
        try:
            out = pl.DataFrame(schema=dict(input_schema)).select(
                expr.alias(name)
                for name, expr in self.features.items()  # type: ignore[union-attr]
            )
        except pl.exceptions.PolarsError as exc:
            raise DefinitionError(
                f"OnDemandFeatureView {self.name!r}: the expressions do not run on the inputs "
                f"{dict(input_schema)}: {str(exc).splitlines()[0]}"
            ) from None
        return tuple(Field(n, d) for n, d in out.schema.items())

    def to_config(self) -> dict[str, Any]:
        return {
            "kind": "on_demand",
            "name": self.name,
            "version": self.version,
            "sources": [str(s) for s in self.sources],  # type: ignore[union-attr]
            "request_schema": [f.to_config() for f in self.request_schema],  # type: ignore[union-attr]
            "features": {
                n: expr_to_config(e, f"{self.name}.{n}")
                for n, e in self.features.items()  # type: ignore[union-attr]
            },
            "schema": None if self.schema is None else [f.to_config() for f in self.schema],
            "online": self.online,
            "description": self.description,
            "owner": self.owner,
            "tags": dict(self.tags),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OnDemandFeatureView:
        return cls(
            name=config["name"],
            version=config["version"],
            sources=config["sources"],
            request_schema=[Field.from_config(f) for f in config["request_schema"]],
            features={
                n: expr_from_config(e, f"{config['name']}.{n}")
                for n, e in config["features"].items()
            },
            schema=None
            if config["schema"] is None
            else [Field.from_config(f) for f in config["schema"]],
            online=config.get("online", True),
            description=config["description"],
            owner=config["owner"],
            tags=config["tags"],
        )

    def _logic(self) -> dict[str, Any]:
        config = self.to_config()
        logic = {
            k: config[k]
            for k in ("kind", "name", "version", "sources", "request_schema", "features")
        }
        logic["request_schema"] = [
            {k: f[k] for k in ("name", "dtype")} for f in logic["request_schema"]
        ]
        return logic
