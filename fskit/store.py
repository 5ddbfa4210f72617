"""``FeatureStore``: the facade over one feature repo directory.

It delegates: definitions live in :mod:`fskit.definitions`, persistence and planning in
:mod:`fskit.registry`, point-in-time joins in :mod:`fskit.offline`, feature statistics in
:mod:`fskit.statistics`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from fskit._utils.dtypes import dtype_to_str
from fskit._utils.html import table
from fskit.definitions import Entity, FeatureRef, FeatureService, FeatureView, format_timedelta
from fskit.errors import DefinitionError
from fskit.offline import FeatureLike, JoinProgress, get_historical_features, resolve_features
from fskit.registry import Plan, Registry
from fskit.statistics import DEFAULT_BINS, DEFAULT_TOP, FeatureStatistics, feature_statistics

if TYPE_CHECKING:
    from fskit.materialization import MaterializationRun, MaterializationSchedule, Progress
    from fskit.models import ModelRegistry

__all__ = ["FeatureStore"]

CONFIG_FILE = "feature_store.json"
DEFAULT_ONLINE_STORE = {"type": "diskcache", "path": "online"}


def _online_config(repo_path: Path, given: dict[str, Any] | None) -> dict[str, Any]:
    """The repo's online store config; one given explicitly is saved for other processes."""
    path = repo_path / CONFIG_FILE
    saved = json.loads(path.read_text()) if path.exists() else {}
    if given is None:
        return saved.get("online_store", DEFAULT_ONLINE_STORE)
    if not isinstance(given, dict) or "type" not in given:
        raise DefinitionError(
            "FeatureStore: online_store must be a dict such as {'type': 'diskcache'} or "
            f"{{'type': 'redis', 'url': 'redis://127.0.0.1:6379/0'}}, got {given!r}"
        )
    if saved.get("online_store") != given:
        tmp = path.with_name(f".{CONFIG_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**saved, "online_store": given}, indent=2) + "\n")
        os.replace(tmp, path)
    return dict(given)


class FeatureStore:
    """A feature repo: definitions, offline data and (later) the online store, in one folder.

    Parameters
    ----------
    repo_path
        The feature repo directory; created if missing. Any process that opens the same
        directory sees the same applied definitions.

    Examples
    --------
    >>> import tempfile
    >>> from datetime import datetime, timedelta
    >>> import polars as pl
    >>> import fskit as fk
    >>> stats = pl.DataFrame({
    ...     "user_id": [1, 1, 2],
    ...     "event_timestamp": [datetime(2026, 1, 1), datetime(2026, 1, 3), datetime(2026, 1, 2)],
    ...     "purchases": [3, 5, 7],
    ... })
    >>> store = fk.FeatureStore(tempfile.mkdtemp())
    >>> user = fk.Entity("user", join_keys=["user_id"])
    >>> view = fk.FeatureView(name="user_stats", entities=[user], source=stats,
    ...                       ttl=timedelta(days=1))
    >>> print(store.apply([user, view]))
    Plan: 2 to add, 0 to update, 0 to remove, 0 refused, 0 unchanged
      + entity user: join_keys ['user_id']
      + feature_view user_stats@v1: 1 features
    >>> labels = pl.DataFrame({
    ...     "user_id": [1, 1, 2],
    ...     "event_timestamp": [datetime(2026, 1, 2), datetime(2026, 1, 3), datetime(2026, 1, 5)],
    ...     "label": [0, 1, 0],
    ... })
    >>> store.get_historical_features(labels, ["user_stats:purchases"])
    shape: (3, 4)
    ┌─────────┬─────────────────────┬───────┬───────────┐
    │ user_id ┆ event_timestamp     ┆ label ┆ purchases │
    │ ---     ┆ ---                 ┆ ---   ┆ ---       │
    │ i64     ┆ datetime[μs]        ┆ i64   ┆ i64       │
    ╞═════════╪═════════════════════╪═══════╪═══════════╡
    │ 1       ┆ 2026-01-02 00:00:00 ┆ 0     ┆ 3         │
    │ 1       ┆ 2026-01-03 00:00:00 ┆ 1     ┆ 5         │
    │ 2       ┆ 2026-01-05 00:00:00 ┆ 0     ┆ null      │
    └─────────┴─────────────────────┴───────┴───────────┘
    """

    def __init__(
        self,
        repo_path: str | os.PathLike[str] = "feature_repo",
        *,
        online_store: dict[str, Any] | None = None,
    ) -> None:
        self.repo_path = Path(repo_path).absolute()
        self.repo_path.mkdir(parents=True, exist_ok=True)
        self.registry = Registry(self.repo_path)
        self._online_config = _online_config(self.repo_path, online_store)
        self._online_backend: Any = None
        self._online_plans: dict[Any, Any] = {}

    @property
    def models(self) -> ModelRegistry:
        """The repo's model registry (``<repo>/models``)."""
        from fskit.models import ModelRegistry

        return ModelRegistry(self)

    # -- online store ----------------------------------------------------------------------
    @property
    def online_store_config(self) -> dict[str, Any]:
        """The online store this repo uses (``<repo>/feature_store.json``)."""
        return dict(self._online_config)

    @property
    def online_backend(self) -> Any:
        """The online store backend, opened on first use."""
        if self._online_backend is None:
            from fskit.online import backend_from_config

            self._online_backend = backend_from_config(self._online_config, self.repo_path)
        return self._online_backend

    def with_online_backend(self, backend: Any) -> FeatureStore:
        """A handle on the same repo that reads and writes ``backend`` instead (not saved).

        For simulations and tests: the repo's configured online store is left untouched.
        """
        other = FeatureStore.__new__(FeatureStore)
        other.repo_path, other.registry = self.repo_path, self.registry
        other._online_config = {"type": type(backend).__name__}
        other._online_backend, other._online_plans = backend, {}
        return other

    def close(self) -> None:
        """Close the online store connection (reopened on next use)."""
        if self._online_backend is not None:
            self._online_backend.close()
            self._online_backend = None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def materialize(
        self,
        start: datetime | None,
        end: datetime,
        *,
        views: Sequence[str] | None = None,
        progress: Progress | None = None,
        known_at: datetime | None = None,
    ) -> list[MaterializationRun]:
        """Write the newest row per entity with ``start <= event_timestamp <= end`` online.

        ``views`` limits the run (``"user_stats"`` or ``"user_stats@v1"``; default: every
        online view). ``progress(view_ref, rows_done, rows_total)`` is called per chunk.
        ``known_at`` hides rows created after it (the simulator replays history with it).
        Each view's watermark advances to ``end`` once that view is fully written.
        """
        from fskit.materialization import materialize

        return materialize(self, start, end, views=views, progress=progress, known_at=known_at)

    def materialize_incremental(
        self,
        end: datetime,
        *,
        views: Sequence[str] | None = None,
        progress: Progress | None = None,
        known_at: datetime | None = None,
    ) -> list[MaterializationRun]:
        """Like :meth:`materialize`, each view from its watermark (or the beginning) to ``end``."""
        from fskit.materialization import materialize

        return materialize(
            self,
            None,
            end,
            views=views,
            incremental=True,
            progress=progress,
            known_at=known_at,
        )

    def schedule_materialization(
        self, every: timedelta, *, views: Sequence[str] | None = None
    ) -> MaterializationSchedule:
        """Start a background job running :meth:`materialize_incremental` every ``every``."""
        from fskit.materialization import MaterializationSchedule

        return MaterializationSchedule(self, every, views=views).start()

    def watermarks(self) -> dict[str, datetime]:
        """Each view's watermark: the end of its last successful materialization."""
        from fskit.materialization import read_watermarks

        return read_watermarks(self.repo_path)

    def materialization_log(self) -> pl.DataFrame:
        """Every materialization run recorded in this repo: window, rows, seconds, status."""
        from fskit.materialization import read_log

        return read_log(self.repo_path)

    def get_online_features(
        self,
        features: Sequence[FeatureLike] | FeatureService,
        entity_rows: Any,
        *,
        full_feature_names: bool = False,
        now: datetime | None = None,
        return_type: str = "polars",
        on_unavailable: str = "raise",
    ) -> pl.DataFrame | dict[str, list[Any]]:
        """The latest online values for ``entity_rows``, with freshness per view.

        ``entity_rows``: ``[{"user_id": 1}, ...]``, a dict of lists or a DataFrame. Returns a
        polars DataFrame (or, with ``return_type="dict"``, a dict of lists) holding the keys,
        the features and per view ``<view>__event_timestamp``, ``<view>__staleness`` and
        ``<view>__status`` (``PRESENT``, ``NOT_FOUND``, ``OUTSIDE_MAX_AGE``, ``UNAVAILABLE``).
        The TTL applies on read as in the offline join (relative to ``now``, default: the
        current time). ``on_unavailable="null"`` answers nulls instead of raising
        :class:`~fskit.errors.StoreUnavailableError` when the store is down.
        """
        from fskit.retrieval import get_online_features

        return get_online_features(
            self,
            features,
            entity_rows,
            full_feature_names=full_feature_names,
            now=now,
            return_type=return_type,  # type: ignore[arg-type]
            on_unavailable=on_unavailable,  # type: ignore[arg-type]
        )

    def push(
        self, view: str, rows: Any, *, to: str = "online_and_offline", now: datetime | None = None
    ) -> int:
        """Ingest fresh rows into ``view``'s online store and append them offline.

        Returns the number of rows pushed. See :mod:`fskit.push`.
        """
        from fskit.push import push

        return push(self, view, rows, to=to, now=now)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        views = self.registry.feature_views
        return (
            f"FeatureStore({str(self.repo_path)!r}, entities={len(self.registry.entities)}, "
            f"feature_views={sorted(views)})"
        )

    def _repr_html_(self) -> str:
        rows = [
            [
                v.ref,
                ", ".join(v.join_keys),
                len(v.feature_names),
                format_timedelta(v.ttl),
                format_timedelta(v.freshness_sla),
                v.owner,
                v.description,
            ]
            for v in self.list_feature_views()
        ]
        return f"<b>FeatureStore</b> <code>{self.repo_path}</code>" + table(
            ["feature view", "keys", "features", "ttl", "freshness SLA", "owner", "description"],
            rows,
        )

    # -- registry --------------------------------------------------------------------------
    def plan(
        self,
        objects: Iterable[Entity | FeatureView | FeatureService],
        objects_to_delete: Iterable[Entity | FeatureView | FeatureService] = (),
    ) -> Plan:
        """What :meth:`apply` would do: added / updated / removed / refused. Writes nothing."""
        return self.registry.plan(objects, objects_to_delete)

    def apply(
        self,
        objects: Iterable[Entity | FeatureView | FeatureService],
        objects_to_delete: Iterable[Entity | FeatureView | FeatureService] = (),
    ) -> Plan:
        """Validate and persist definitions; all or nothing.

        Raises :class:`~fskit.errors.VersionConflictError` when the logic of an applied view
        version changed (bump ``version``), and :class:`~fskit.errors.SchemaError` when a
        definition does not match its source. A :class:`~fskit.FeatureService` is stored
        with each ref pinned to the view version it means now; a view version a service
        uses cannot be deleted (:class:`~fskit.errors.RegistryError`).
        """
        return self.registry.apply(objects, objects_to_delete)

    def list_entities(self) -> list[Entity]:
        return [e for _, e in sorted(self.registry.entities.items())]

    def list_feature_views(self) -> list[FeatureView]:
        """Applied views, by name then version (v2 before v10)."""
        return sorted(self.registry.feature_views.values(), key=lambda v: (v.name, v.version))

    def list_feature_services(self) -> list[FeatureService]:
        """Applied feature services by name, their refs pinned to view versions."""
        return [s for _, s in sorted(self.registry.feature_services.items())]

    def get_feature_service(self, name: str) -> FeatureService:
        """The applied feature service ``name``, its refs pinned (``"user_stats@v1:x"``).

        Examples
        --------
        >>> import tempfile
        >>> from datetime import datetime
        >>> import polars as pl
        >>> import fskit as fk
        >>> rows = pl.DataFrame({"user_id": [1], "event_timestamp": [datetime(2026, 1, 1)],
        ...                      "purchases": [3], "visits": [9]})
        >>> store = fk.FeatureStore(tempfile.mkdtemp())
        >>> user = fk.Entity("user", join_keys=["user_id"])
        >>> view = fk.FeatureView(name="user_stats", entities=[user], source=rows)
        >>> service = fk.FeatureService(name="churn", features=["user_stats:purchases"])
        >>> print(store.apply([user, view, service]))
        Plan: 3 to add, 0 to update, 0 to remove, 0 refused, 0 unchanged
          + entity user: join_keys ['user_id']
          + feature_view user_stats@v1: 2 features
          + feature_service churn: 1 features
        >>> store.get_feature_service("churn")
        FeatureService('churn', features=['user_stats@v1:purchases'])
        >>> store.get_historical_features(
        ...     pl.DataFrame({"user_id": [1], "event_timestamp": [datetime(2026, 1, 2)]}), service
        ... )["purchases"].to_list()
        [3]
        """
        return self.registry.get_feature_service(name)

    def get_entity(self, name: str) -> Entity:
        return self.registry.get_entity(name)

    def get_feature_view(self, name: str, version: int | None = None) -> FeatureView:
        """The applied view ``name`` at ``version`` (the latest when ``None``)."""
        return self.registry.get_feature_view(name, version)

    def describe(self) -> pl.DataFrame:
        """One row per applied feature: view, version, feature, dtype, TTL, owner..."""
        rows = [
            {
                "feature_view": v.name,
                "version": v.version,
                "feature": f.name,
                "dtype": dtype_to_str(f.dtype),
                "join_keys": ", ".join(v.join_keys),
                "ttl": format_timedelta(v.ttl),
                "freshness_sla": format_timedelta(v.freshness_sla),
                "online": v.online,
                "owner": v.owner,
                "description": f.description or v.description,
            }
            for v in self.list_feature_views()
            for f in v.schema or ()
        ]
        return pl.DataFrame(
            rows,
            schema={
                "feature_view": pl.String,
                "version": pl.Int64,
                "feature": pl.String,
                "dtype": pl.String,
                "join_keys": pl.String,
                "ttl": pl.String,
                "freshness_sla": pl.String,
                "online": pl.Boolean,
                "owner": pl.String,
                "description": pl.String,
            },
        )

    # -- offline ---------------------------------------------------------------------------
    def get_historical_features(
        self,
        entity_df: Any,
        features: Sequence[FeatureLike] | FeatureService,
        *,
        full_feature_names: bool = False,
        event_timestamp_column: str = "event_timestamp",
        as_known_at: bool = False,
        progress: JoinProgress | None = None,
    ) -> pl.DataFrame:
        """A point-in-time correct training set: ``entity_df`` plus the requested features.

        Per entity row with timestamp ``t``, each view contributes its newest row with
        ``t - ttl <= event_timestamp <= t`` (both bounds inclusive); ties on the event
        timestamp go to the greatest created timestamp; no such row gives nulls. With
        ``as_known_at=True`` rows created after ``t`` are ignored too (late corrections do not
        leak). Rows keep ``entity_df``'s order; its other columns pass through. See
        :mod:`fskit.offline` for the full rules.

        Parameters
        ----------
        entity_df
            polars DataFrame/LazyFrame (pandas accepted) with the views' join keys and a
            Datetime column ``event_timestamp_column``.
        features
            ``"view:feature"``, ``"view@v2:feature"``, :class:`~fskit.FeatureRef` or a whole
            :class:`~fskit.FeatureView`; or an applied :class:`~fskit.FeatureService` in place
            of the list (its pinned refs).
        full_feature_names
            Name columns ``view__feature`` (``view_v2__feature`` for pinned versions).
        progress
            ``progress(views_done, views_total, view_ref)`` after each feature view is joined
            (``view_ref`` like ``"user_stats@v1"``; counts from 1 to the number of views).
            With it the join runs view by view, so the calls follow the work; the result is
            the same. See :data:`fskit.offline.JoinProgress`.
        """
        return get_historical_features(
            self.registry,
            entity_df,
            features,
            full_feature_names=full_feature_names,
            event_timestamp_column=event_timestamp_column,
            as_known_at=as_known_at,
            progress=progress,
        )

    def feature_statistics(
        self,
        feature: str | FeatureRef,
        *,
        bins: int = DEFAULT_BINS,
        top: int = DEFAULT_TOP,
    ) -> FeatureStatistics:
        """Summary statistics and the distribution of one feature over its offline rows.

        The rows are the view's source plus every row pushed to it. Numbers get count (rows,
        nulls included), null_count, mean, std, min, quartiles and max, and a histogram of
        ``bins`` equal-width bins; other dtypes get count, null_count, n_unique and their
        ``top`` most frequent values. See :mod:`fskit.statistics`.

        Parameters
        ----------
        feature
            ``"view:feature"`` (the latest version), ``"view@v2:feature"`` or a
            :class:`~fskit.FeatureRef`. On-demand features and windowed aggregations have no
            stored column: they raise :class:`~fskit.errors.FeatureRefError`, as unknown
            refs do.
        bins, top
            Histogram bins (numbers); most frequent values kept (other dtypes).

        Examples
        --------
        >>> import tempfile
        >>> from datetime import datetime
        >>> import polars as pl
        >>> import fskit as fk
        >>> rows = pl.DataFrame({
        ...     "user_id": [1, 2, 3],
        ...     "event_timestamp": [datetime(2026, 1, d) for d in (1, 2, 3)],
        ...     "purchases": [3.0, 5.0, 10.0],
        ... })
        >>> store = fk.FeatureStore(tempfile.mkdtemp())
        >>> user = fk.Entity("user", join_keys=["user_id"])
        >>> _ = store.apply([user, fk.FeatureView(name="user_stats", entities=[user],
        ...                                      source=rows)])
        >>> stats = store.feature_statistics("user_stats:purchases", bins=2)
        >>> stats.values["mean"], stats.distribution["count"].to_list()
        (6.0, [2, 1])
        """
        return feature_statistics(self.registry, feature, bins=bins, top=top)

    def resolve_features(
        self, features: Sequence[FeatureLike] | FeatureService, *, full_feature_names: bool = False
    ) -> list[str]:
        """The exact, versioned refs ``features`` mean now (``"user_stats@v2:x"``)."""
        return [
            f"{r.view.ref}:{r.feature}"
            for r in resolve_features(
                self.registry, features, full_feature_names=full_feature_names
            )
        ]
