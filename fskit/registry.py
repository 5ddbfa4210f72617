"""The registry: definitions persisted in a feature repo directory.

The registry file (``registry.json`` in the repo) is human-readable JSON, written atomically
under a file lock, and re-read whenever another process changes it, so a materializer or a
model server opening the same repo sees exactly the definitions applied in the notebook.

:meth:`Registry.plan` validates a batch of definitions against their sources (columns and
dtypes) and against what is already applied, and returns a :class:`Plan`: what would be
added, updated (metadata only), left unchanged, removed — and what is refused because its
logic changed under an applied version. :meth:`Registry.apply` writes a plan that has no
refusals; a refused or failing apply writes nothing.

Feature services are stored with every ref pinned to the view version it meant when the
service was applied (as on-demand views' sources are), so a service keeps meaning the same
columns after its views get new versions; a view version a service uses cannot be deleted.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import html
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl

from fskit._utils.dtypes import dtype_to_str
from fskit.definitions import (
    CSVSource,
    DataFrameSource,
    Entity,
    FeatureRef,
    FeatureService,
    FeatureView,
    Field,
    ParquetSource,
    Source,
    format_timedelta,
)
from fskit.errors import DefinitionError, RegistryError, SchemaError, VersionConflictError
from fskit.transformations import (
    OnDemandFeatureView,
    StreamFeatureView,
    stream_view_from_config,
)

__all__ = ["Change", "Plan", "Registry"]

REGISTRY_FILE = "registry.json"
REGISTRY_FORMAT = "fskit-registry/1"
OFFLINE_DIR = "offline"


@dataclass(frozen=True)
class Change:
    """One line of a plan."""

    kind: str  # "entity" | "feature_view" | "feature_service"
    name: str  # entity name, view ref ("user_stats@v1") or service name
    action: str  # "add" | "update" | "unchanged" | "remove" | "refuse"
    details: tuple[str, ...] = ()

    _SIGN = {"add": "+", "update": "~", "unchanged": "=", "remove": "-", "refuse": "!"}

    def __str__(self) -> str:
        text = f"{self._SIGN[self.action]} {self.kind} {self.name}"
        if self.details:
            text += ": " + "; ".join(self.details)
        return text


@dataclass(frozen=True)
class Plan:
    """What :meth:`Registry.apply` would do with a batch of definitions. Writes nothing."""

    changes: tuple[Change, ...]
    entities: tuple[Entity, ...] = field(default=(), repr=False)
    views: tuple[FeatureView, ...] = field(default=(), repr=False)
    frames: dict[str, pl.DataFrame] = field(default_factory=dict, repr=False)
    deleted_views: tuple[str, ...] = field(default=(), repr=False)
    deleted_entities: tuple[str, ...] = field(default=(), repr=False)
    services: tuple[FeatureService, ...] = field(default=(), repr=False)
    deleted_services: tuple[str, ...] = field(default=(), repr=False)

    def _of(self, action: str) -> list[Change]:
        return [c for c in self.changes if c.action == action]

    @property
    def added(self) -> list[Change]:
        return self._of("add")

    @property
    def updated(self) -> list[Change]:
        return self._of("update")

    @property
    def unchanged(self) -> list[Change]:
        return self._of("unchanged")

    @property
    def removed(self) -> list[Change]:
        return self._of("remove")

    @property
    def refused(self) -> list[Change]:
        return self._of("refuse")

    @property
    def has_changes(self) -> bool:
        return any(c.action in ("add", "update", "remove") for c in self.changes)

    def __str__(self) -> str:
        counts = ", ".join(
            f"{len(self._of(a))} {label}"
            for a, label in (
                ("add", "to add"),
                ("update", "to update"),
                ("remove", "to remove"),
                ("refuse", "refused"),
                ("unchanged", "unchanged"),
            )
        )
        return "\n".join(["Plan: " + counts, *(f"  {c}" for c in self.changes)])

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        colors = {"add": "#1a7f37", "update": "#9a6700", "remove": "#cf222e", "refuse": "#cf222e"}
        rows = "".join(
            f"<tr style='color:{colors.get(c.action, '#57606a')}'><td>{c.action}</td>"
            f"<td>{c.kind}</td><td><code>{html.escape(c.name)}</code></td>"
            f"<td>{html.escape('; '.join(c.details))}</td></tr>"
            for c in self.changes
        )
        return (
            f"<b>Plan</b> ({len(self.added)} add, {len(self.updated)} update, "
            f"{len(self.removed)} remove, {len(self.refused)} refused)"
            f"<table><tr><th>action</th><th>kind</th><th>name</th><th>details</th></tr>"
            f"{rows}</table>"
        )


class Registry:
    """The definitions applied to one feature repo directory."""

    def __init__(self, repo_path: str | os.PathLike[str]) -> None:
        self.repo_path = Path(repo_path).absolute()
        self._file = self.repo_path / REGISTRY_FILE
        self._stamp: tuple[int, int, int] | None = None
        self._entities: dict[str, Entity] = {}
        self._views: dict[str, FeatureView] = {}
        self._services: dict[str, FeatureService] = {}

    def __repr__(self) -> str:
        self.refresh()
        return (
            f"Registry({str(self.repo_path)!r}, entities={len(self._entities)}, "
            f"feature_views={len(self._views)}, feature_services={len(self._services)})"
        )

    # -- reading ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the registry file if another process (or this one) changed it."""
        try:
            st = self._file.stat()
        except FileNotFoundError:
            self._stamp, self._entities, self._views, self._services = None, {}, {}, {}
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            config = json.loads(self._file.read_text())
        except json.JSONDecodeError as exc:
            raise RegistryError(
                f"{self._file} is not valid JSON ({exc}); fix the file by hand or restore it "
                "from version control"
            ) from None
        if config.get("format") != REGISTRY_FORMAT:
            raise RegistryError(
                f"{self._file}: unknown registry format {config.get('format')!r}, "
                f"expected {REGISTRY_FORMAT!r}"
            )
        entities = {name: Entity.from_config(c) for name, c in config.get("entities", {}).items()}
        view_configs = config.get("feature_views", {})
        written_by = config.get("polars_version")
        if written_by != pl.__version__ and any(_has_expressions(c) for c in view_configs.values()):
            raise RegistryError(
                f"{self._file} stores polars expressions written by polars {written_by}, but "
                f"this is polars {pl.__version__}; expressions are stored in a version-specific "
                f"form: install polars {written_by} or re-apply the definitions with this one"
            )
        views = {
            ref: _absolute_source(_view_from_config(c, entities), self.repo_path)
            for ref, c in view_configs.items()
        }
        services = {
            name: FeatureService.from_config(c)
            for name, c in config.get("feature_services", {}).items()
        }
        self._stamp, self._entities, self._views = stamp, entities, views
        self._services = services

    @property
    def entities(self) -> dict[str, Entity]:
        self.refresh()
        return dict(self._entities)

    @property
    def feature_views(self) -> dict[str, FeatureView]:
        """Applied views by ref (``"user_stats@v1"``)."""
        self.refresh()
        return dict(self._views)

    @property
    def feature_services(self) -> dict[str, FeatureService]:
        """Applied feature services by name; their refs are pinned to view versions."""
        self.refresh()
        return dict(self._services)

    def get_feature_service(self, name: str) -> FeatureService:
        """The applied service ``name``, its refs pinned (``"user_stats@v1:x"``)."""
        self.refresh()
        try:
            return self._services[name]
        except KeyError:
            raise RegistryError(
                f"no feature service {name!r} in {self.repo_path}{_suggest(name, self._services)}"
            ) from None

    def service_refs(self, service: FeatureService) -> tuple[FeatureRef, ...]:
        """The pinned refs ``service`` stands for: those of the applied service of its name.

        ``service`` may be the object given to ``apply`` (refs not pinned) or the one
        :meth:`get_feature_service` returns; its features must be the applied ones.
        """
        self.refresh()
        applied = self._services.get(service.name)
        if applied is None:
            raise RegistryError(
                f"FeatureService {service.name!r} is not applied in {self.repo_path}; apply it "
                "first (store.apply([service])): applying pins its refs to view versions"
                f"{_suggest(service.name, self._services) if self._services else ''}"
            )
        if service.features == applied.features:
            return applied.features  # type: ignore[return-value]
        expanded: list[FeatureRef] = []
        for item in service.features:
            if isinstance(item, FeatureView):
                view = self._views.get(item.ref)
                names = view.feature_names if view is not None else ()
                expanded.extend(FeatureRef(item.name, f, item.version) for f in names)
            else:
                expanded.append(item)
        pinned: tuple[FeatureRef, ...] = applied.features  # type: ignore[assignment]
        same = len(expanded) == len(pinned) and all(
            (e.view, e.feature) == (p.view, p.feature) and e.version in (None, p.version)
            for e, p in zip(expanded, pinned, strict=True)
        )
        if not same:
            raise RegistryError(
                f"FeatureService {service.name!r} lists {list(service.feature_refs)!r}, but the "
                f"applied service pins {list(applied.feature_refs)!r}; apply it again "
                f"(store.apply([service])) or use store.get_feature_service({service.name!r})"
            )
        return pinned

    def versions(self, name: str) -> list[int]:
        self.refresh()
        return sorted(v.version for v in self._views.values() if v.name == name)

    def get_entity(self, name: str) -> Entity:
        self.refresh()
        try:
            return self._entities[name]
        except KeyError:
            raise RegistryError(
                f"no entity {name!r} in {self.repo_path}{_suggest(name, self._entities)}"
            ) from None

    def get_feature_view(self, name: str, version: int | None = None) -> FeatureView:
        """The applied view ``name`` at ``version`` (the latest when ``None``)."""
        versions = self.versions(name)
        if not versions:
            names = {v.name for v in self._views.values()}
            raise RegistryError(
                f"no feature view {name!r} in {self.repo_path}{_suggest(name, names)}"
            )
        if version is None:
            version = versions[-1]
        elif version not in versions:
            raise RegistryError(
                f"feature view {name!r} has no version {version}; applied versions: {versions}"
            )
        return self._views[f"{name}@v{version}"]

    # -- planning --------------------------------------------------------------------------
    def plan(
        self,
        objects: Iterable[Entity | FeatureView | FeatureService],
        objects_to_delete: Iterable[Entity | FeatureView | FeatureService] = (),
    ) -> Plan:
        """Validate ``objects`` and diff them against the applied registry; writes nothing."""
        self.refresh()
        objects = list(objects)
        entities, views, services = _split(objects, "objects")
        to_delete = list(objects_to_delete)
        del_entities, del_views, del_services = _split(to_delete, "objects_to_delete")

        changes: list[Change] = []
        batch_entities: dict[str, Entity] = {}
        for entity in entities:
            if entity.name in batch_entities:
                raise RegistryError(f"Entity {entity.name!r} appears twice in the batch")
            batch_entities[entity.name] = entity
            changes.append(self._entity_change(entity))

        known = {**self._entities, **batch_entities}
        planned: list[Any] = []
        frames: dict[str, pl.DataFrame] = {}
        seen: set[str] = set()
        on_demand = [v for v in views if isinstance(v, OnDemandFeatureView)]
        for view in views:
            if view.ref in seen:
                raise RegistryError(f"FeatureView {view.ref!r} appears twice in the batch")
            seen.add(view.ref)
            if isinstance(view, OnDemandFeatureView):
                continue
            for entity in view.entities:  # type: ignore[union-attr]
                registered = known.get(entity.name)
                if registered is None:
                    raise RegistryError(
                        f"FeatureView {view.ref!r} uses Entity {entity.name!r}, which is not "
                        "applied; apply it in the same batch"
                    )
                if registered._logic() != entity._logic():
                    raise RegistryError(
                        f"FeatureView {view.ref!r} uses Entity {entity.name!r} with join_keys "
                        f"{list(entity.join_keys)!r}, but the registry's has "
                        f"{list(registered.join_keys)!r}"
                    )
            resolved, frame = self._resolve(view)
            if frame is not None:
                frames[resolved.ref] = frame
            planned.append(resolved)
            changes.append(self._view_change(resolved, frame))
        available = {**self._views, **{v.ref: v for v in planned}}
        for odfv in on_demand:
            resolved = _resolve_on_demand(odfv, available)
            planned.append(resolved)
            changes.append(self._view_change(resolved))

        deleted_views = [v.ref for v in del_views]
        for ref in deleted_views:
            if ref not in self._views:
                raise RegistryError(f"cannot delete FeatureView {ref!r}: it is not applied")
            changes.append(Change("feature_view", ref, "remove"))
        deleted_entities = [e.name for e in del_entities]
        remaining = [
            v
            for ref, v in {**self._views, **{v.ref: v for v in planned}}.items()
            if ref not in deleted_views
        ]
        remaining_views = {v.ref: v for v in remaining}
        batch_services: dict[str, FeatureService] = {}
        for service in services:
            if service.name in batch_services:
                raise RegistryError(f"FeatureService {service.name!r} appears twice in the batch")
            resolved_service = _resolve_service(service, remaining_views, deleted_views)
            batch_services[service.name] = resolved_service
            changes.append(self._service_change(resolved_service))
        deleted_services = []
        for service in del_services:
            if service.name not in self._services:
                raise RegistryError(
                    f"cannot delete FeatureService {service.name!r}: it is not applied"
                    f"{_suggest(service.name, self._services)}"
                )
            if service.name in batch_services:
                raise RegistryError(
                    f"FeatureService {service.name!r} is both applied and deleted in this batch; "
                    "keep it in one of objects or objects_to_delete"
                )
            deleted_services.append(service.name)
            changes.append(Change("feature_service", service.name, "remove"))
        kept_services = {
            **{n: s for n, s in self._services.items() if n not in deleted_services},
            **batch_services,
        }
        for service in kept_services.values():
            gone = [r for r in service.feature_refs if r.split(":")[0] in deleted_views]
            if gone:
                views_gone = sorted({g.split(":")[0] for g in gone})
                raise RegistryError(
                    f"cannot delete FeatureView {views_gone}: FeatureService {service.name!r} "
                    f"uses {gone}; delete the service too (objects_to_delete=[service]) or "
                    "apply it again with refs to another version"
                )
        for view in remaining:
            if isinstance(view, OnDemandFeatureView):
                gone = [str(s) for s in view.sources if f"{s.view}@v{s.version}" in deleted_views]  # type: ignore[union-attr]
                if gone:
                    raise RegistryError(
                        f"cannot delete {sorted(set(g.split(':')[0] for g in gone))}: on-demand "
                        f"view {view.ref!r} reads {gone}"
                    )
        for name in deleted_entities:
            if name not in self._entities:
                raise RegistryError(f"cannot delete Entity {name!r}: it is not applied")
            users = [
                v.ref
                for v in remaining
                if name in [e.name for e in getattr(v, "entities", ())]  # type: ignore[union-attr]
            ]
            if users:
                raise RegistryError(
                    f"cannot delete Entity {name!r}: feature views {users} still use it; "
                    "delete them too (objects_to_delete) or keep the entity"
                )
            changes.append(Change("entity", name, "remove"))

        return Plan(
            changes=tuple(changes),
            entities=tuple(batch_entities.values()),
            views=tuple(planned),
            frames=frames,
            deleted_views=tuple(deleted_views),
            deleted_entities=tuple(deleted_entities),
            services=tuple(batch_services.values()),
            deleted_services=tuple(deleted_services),
        )

    def _service_change(self, service: FeatureService) -> Change:
        old = self._services.get(service.name)
        if old is None:
            return Change(
                "feature_service", service.name, "add", (f"{len(service.features)} features",)
            )
        diff = _diff(old.to_config(), service.to_config())
        return Change(
            "feature_service", service.name, "update" if diff else "unchanged", tuple(diff)
        )

    def _entity_change(self, entity: Entity) -> Change:
        old = self._entities.get(entity.name)
        if old is None:
            return Change("entity", entity.name, "add", (f"join_keys {list(entity.join_keys)}",))
        if old._logic() != entity._logic():
            return Change(
                "entity",
                entity.name,
                "refuse",
                (
                    f"join_keys {list(old.join_keys)} -> {list(entity.join_keys)}; an entity's "
                    "join keys cannot change: define a new entity under a new name",
                ),
            )
        diff = _diff(old.to_config(), entity.to_config())
        return Change("entity", entity.name, "update" if diff else "unchanged", tuple(diff))

    def _view_change(self, view: FeatureView, frame: pl.DataFrame | None = None) -> Change:
        old = self._views.get(view.ref)
        if old is not None:
            old, view = self._stored(old), self._stored(view)
        if old is None:
            n = len(view.schema or ())
            return Change("feature_view", view.ref, "add", (f"{n} features",))
        logic_diff = _diff(old._logic(), view._logic())
        if logic_diff:
            nxt = max(self.versions(view.name)) + 1
            return Change(
                "feature_view",
                view.ref,
                "refuse",
                (
                    *logic_diff,
                    f"the logic of an applied version cannot change: set version={nxt}",
                ),
            )
        diff = _diff(old.to_config(), view.to_config())
        if frame is not None:  # apply rewrites a DataFrameSource's rows: say so if they differ
            diff += self._frame_diff(view, frame)
        return Change("feature_view", view.ref, "update" if diff else "unchanged", tuple(diff))

    def _frame_diff(self, view: FeatureView, frame: pl.DataFrame) -> list[str]:
        path = view.source.resolved_path(self.repo_path)  # type: ignore[union-attr]
        try:
            stored = pl.read_parquet(path)
        except (OSError, pl.exceptions.PolarsError):
            return [f"data: the stored rows are missing; {frame.height} rows will be written"]
        if stored.equals(frame):
            return []
        return [f"data: {stored.height} rows -> {frame.height} rows (the stored rows are replaced)"]

    def _resolve(self, view: FeatureView) -> tuple[FeatureView, pl.DataFrame | None]:
        """Normalize the view's source for storage and check it against the data's schema."""
        source = view.source
        assert isinstance(source, Source)
        frame: pl.DataFrame | None = None
        if isinstance(source, DataFrameSource):
            assert source.frame is not None
            frame = source.frame.lazy().collect()
            stored: Source = ParquetSource(
                self.repo_path / OFFLINE_DIR / view.name / f"v{view.version}.parquet",
                timestamp_field=source.timestamp_field,
                created_timestamp_field=source.created_timestamp_field,
            )
            schema = frame.schema
        else:
            assert isinstance(source, (ParquetSource, CSVSource))
            stored = type(source)(
                os.path.normpath(Path.cwd() / source.path),  # type: ignore[operator]
                timestamp_field=source.timestamp_field,
                created_timestamp_field=source.created_timestamp_field,
            )
            try:
                schema = stored.scan(self.repo_path).collect_schema()
            except (OSError, pl.exceptions.PolarsError) as exc:
                raise SchemaError(
                    f"FeatureView {view.ref!r}: cannot read source {source.path!r}: "
                    f"{str(exc).splitlines()[0]}"
                ) from None
        view = replace(view, source=stored)
        return _check_schema(view, schema), frame

    def _stored(self, view: Any) -> Any:
        """``view`` as it is written to the registry file (repo-relative data paths).

        In memory every source path is absolute (see :func:`_absolute_source`)."""
        source = getattr(view, "source", None)
        if not isinstance(source, (ParquetSource, CSVSource)):
            return view
        path = self._storable_path(source.path)  # type: ignore[arg-type]
        if path == source.path:
            return view
        return replace(
            view,
            source=type(source)(
                path,
                timestamp_field=source.timestamp_field,
                created_timestamp_field=source.created_timestamp_field,
            ),
        )

    def _storable_path(self, path: str) -> str:
        """Absolute, or relative to the repo when the data lives inside it."""
        p = Path(path)
        if not p.is_absolute():
            p = Path.cwd() / p
        p = Path(os.path.normpath(p))
        try:
            return str(p.relative_to(self.repo_path))
        except ValueError:
            return str(p)

    # -- applying --------------------------------------------------------------------------
    def apply(
        self,
        objects: Iterable[Entity | FeatureView | FeatureService],
        objects_to_delete: Iterable[Entity | FeatureView | FeatureService] = (),
    ) -> Plan:
        """Validate, then persist ``objects`` atomically. Refusals raise and write nothing."""
        self.repo_path.mkdir(parents=True, exist_ok=True)
        with self._lock():
            plan = self.plan(objects, objects_to_delete)
            if plan.refused:
                raise VersionConflictError(
                    "apply refused, nothing was written:\n"
                    + "\n".join(f"  {c}" for c in plan.refused)
                )
            if not plan.has_changes and self._file.exists():
                return plan  # nothing to write: other processes need not re-read anything
            entities = {**self._entities, **{e.name: e for e in plan.entities}}
            views = {**self._views, **{v.ref: v for v in plan.views}}
            for ref in plan.deleted_views:
                views.pop(ref)
            for name in plan.deleted_entities:
                entities.pop(name)
            services = {**self._services, **{s.name: s for s in plan.services}}
            for name in plan.deleted_services:
                services.pop(name)
            config = {
                "format": REGISTRY_FORMAT,
                "polars_version": pl.__version__,
                "entities": {n: entities[n].to_config() for n in sorted(entities)},
                "feature_views": {r: self._stored(views[r]).to_config() for r in sorted(views)},
                "feature_services": {n: services[n].to_config() for n in sorted(services)},
            }
            staged: list[tuple[Path, Path]] = []
            try:
                for ref, frame in plan.frames.items():
                    view = views[ref]
                    target = Path(view.source.resolved_path(self.repo_path))  # type: ignore[union-attr]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
                    frame.write_parquet(tmp)
                    staged.append((tmp, target))
                reg_tmp = _write_tmp(self._file, json.dumps(config, indent=2) + "\n")
                staged.append((reg_tmp, self._file))
            except BaseException:
                for tmp, _ in staged:
                    tmp.unlink(missing_ok=True)
                raise
            for tmp, target in staged:  # registry file last: it is the commit point
                os.replace(tmp, target)
            self.refresh()
        return plan

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        # Lock the repo directory itself: a lock file would be created even by an apply that
        # then fails, and a failed apply must leave the repo exactly as it was.
        fd = os.open(self.repo_path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------------- helpers


def _split(
    objects: Sequence[object], argument: str
) -> tuple[list[Entity], list[FeatureView], list[FeatureService]]:
    entities, views, services = [], [], []
    for obj in objects:
        if isinstance(obj, Entity):
            entities.append(obj)
        elif isinstance(obj, (FeatureView, OnDemandFeatureView)):
            views.append(obj)
        elif isinstance(obj, FeatureService):
            services.append(obj)
        else:
            raise RegistryError(
                f"{argument} must hold Entity, FeatureView and FeatureService objects, got "
                f"{type(obj).__name__}: {obj!r}"
            )
    return entities, views, services


_TEMPORAL = (pl.Datetime, pl.Date)


def _check_schema(view: FeatureView, schema: pl.Schema) -> FeatureView:
    """Check keys, timestamps and fields against the source's schema; infer fields if unset."""
    owner = f"FeatureView {view.ref!r}"
    source = view.source
    assert isinstance(source, Source)
    columns = list(schema)
    for key in view.join_keys:
        if key not in schema:
            raise SchemaError(
                f"{owner}: join key {key!r} is not a column of the source; the source has {columns}"
            )
    for name, label in (
        (source.timestamp_field, "timestamp_field"),
        (source.created_timestamp_field, "created_timestamp_field"),
    ):
        if name is None:
            continue
        if name not in schema:
            raise SchemaError(
                f"{owner}: {label} {name!r} is not a column of the source; the source has {columns}"
            )
        if not isinstance(schema[name], _TEMPORAL):
            raise SchemaError(
                f"{owner}: {label} {name!r} must be a Datetime or Date column, got "
                f"{schema[name]}; parse it first, e.g. pl.col({name!r}).str.to_datetime()"
            )
    if isinstance(view, StreamFeatureView):
        return _check_stream_schema(view, schema)
    if view.schema is None:
        reserved = {*view.join_keys, source.timestamp_field, source.created_timestamp_field}
        inferred = []
        for c in columns:
            if c in reserved:
                continue
            try:
                inferred.append(Field(c, schema[c]))
            except DefinitionError:
                raise SchemaError(
                    f"{owner}: cannot infer the schema: column {c!r} has dtype {schema[c]}, "
                    "which a feature schema cannot hold; cast the column or declare "
                    "schema=[...] without it"
                ) from None
        if not inferred:
            raise SchemaError(f"{owner}: the source has no feature columns besides keys")
        return replace(view, schema=inferred)
    for f in view.schema:
        if f.name not in schema:
            raise SchemaError(
                f"{owner}: schema field {f.name!r} is not a column of the source; "
                f"the source has {columns}"
            )
        if schema[f.name] != f.dtype:
            raise SchemaError(
                f"{owner}: schema field {f.name!r} is declared {dtype_to_str(f.dtype)} but the "
                f"source column is {dtype_to_str(schema[f.name])}; fix the Field's dtype or "
                "cast the source"
            )
    return view


def _check_stream_schema(view: StreamFeatureView, schema: pl.Schema) -> StreamFeatureView:
    owner = f"StreamFeatureView {view.ref!r}"
    columns = list(schema)
    for column in view.value_columns:
        if column not in schema:
            raise SchemaError(
                f"{owner}: aggregated column {column!r} is not a column of the source; "
                f"the source has {columns}"
            )
        if not schema[column].is_numeric() and not isinstance(schema[column], pl.Boolean):
            raise SchemaError(
                f"{owner}: aggregated column {column!r} must be numeric, got {schema[column]}"
            )
    if view.filter is not None:
        try:
            kind = pl.DataFrame(schema=schema).select(view.filter).dtypes[0]
        except pl.exceptions.PolarsError as exc:
            raise SchemaError(
                f"{owner}: filter does not run on the source's columns {columns}: "
                f"{str(exc).splitlines()[0]}"
            ) from None
        if not isinstance(kind, pl.Boolean):
            raise SchemaError(f"{owner}: filter must give a Boolean column, got {kind}")
    return view


def _resolve_on_demand(view: OnDemandFeatureView, available: dict[str, Any]) -> OnDemandFeatureView:
    """Pin the sources to applied versions and infer the output schema by a dry run."""
    owner = f"OnDemandFeatureView {view.ref!r}"
    pinned = []
    inputs: dict[str, pl.DataType] = {f.name: f.dtype for f in view.request_schema}  # type: ignore[union-attr]
    for ref in view.sources:  # type: ignore[union-attr]
        versions = sorted(v.version for v in available.values() if v.name == ref.view)
        if not versions:
            raise RegistryError(
                f"{owner} reads {str(ref)!r}, but no feature view {ref.view!r} is applied"
            )
        version = versions[-1] if ref.version is None else ref.version
        source = available.get(f"{ref.view}@v{version}")
        if source is None or isinstance(source, OnDemandFeatureView):
            raise RegistryError(
                f"{owner} reads {str(ref)!r}: that must be an applied FeatureView version "
                f"(applied: {versions})"
            )
        dtypes = {f.name: f.dtype for f in source.schema or ()}
        if ref.feature not in dtypes:
            raise RegistryError(
                f"{owner} reads {str(ref)!r}, but {source.ref!r} has no feature "
                f"{ref.feature!r}{_suggest(ref.feature, dtypes)}"
            )
        pinned.append(FeatureRef(ref.view, ref.feature, version))
        inputs[ref.feature] = dtypes[ref.feature]
    inferred = view.infer_schema(inputs)
    if view.schema is not None:
        declared = {f.name: f.dtype for f in view.schema}
        if set(declared) != {f.name for f in inferred}:
            raise SchemaError(f"{owner}: schema names {sorted(declared)} differ from features")
    return replace(view, sources=pinned, schema=view.schema or inferred)


def _resolve_service(
    service: FeatureService, available: dict[str, Any], deleted: Sequence[str]
) -> FeatureService:
    """Pin every ref of ``service`` to the applied view version it means now."""
    owner = f"FeatureService {service.name!r}"
    pinned: list[FeatureRef] = []
    origin: dict[str, str] = {}
    for item in service.features:
        if isinstance(item, FeatureView):
            view = available.get(item.ref)
            if view is None:
                raise RegistryError(
                    f"{owner} lists all of FeatureView {item.ref!r}, which is not applied"
                    f"{' (deleted in this batch)' if item.ref in deleted else ''}; apply it in "
                    "the same batch or list refs of an applied version"
                )
            refs = [
                (FeatureRef(view.name, f, view.version), f"{item.ref}:*")
                for f in view.feature_names
            ]
        else:
            versions = sorted(v.version for v in available.values() if v.name == item.view)
            if not versions:
                names = {v.name for v in available.values()}
                raise RegistryError(
                    f"{owner} lists {str(item)!r}, but no feature view {item.view!r} is applied"
                    f"{_suggest(item.view, names)}; apply the view in the same batch or fix the ref"
                )
            version = versions[-1] if item.version is None else item.version
            if version not in versions:
                raise RegistryError(
                    f"{owner} lists {str(item)!r}, but feature view {item.view!r} has no "
                    f"version {version}; applied versions: {versions}"
                )
            view = available[f"{item.view}@v{version}"]
            names = [f.name for f in view.schema or ()]
            if item.feature not in names:
                raise RegistryError(
                    f"{owner} lists {str(item)!r}, but {view.ref!r} has no feature "
                    f"{item.feature!r}{_suggest(item.feature, names)}"
                )
            refs = [(FeatureRef(item.view, item.feature, version), str(item))]
        for ref, given in refs:
            if str(ref) in origin:
                raise RegistryError(
                    f"{owner} lists {str(ref)!r} twice (as {origin[str(ref)]!r} and {given!r}); "
                    "list each feature once"
                )
            origin[str(ref)] = given
            pinned.append(ref)
    return replace(service, features=pinned)


def _view_from_config(config: dict[str, Any], entities: dict[str, Entity]) -> Any:
    kind = config.get("kind", "batch")
    if kind == "on_demand":
        return OnDemandFeatureView.from_config(config)
    base = FeatureView.from_config(config, entities)
    if kind == "stream":
        return stream_view_from_config(config, base)
    return base


def _absolute_source(view: Any, repo_path: Path) -> Any:
    """In memory, a stored repo-relative path becomes absolute: a relative path a user
    writes means "relative to the working directory", so the two must not meet."""
    source = getattr(view, "source", None)
    if not isinstance(source, (ParquetSource, CSVSource)) or Path(source.path).is_absolute():  # type: ignore[arg-type]
        return view
    absolute = type(source)(
        source.resolved_path(repo_path),
        timestamp_field=source.timestamp_field,
        created_timestamp_field=source.created_timestamp_field,
    )
    return replace(view, source=absolute)


def _has_expressions(config: dict[str, Any]) -> bool:
    return config.get("kind") == "on_demand" or (
        config.get("kind") == "stream" and config.get("filter") is not None
    )


def _diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    lines = []
    for key in new:
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if key.endswith("_seconds"):  # durations read better as '2d -> 1d'
            key = key.removesuffix("_seconds")
            before, after = (
                format_timedelta(None if v is None else timedelta(seconds=v))
                for v in (before, after)
            )
            lines.append(f"{key}: {before} -> {after}")
        else:
            lines.append(f"{key}: {before!r} -> {after!r}")
    return lines


def _suggest(name: str, choices: Iterable[str]) -> str:
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f" (known: {choices}){hint}"


def _write_tmp(target: Path, text: str) -> Path:
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(name)
