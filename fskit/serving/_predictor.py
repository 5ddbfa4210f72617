"""The one scoring path: entity rows → online features → model inputs → scores.

The HTTP server (``/predict``), the streaming scorer (:func:`fskit.stream.run`) and batch
scoring (:func:`fskit.serving.batch_score`) all call :meth:`Predictor.predict` (the server
through :meth:`Predictor.predict_many`, which scores the requests it holds at one moment as
one batch), so the same request gives the same answer whichever way it comes in.

For each request (or batch of requests) the predictor

1. checks the deployment file (one ``stat``; see :mod:`fskit.serving._state`) and loads or
   drops model versions when it changed, so promote/rollback apply at once;
2. validates the entity rows against what every active version needs (join keys with their
   dtypes, request-time fields): a :class:`RequestError` (HTTP 422) names the problem;
3. routes each row by its sticky key bucket (the deployment's ``route_by`` keys, default
   all join keys) to the stable or the canary version;
4. answers rows with a fresh precomputed batch score, when configured, and scores the rest
   live — one online read (:func:`fskit.retrieval.read_online`, the core of
   ``get_online_features``: one query for all views) and one ``predict`` call per version
   (a few rows walk the compiled trees, :mod:`fskit._trees`; more go to XGBoost);
5. logs every scored row (features, score, version, time) to the prediction log.

When the online store is unavailable the predictor either raises
:class:`~fskit.errors.StoreUnavailableError` (``on_unavailable="error"``: the server answers
503) or, with ``on_unavailable="degrade"`` (the default), scores with the documented
defaults: each feature of an unreachable view takes its value from ``defaults`` when given
there, and is otherwise missing (null → NaN, so XGBoost follows the default branch it learned
for missing values); such rows say ``"degraded": true``.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from fskit.errors import StoreUnavailableError
from fskit.online import encode_key
from fskit.retrieval import (
    NOT_FOUND,
    OUTSIDE_MAX_AGE,
    UNAVAILABLE,
    plan_request,
    read_online,
)
from fskit.serving._errors import RequestError, ServingError, UnknownModelError
from fskit.serving._log import PredictionLog
from fskit.serving._metrics import Metrics
from fskit.serving._models import model_registry
from fskit.serving._state import Deployment, StateWatcher, bucket

if TYPE_CHECKING:
    from fskit.store import FeatureStore

__all__ = ["ModelSpec", "Predictor", "parse_entities"]

MAX_BATCH = 10_000
_INT_DTYPES = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)


def _kind(dtype: pl.DataType) -> str:
    if dtype in _INT_DTYPES:
        return "int"
    if dtype in (pl.Float32, pl.Float64):
        return "number"
    if dtype == pl.Boolean:
        return "bool"
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return "str"
    return "any"


def _type_ok(kind: str, value: Any) -> bool:
    if value is None:
        return True
    if kind == "int":
        return type(value) is int
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    return isinstance(value, (int, float, str, bool))


_KIND_NAMES = {
    "int": "an integer",
    "number": "a number",
    "bool": "true or false",
    "str": "a string",
    "any": "a JSON scalar",
}


@dataclass(frozen=True)
class ModelSpec:
    """What serving one model version needs, worked out once when it is loaded."""

    name: str
    version: int
    loaded: Any  # fskit.models.LoadedModel
    meta: Any  # fskit.models.ModelVersion
    refs: tuple[str, ...]
    full_feature_names: bool
    renames: dict[str, str]  # online output column → model input column, where they differ
    feature_columns: tuple[str, ...]
    online_columns: frozenset[str]
    request_fields: tuple[str, ...]
    join_keys: tuple[str, ...]
    kinds: dict[str, str]  # join keys, request fields and online features → value kind
    views: tuple[tuple[str, str], ...]  # (view name, status column prefix)
    view_features: dict[str, tuple[str, ...]]  # view name → its feature columns
    log_schema: dict[str, pl.DataType] = field(repr=False)

    @property
    def batchable(self) -> bool:
        """Whether precomputed batch scores can stand for live ones (no request-time inputs)."""
        return not self.request_fields

    def input_kind(self, column: str) -> str:
        return self.kinds.get(column, "number")


def _dtype_kind(text: str | None) -> str:
    if not text:
        return "number"
    if text.startswith(("Int", "UInt", "Float", "Decimal")):
        return "number"
    if text == "Boolean":
        return "bool"
    if text in ("String", "Utf8", "Categorical") or text.startswith("Enum"):
        return "str"
    return "any"


def build_spec(store: FeatureStore, name: str, loaded: Any) -> ModelSpec:
    """Work out, once per loaded version, how to fetch and check its inputs."""
    from fskit.offline import resolve_features

    meta = loaded.version
    booster = getattr(loaded, "booster", None)
    if booster is not None:
        # One thread per worker: a request of a few rows gains nothing from OpenMP threads,
        # and threads of several workers spinning on two cores cost milliseconds each call.
        booster.set_param({"nthread": 1})
    refs = tuple(meta.feature_refs)
    feature_columns = tuple(meta.feature_columns)
    categories = dict(getattr(meta, "categories", None) or {})
    dtypes = dict(getattr(meta, "feature_dtypes", None) or {})
    full = bool(getattr(meta, "full_feature_names", False))
    kinds: dict[str, str] = {}
    log_schema: dict[str, pl.DataType] = {}
    join_keys: list[str] = []
    request_fields: list[str] = list(getattr(meta, "extra_columns", ()) or ())
    views: list[tuple[str, str]] = []
    view_features: dict[str, tuple[str, ...]] = {}
    renames: dict[str, str] = {}
    online: set[str] = set()
    if refs:
        resolved = resolve_features(store.registry, list(refs), full_feature_names=full)
        for r, column in zip(resolved, feature_columns, strict=False):
            renames[r.column] = column
        for part in plan_request(store, list(refs), full):
            view = part.view
            # an on-demand view has no keys of its own: it needs those of its source views
            keyed = [view] + [
                store.get_feature_view(ref.view, ref.version)
                for ref in getattr(view, "sources", ())
            ]
            for keyed_view in keyed:
                source = getattr(keyed_view, "source", None)
                if source is None:
                    continue
                source_schema = None
                for key in keyed_view.join_keys:
                    if key not in join_keys:
                        if source_schema is None:
                            source_schema = source.scan(store.repo_path).collect_schema()
                        join_keys.append(key)
                        dtype = source_schema.get(key, pl.String())
                        kinds[key] = _kind(dtype)
                        log_schema[key] = dtype
            for field_ in getattr(view, "request_schema", ()):  # on-demand views' request fields
                if field_.name not in request_fields:
                    request_fields.append(field_.name)
                    dtypes.setdefault(field_.name, str(field_.dtype))
            columns = []
            for column in part.columns:
                model_column = renames.get(column, column)
                dtype = part.schema.get(column, pl.Float64())
                kinds[model_column] = "str" if model_column in categories else _kind(dtype)
                log_schema[model_column] = dtype
                online.add(model_column)
                columns.append(model_column)
            views.append((view.name, part.prefix))
            view_features[view.name] = tuple(columns)
    for column in request_fields:
        kinds[column] = "str" if column in categories else _dtype_kind(dtypes.get(column))
        log_schema[column] = pl.String() if kinds[column] == "str" else pl.Float64()
    for column in feature_columns:  # inputs neither fetched nor requested (should not happen)
        if column not in kinds:
            kinds[column] = "str" if column in categories else "number"
            log_schema[column] = pl.String() if kinds[column] == "str" else pl.Float64()
    logged = [
        *join_keys,
        *feature_columns,
        *(f for f in request_fields if f not in feature_columns),
    ]
    return ModelSpec(
        name=name,
        version=int(meta.version),
        loaded=loaded,
        meta=meta,
        refs=refs,
        full_feature_names=full,
        renames={k: v for k, v in renames.items() if k != v},
        feature_columns=feature_columns,
        online_columns=frozenset(online),
        request_fields=tuple(request_fields),
        join_keys=tuple(join_keys),
        kinds=kinds,
        views=tuple(views),
        view_features=view_features,
        log_schema={c: log_schema[c] for c in logged},
    )


def parse_entities(
    entities: Any, required: Sequence[str], kinds: Mapping[str, str]
) -> tuple[dict[str, list[Any]], int]:
    """Validate request rows; return ``{column: values}`` for ``required`` and the row count.

    ``entities`` is a list of objects (``[{"user_id": 1, "amount": 9.5}]``), an object of
    equal-length lists (``{"user_id": [1, 2]}``) or one object of scalars (one row).

    >>> parse_entities([{"user_id": 1}, {"user_id": 2}], ["user_id"], {"user_id": "int"})
    ({'user_id': [1, 2]}, 2)
    >>> parse_entities([{"user_id": "1"}], ["user_id"], {"user_id": "int"})
    Traceback (most recent call last):
    ...
    fskit.serving._errors.RequestError: entities[0].user_id must be an integer, got '1'
    """
    if isinstance(entities, Mapping):
        lists = [isinstance(v, list) for v in entities.values()]
        if entities and all(lists):
            lengths = {len(v) for v in entities.values()}
            if len(lengths) > 1:
                raise RequestError(
                    f"entities: the columns of an object of lists must have equal lengths, got "
                    f"{ {k: len(v) for k, v in entities.items()} }"
                )
            n = lengths.pop()
            rows = [{k: v[i] for k, v in entities.items()} for i in range(n)]
        elif any(lists):
            raise RequestError(
                "entities must be a list of objects, an object of equal-length lists, or one "
                "object of scalar values; this object mixes lists and scalars"
            )
        else:
            rows = [entities]
    elif isinstance(entities, list):
        rows = entities
    else:
        raise RequestError(
            f'entities must be a list of objects like [{{"{(list(required) or ["key"])[0]}": 1}}], '
            f"got {type(entities).__name__}"
        )
    if not rows:
        raise RequestError("entities is empty: send at least one entity")
    if len(rows) > MAX_BATCH:
        raise RequestError(
            f"entities holds {len(rows)} rows; at most {MAX_BATCH} per request",
            status=413,
            code="too_large",
        )
    columns: dict[str, list[Any]] = {name: [] for name in required}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise RequestError(f"entities[{i}] must be an object, got {row!r:.80}")
        for name, values in columns.items():
            try:
                value = row[name]
            except KeyError:
                raise RequestError(
                    f"entities[{i}] lacks {name!r}; every entity needs {list(required)}",
                    code="missing_key",
                ) from None
            kind = kinds.get(name, "any")
            if not _type_ok(kind, value) or isinstance(value, (list, dict)):
                raise RequestError(
                    f"entities[{i}].{name} must be {_KIND_NAMES[kind]}, got {value!r:.80}",
                    code="wrong_type",
                )
            values.append(value)
    return columns, len(rows)


class BatchScores:
    """Precomputed scores (the batch pattern), reloaded when their Parquet file changes.

    The file holds the model's join keys, ``score``, ``version`` and ``scored_at`` (what
    :func:`fskit.serving.batch_score` writes). A row is answered from it when its key has a
    score of the version it is routed to, no older than ``max_age``; otherwise it is scored
    live. Versions with request-time inputs are always scored live.
    """

    def __init__(self, path: str | os.PathLike[str], max_age: timedelta | None) -> None:
        self.path = Path(path)
        self.max_age_us = None if max_age is None else int(max_age / timedelta(microseconds=1))
        self._stamp: tuple[int, int] | None = None
        self._scores: dict[tuple[int, bytes], tuple[float, int]] = {}
        self._keys: tuple[str, ...] = ()

    def lookup(self, spec: ModelSpec, keys: list[bytes], now_us: int) -> list[float | None]:
        self._refresh(spec)
        scores, max_age, version = self._scores, self.max_age_us, spec.version
        out: list[float | None] = []
        for key in keys:
            hit = scores.get((version, key))
            if hit is None or (max_age is not None and now_us - hit[1] > max_age):
                out.append(None)
            else:
                out.append(hit[0])
        return out

    def _refresh(self, spec: ModelSpec) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._scores = None, {}
            return
        stamp = (st.st_ino, st.st_mtime_ns)
        if stamp == self._stamp:
            return
        frame = pl.read_parquet(self.path)
        keys = [k for k in spec.join_keys if k in frame.columns]
        scored = frame["scored_at"]
        if scored.dtype.time_zone is None:  # type: ignore[union-attr]
            scored = scored.dt.replace_time_zone("UTC")
        micros = scored.dt.epoch("us").to_list()
        versions = (
            frame["version"].to_list() if "version" in frame.columns else [None] * frame.height
        )
        key_values = zip(*(frame[k].to_list() for k in keys), strict=True)
        self._scores = {
            (int(v if v is not None else spec.version), encode_key(kv)): (float(s), int(t))
            for kv, s, v, t in zip(
                key_values, frame["score"].to_list(), versions, micros, strict=True
            )
            if s is not None and t is not None
        }
        self._stamp = stamp


@dataclass
class Prediction:
    """What :meth:`Predictor.predict` answers: the JSON body, timings and deferred work."""

    body: dict[str, Any]
    timings: dict[str, float]  # seconds: features, transforms, model, total
    deferred: Callable[[], None] | None = None


class Predictor:
    """Scores entity rows for one model, routed by the deployment in the repo.

    Parameters
    ----------
    store
        The feature store (its registry, online store and model registry).
    model
        The model name (``fskit.models.ModelRegistry`` entries).
    on_unavailable
        ``"degrade"``: answer with ``defaults`` and ``"degraded": true`` when the online
        store is down; ``"error"``: raise ``StoreUnavailableError`` (HTTP 503).
    defaults
        Feature values used for rows whose view could not be read (degraded answers).
    log
        A :class:`PredictionLog` for every scored row, or ``None``.
    metrics
        A :class:`Metrics` to count into, or ``None``.
    batch_scores, batch_max_age
        A Parquet file of precomputed scores and how old one may be (batch pattern).
    """

    def __init__(
        self,
        store: FeatureStore,
        model: str,
        *,
        on_unavailable: str = "degrade",
        defaults: Mapping[str, Any] | None = None,
        log: PredictionLog | None = None,
        metrics: Metrics | None = None,
        batch_scores: str | os.PathLike[str] | None = None,
        batch_max_age: timedelta | None = None,
    ) -> None:
        if on_unavailable not in ("degrade", "error"):
            raise ValueError(f"on_unavailable must be 'degrade' or 'error', got {on_unavailable!r}")
        self.store = store
        self.model = model
        self.on_unavailable = on_unavailable
        self.defaults = dict(defaults or {})
        self.log = log
        self.metrics = metrics
        self.batch = None if batch_scores is None else BatchScores(batch_scores, batch_max_age)
        self.registry = model_registry(store)
        self.watcher = StateWatcher(store.repo_path, model)
        self.specs: dict[int, ModelSpec] = {}
        self.pinned: set[int] = set()
        self._required: dict[
            tuple[int, ...], tuple[list[str], dict[str, str], list[Any]]
        ] = {}  # versions kept loaded whatever the deployment says
        self.load_errors: dict[int, str] = {}
        self.state = Deployment(model=model)
        # request ids: a random per-process prefix and a counter (uuid4 costs a syscall)
        self._id_prefix = uuid.uuid4().hex[:16]
        self._ids = itertools.count()

    def _new_request_id(self) -> str:
        """32 hex digits, unique per process and across processes (the random prefix)."""
        return f"{self._id_prefix}{next(self._ids):016x}"

    # -- deployment --------------------------------------------------------------------------
    def refresh(self) -> Deployment:
        """Re-read the deployment if it changed and keep its versions loaded."""
        state, changed = self.watcher.current()
        if changed or (state.stable is not None and state.stable not in self.specs):
            self._sync(state)
        return state

    def _sync(self, state: Deployment) -> None:
        for version in state.active_versions:
            if version in self.specs:
                continue
            try:
                self.specs[version] = self.load(version)
                self.load_errors.pop(version, None)
            except Exception as exc:  # a bad version must not take the server down
                self.load_errors[version] = f"{type(exc).__name__}: {exc}"
                if self.metrics:
                    self.metrics.inc(
                        "fskit_errors_total", model=self.model, version=version, kind="model_load"
                    )
        for version in list(self.specs):
            if version not in state.active_versions and version not in self.pinned:
                del self.specs[version]
        self.state = state
        if self.metrics:
            self.metrics.set_info(
                "fskit_deployment_info",
                model=self.model,
                stable=state.stable or "",
                canary=state.canary or "",
                canary_share=state.canary_share,
                shadow=str(state.shadow).lower(),
                previous_stable=state.previous_stable or "",
            )

    def pin(self, version: int | None = None) -> ModelSpec:
        """Load ``version`` (default: the stable one, else the latest registered) and keep it."""
        if version is None:
            version = self.refresh().stable
        if version is None:
            version = int(self.registry.get(self.model).version)
        self.refresh()
        if version not in self.specs:
            self.specs[version] = self.load(version)
        self.pinned.add(version)
        return self.specs[version]

    def warm(self) -> None:
        """Open the online store and run each loaded model once, so the first request is fast."""
        dummies = {"int": -1, "number": 0.0, "bool": False, "str": ""}
        for spec in list(self.specs.values()):
            row = {
                c: dummies.get(spec.kinds.get(c, "any"))
                for c in (*spec.join_keys, *spec.request_fields)
            }
            # a store down at start is not an error here: requests report it
            with contextlib.suppress(Exception):
                self._score_group(
                    spec, {k: [v] for k, v in row.items()}, [0], ["warm"], [None],
                    {"features": 0.0, "transforms": 0.0, "model": 0.0}, ["warm"], False, log=False,
                )  # fmt: skip

    def load(self, version: int) -> ModelSpec:
        return build_spec(self.store, self.model, self.registry.load(self.model, version))

    @property
    def ready(self) -> bool:
        state = self.refresh()
        return state.stable is not None and state.stable in self.specs

    def spec(self, version: int | None = None) -> ModelSpec:
        """The loaded spec of ``version`` (default: stable); 404/503 errors when not served."""
        return self._spec(self.refresh(), version)

    def _spec(self, state: Deployment, version: int | None) -> ModelSpec:
        if version is None:
            if state.stable is None:
                raise ServingError(f"model {self.model!r} is not deployed; run fk.serving.deploy")
            version = state.stable
        spec = self.specs.get(version)
        if spec is not None:
            return spec
        if version in self.load_errors:
            raise ServingError(
                f"model {self.model!r} v{version} cannot be loaded: {self.load_errors[version]}"
            )
        raise UnknownModelError(
            f"model {self.model!r} v{version} is not deployed on this server; deployed "
            f"versions: {list(state.active_versions)}"
        )

    # -- scoring -----------------------------------------------------------------------------
    def required_inputs(self, versions: Sequence[int]) -> tuple[list[str], dict[str, str]]:
        """The fields every row must carry to be served by any of ``versions`` (cached)."""
        key = tuple(versions)
        cached = self._required.get(key)
        if cached is not None and all(self.specs.get(v) is cached[2][i] for i, v in enumerate(key)):
            return cached[0], cached[1]
        required: list[str] = []
        kinds: dict[str, str] = {}
        for version in versions:
            spec = self.specs[version]
            for name in (*spec.join_keys, *spec.request_fields):
                if name not in kinds:
                    required.append(name)
                    kinds[name] = spec.kinds[name]
        if len(self._required) > 16:
            self._required.clear()
        self._required[key] = (required, kinds, [self.specs[v] for v in key])
        return required, kinds

    def predict(
        self,
        entities: Any,
        *,
        version: int | None = None,
        request_id: str | None = None,
        return_features: bool = False,
        route: str | None = None,
    ) -> Prediction:
        """Score ``entities`` (see :func:`parse_entities`); the body of a ``/predict`` answer."""
        (result,) = self.predict_many(
            [(entities, request_id)], version=version, return_features=return_features, route=route
        )
        if isinstance(result, Exception):
            raise result
        return result

    def predict_many(
        self,
        requests: Sequence[tuple[Any, str | None]],
        *,
        version: int | None = None,
        return_features: bool = False,
        route: str | None = None,
    ) -> list[Prediction | RequestError]:
        """Score several requests ``(entities, request_id)`` together: one online read and one
        model call per version for all their rows (the server's dynamic batching).

        Each request is checked on its own: one with bad entities gets its
        :class:`RequestError` in its place and the others are scored. Errors that concern
        them all (model not deployed, store unavailable) are raised. Every answer carries the
        timing breakdown of the whole batch.
        """
        started = time.perf_counter()
        state = self.refresh()
        stable = self._spec(state, version)  # raises when not deployed / unknown version
        canary = None
        if version is None and state.canary is not None and state.canary_share > 0:
            canary = self.specs.get(state.canary)  # a canary that failed to load gets no traffic
        active = [stable.version] + ([canary.version] if canary else [])
        required, kinds = self.required_inputs(active)

        out: list[Prediction | RequestError] = []
        spans: list[tuple[int, int, str]] = []  # (first row, row count, request id) per request
        parsed: list[dict[str, list[Any]]] = []
        n = 0
        for entities, request_id in requests:
            try:
                cols, rows = parse_entities(entities, required, kinds)
            except RequestError as exc:
                out.append(exc)
                continue
            out.append(None)  # type: ignore[arg-type]  # filled in below
            parsed.append(cols)
            spans.append((n, rows, request_id or self._new_request_id()))
            n += rows
        if not spans:
            return out
        columns = (
            parsed[0]
            if len(parsed) == 1
            else {k: [v for cols in parsed for v in cols[k]] for k in required}
        )
        row_ids = [rid for first, rows, rid in spans for _ in range(rows)]

        routes = [route or ("pinned" if version is not None else "stable")] * n
        versions = [stable] * n
        shadow_rows: list[int] = []
        if canary is not None:
            share = state.canary_share
            model = self.model
            route_keys = state.route_by or stable.join_keys  # route_by: checked at deploy
            keys = [
                encode_key(parts) for parts in zip(*(columns[k] for k in route_keys), strict=True)
            ]
            picked = [i for i, key in enumerate(keys) if bucket(model, key) < share]
            if state.shadow:
                shadow_rows = picked
            else:
                for i in picked:
                    versions[i], routes[i] = canary, "canary"

        timings = {"features": 0.0, "transforms": 0.0, "model": 0.0}
        results: list[dict[str, Any] | None] = [None] * n
        groups: dict[int, list[int]] = {}
        for i, spec in enumerate(versions):
            groups.setdefault(spec.version, []).append(i)
        try:
            for v, rows in groups.items():
                spec = self.specs[v]
                self._score_group(
                    spec, columns, rows, routes, results, timings, row_ids, return_features
                )
        except StoreUnavailableError:
            if self.metrics:
                for v in groups:
                    self.metrics.inc(
                        "fskit_errors_total", model=self.model, version=v, kind="store_unavailable"
                    )
            raise

        total = time.perf_counter() - started
        timings["total"] = total
        timing_ms = {k: round(v * 1000, 3) for k, v in timings.items()}
        if self.metrics:
            for first, rows, _ in spans:  # per request: each version its rows went to
                by_version: dict[int, int] = {}
                for i in range(first, first + rows):
                    v = versions[i].version
                    by_version[v] = by_version.get(v, 0) + 1
                for v, count in by_version.items():
                    self.metrics.record_scoring(self.model, v, routes[groups[v][0]], count, total)
        deferred = None
        if shadow_rows and canary is not None:
            shadow_spec = canary

            def deferred() -> None:
                sink: list[dict[str, Any] | None] = [None] * n
                try:
                    self._score_group(
                        shadow_spec,
                        columns,
                        shadow_rows,
                        ["shadow"] * n,
                        sink,
                        {"features": 0.0, "transforms": 0.0, "model": 0.0},
                        row_ids,
                        False,
                    )
                except Exception:  # the shadow never affects the answer
                    if self.metrics:
                        self.metrics.inc(
                            "fskit_errors_total",
                            model=self.model,
                            version=shadow_spec.version,
                            kind="shadow",
                        )

        spans_left = iter(spans)
        for index, slot in enumerate(out):
            if slot is not None:
                continue
            first, rows, request_id = next(spans_left)
            answers = results[first : first + rows]
            body = {
                "model": self.model,
                "request_id": request_id,
                "predictions": answers,
                "degraded": any(r["degraded"] for r in answers if r),
                "timing_ms": dict(timing_ms),
            }
            out[index] = Prediction(body=body, timings=dict(timings), deferred=deferred)
            deferred = None  # the shadow work runs once, after the first answer
        return out

    def _score_group(
        self,
        spec: ModelSpec,
        columns: dict[str, list[Any]],
        rows: list[int],
        routes: list[str],
        results: list[dict[str, Any] | None],
        timings: dict[str, float],
        row_ids: list[str],
        return_features: bool,
        *,
        log: bool = True,
    ) -> None:
        everyone = len(rows) == len(routes)
        sub = columns if everyone else {k: [v[i] for i in rows] for k, v in columns.items()}
        n = len(rows)
        route = routes[rows[0]]

        # the batch pattern: a fresh precomputed score stands for a live one
        sources = ["live"] * n
        live = list(range(n))
        batch_hits: list[float | None] = [None] * n
        if self.batch is not None and spec.batchable and route != "shadow":
            keys = [encode_key(p) for p in zip(*(sub[k] for k in spec.join_keys), strict=True)]
            now_us = time.time_ns() // 1000
            batch_hits = self.batch.lookup(spec, keys, now_us)
            live = [i for i, s in enumerate(batch_hits) if s is None]
            for i, s in enumerate(batch_hits):
                if s is not None:
                    sources[i] = "batch"
        live_sub = sub if len(live) == n else {k: [v[i] for i in live] for k, v in sub.items()}

        t0 = time.perf_counter()
        feats: dict[str, list[Any]] = {}
        transforms = 0.0
        if spec.refs and live:
            # get_online_features' own core: the requests were checked by parse_entities
            plan = plan_request(self.store, spec.refs, spec.full_feature_names)
            spent: dict[str, float] = {}
            feats = read_online(
                self.store,
                plan,
                live_sub,  # join keys and request fields (on-demand views read those)
                datetime.now(UTC),
                "null" if self.on_unavailable == "degrade" else "raise",
                timings=spent,
            )
            transforms = spent.get("transforms", 0.0)
            for src, dst in spec.renames.items():
                feats[dst] = feats.pop(src)
        t1 = time.perf_counter()
        m = len(live)
        degraded = [False] * m
        for view, prefix in spec.views if feats else ():
            statuses = feats.get(f"{prefix}__status")
            if statuses is None or UNAVAILABLE not in statuses:
                continue
            down = [i for i, s in enumerate(statuses) if s == UNAVAILABLE]
            for i in down:
                degraded[i] = True
            for column in spec.view_features[view]:
                if column in self.defaults:
                    values = feats[column] = list(feats[column])
                    for i in down:
                        values[i] = self.defaults[column]
        inputs: dict[str, Any] = {}
        for column in spec.feature_columns:  # the model encodes lists itself (None → NaN)
            inputs[column] = feats[column] if column in spec.online_columns else live_sub[column]
        t2 = time.perf_counter()
        scores = spec.loaded.predict(inputs).tolist() if m else []
        t3 = time.perf_counter()
        timings["features"] += t1 - t0 - transforms  # on-demand transforms run inside the read
        timings["transforms"] += t2 - t1 + transforms
        timings["model"] += t3 - t2

        # answers, in request order
        live_pos = {j: k for k, j in enumerate(live)}
        all_scores = list(batch_hits)
        for j, k in live_pos.items():
            all_scores[j] = scores[k]
        for j in range(n):
            k = live_pos.get(j)
            answer: dict[str, Any] = {
                "score": all_scores[j],
                "version": spec.version,
                "route": route,
                "source": sources[j],
                "degraded": False if k is None else degraded[k],
            }
            if k is not None:
                missing, expired, freshness = [], [], {}
                for view, prefix in spec.views:
                    status = feats.get(f"{prefix}__status")
                    if status is None:
                        continue
                    status = status[k]
                    stamp = feats[f"{prefix}__event_timestamp"][k]
                    age = feats[f"{prefix}__staleness"][k]
                    if status == NOT_FOUND:
                        missing.append(view)
                    elif status == OUTSIDE_MAX_AGE:
                        expired.append(view)
                    freshness[view] = {
                        "status": status,
                        "event_timestamp": None if stamp is None else stamp.isoformat(),
                        "staleness_seconds": None if age is None else age.total_seconds(),
                    }
                answer["missing"], answer["expired"], answer["freshness"] = (
                    missing,
                    expired,
                    freshness,
                )
                if return_features:
                    answer["features"] = {c: _jsonable(inputs[c][k]) for c in spec.feature_columns}
            results[rows[j]] = answer

        if not log:
            return
        if self.metrics:
            if route == "shadow":  # answered rows are counted by record_scoring in predict
                self.metrics.inc(
                    "fskit_predictions_total",
                    n,
                    model=self.model,
                    version=spec.version,
                    route=route,
                )
            if any(degraded):
                self.metrics.inc(
                    "fskit_degraded_predictions_total",
                    sum(degraded),
                    model=self.model,
                    version=spec.version,
                )
        if self.log is not None:
            now = datetime.now(UTC)
            log_cols: dict[str, list[Any]] = {
                "request_id": [row_ids[i] for i in rows],
                "logged_at": [now] * n,
                "model": [self.model] * n,
                "version": [spec.version] * n,
                "route": [route] * n,
                "source": sources,
                "degraded": [
                    False if live_pos.get(j) is None else degraded[live_pos[j]] for j in range(n)
                ],
                "score": all_scores,
            }
            for column in spec.log_schema:
                if column in inputs:
                    values = inputs[column]
                    if len(live) == n:
                        log_cols[column] = (
                            values.tolist() if isinstance(values, np.ndarray) else list(values)
                        )
                    else:
                        full: list[Any] = [None] * n
                        for j, k in live_pos.items():
                            full[j] = _jsonable(values[k])
                        log_cols[column] = full
                else:
                    log_cols[column] = sub[column]
            schema = {**_LOG_META, **spec.log_schema, "score": pl.Float64()}
            self.log.append((spec.version,), schema, log_cols, n)

    def infer(
        self, inputs: Mapping[str, Sequence[Any]], *, version: int | None = None
    ) -> tuple[np.ndarray, ModelSpec, dict[str, float]]:
        """Score raw model inputs (no online lookup): the OIP ``infer`` endpoint."""
        started = time.perf_counter()
        spec = self.spec(version)
        missing = [c for c in spec.feature_columns if c not in inputs]
        if missing:
            raise RequestError(
                f"inputs lack {missing}; model {self.model!r} v{spec.version} takes "
                f"{list(spec.feature_columns)}",
                code="missing_key",
            )
        lengths = {len(inputs[c]) for c in spec.feature_columns}
        if len(lengths) != 1:
            raise RequestError(f"all inputs must have the same length, got {sorted(lengths)}")
        try:
            model_inputs = {
                c: _as_input(spec.input_kind(c), inputs[c]) for c in spec.feature_columns
            }
        except (TypeError, ValueError) as exc:
            raise RequestError(
                f"inputs do not fit model {self.model!r}: {exc}", code="wrong_type"
            ) from None
        t1 = time.perf_counter()
        scores = spec.loaded.predict(model_inputs)
        t2 = time.perf_counter()
        n = len(scores)
        if self.metrics:
            self.metrics.inc(
                "fskit_predictions_total", n, model=self.model, version=spec.version, route="infer"
            )
            self.metrics.inc(
                "fskit_requests_total",
                model=self.model,
                version=spec.version,
                route="infer",
                code=200,
            )
            self.metrics.observe(
                "fskit_request_duration_seconds",
                t2 - started,
                model=self.model,
                version=spec.version,
                route="infer",
            )
        if self.log is not None and n:
            now = datetime.now(UTC)
            cols: dict[str, list[Any]] = {
                "request_id": [self._new_request_id()] * n,
                "logged_at": [now] * n,
                "model": [self.model] * n,
                "version": [spec.version] * n,
                "route": ["infer"] * n,
                "source": ["live"] * n,
                "degraded": [False] * n,
                "score": scores.tolist(),
                **{
                    c: [_jsonable(v) for v in inputs[c]] if c in inputs else [None] * n
                    for c in spec.log_schema
                },
            }
            self.log.append(
                (spec.version,), {**_LOG_META, **spec.log_schema, "score": pl.Float64()}, cols, n
            )
        return (
            scores,
            spec,
            {"features": 0.0, "transforms": t1 - started, "model": t2 - t1, "total": t2 - started},
        )


_LOG_META = {
    "request_id": pl.String(),
    "logged_at": pl.Datetime("us", "UTC"),
    "model": pl.String(),
    "version": pl.Int64(),
    "route": pl.String(),
    "source": pl.String(),
    "degraded": pl.Boolean(),
}


def _as_input(kind: str, values: Sequence[Any]) -> Any:
    """A model input column: strings stay a list, anything else becomes float64 (None → NaN)."""
    if kind == "str":
        return values if isinstance(values, list) else list(values)
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        return values.astype(np.float64, copy=False)
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
