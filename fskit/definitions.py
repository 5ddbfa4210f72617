"""Feature definitions: entities, fields, sources, feature views, references and services.

Definitions are values: frozen, keyword-only dataclasses validated without any I/O when they
are built. Nothing here reads data; checking a definition against its source's columns is the
registry's job at :meth:`fskit.FeatureStore.apply` time.

>>> from datetime import timedelta
>>> import polars as pl
>>> user = Entity("user", join_keys=["user_id"])
>>> frame = pl.DataFrame({"user_id": [1], "event_timestamp": [None], "clicks": [3]})
>>> view = FeatureView(
...     name="user_clicks",
...     entities=[user],
...     source=DataFrameSource(frame),
...     schema=[Field("clicks", pl.Int64)],
...     ttl=timedelta(days=1),
... )
>>> view.ref, view.join_keys, view.feature_names
('user_clicks@v1', ('user_id',), ('clicks',))
>>> FeatureRef.parse("user_clicks@v2:clicks")
FeatureRef(view='user_clicks', feature='clicks', version=2)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl

from fskit._utils.dtypes import dtype_from_str, dtype_to_str, normalize_dtype
from fskit.errors import DefinitionError, FeatureRefError

__all__ = [
    "CSVSource",
    "DataFrameSource",
    "Entity",
    "FeatureRef",
    "FeatureService",
    "FeatureView",
    "Field",
    "ParquetSource",
    "Source",
]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_ident(owner: str, field_name: str, value: object) -> None:
    if not isinstance(value, str) or not _IDENT.match(value):
        raise DefinitionError(
            f"{owner}: {field_name} must be an identifier (letters, digits and '_', not "
            f"starting with a digit), got {value!r}"
        )


def _check_text(owner: str, field_name: str, value: object) -> None:
    if not isinstance(value, str):
        raise DefinitionError(f"{owner}: {field_name} must be a string, got {value!r}")


def _check_tags(owner: str, value: object) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise DefinitionError(f"{owner}: tags must be a dict of str to str, got {value!r}")
    return dict(value)


def _check_duration(owner: str, field_name: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, timedelta):
        raise DefinitionError(
            f"{owner}: {field_name} must be a datetime.timedelta or None, got {value!r}"
        )
    if value <= timedelta(0):
        raise DefinitionError(
            f"{owner}: {field_name} must be positive, got {value!r}; use None for no limit"
        )


def format_timedelta(value: timedelta | None) -> str:
    """Short human form of a duration: ``timedelta(days=30)`` → ``'30d'``."""
    if value is None:
        return "none"
    seconds = int(value.total_seconds())
    if seconds != value.total_seconds():
        return str(value)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _td_to_config(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _td_from_config(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


# --------------------------------------------------------------------------------- entities


@dataclass(frozen=True)
class Entity:
    """A thing features describe, identified by one or more join keys (Feast's ``Entity``).

    >>> Entity("user", join_keys=["user_id"], description="card holder")
    Entity('user', join_keys=['user_id'])
    """

    name: str
    _: KW_ONLY
    join_keys: Sequence[str] = ()
    description: str = ""
    owner: str = ""
    # tags are stored as a dict, which cannot be hashed: leave them out of the hash (not of
    # ==) so that definitions, being values, can be set members and dict keys
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        _check_ident("Entity", "name", self.name)
        owner = f"Entity {self.name!r}"
        keys = self.join_keys
        if isinstance(keys, str):
            raise DefinitionError(
                f"{owner}: join_keys must be a list of column names, got the string {keys!r}; "
                f"write join_keys=[{keys!r}]"
            )
        keys = tuple(keys) or (self.name,)
        for key in keys:
            _check_ident(owner, "join_keys", key)
        if len(set(keys)) != len(keys):
            raise DefinitionError(f"{owner}: join_keys has duplicates: {list(keys)!r}")
        _check_text(owner, "description", self.description)
        _check_text(owner, "owner", self.owner)
        object.__setattr__(self, "join_keys", keys)
        object.__setattr__(self, "tags", _check_tags(owner, self.tags))

    def __repr__(self) -> str:
        return f"Entity({self.name!r}, join_keys={list(self.join_keys)!r})"

    def to_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "join_keys": list(self.join_keys),
            "description": self.description,
            "owner": self.owner,
            "tags": dict(self.tags),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Entity:
        return cls(
            config["name"],
            join_keys=config["join_keys"],
            description=config.get("description", ""),
            owner=config.get("owner", ""),
            tags=config.get("tags", {}),
        )

    def _logic(self) -> dict[str, Any]:
        return {"join_keys": list(self.join_keys)}


# ----------------------------------------------------------------------------------- fields


@dataclass(frozen=True)
class Field:
    """A named, typed feature column.

    >>> Field("avg_purchase_value", pl.Float64)
    Field('avg_purchase_value', Float64)
    """

    name: str
    dtype: pl.DataType
    _: KW_ONLY
    description: str = ""

    def __post_init__(self) -> None:
        _check_ident("Field", "name", self.name)
        try:
            dtype = normalize_dtype(self.dtype)
            dtype_to_str(dtype)
        except TypeError as exc:
            raise DefinitionError(f"Field {self.name!r}: {exc}") from None
        object.__setattr__(self, "dtype", dtype)
        _check_text(f"Field {self.name!r}", "description", self.description)

    def __repr__(self) -> str:
        return f"Field({self.name!r}, {self.dtype})"

    def to_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": dtype_to_str(self.dtype),
            "description": self.description,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Field:
        return cls(
            config["name"],
            dtype_from_str(config["dtype"]),
            description=config.get("description", ""),
        )


# ---------------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Source:
    """Where a feature view's rows come from. Use one of the concrete sources."""

    _: KW_ONLY
    timestamp_field: str = "event_timestamp"
    created_timestamp_field: str | None = None

    kind = "abstract"

    def __post_init__(self) -> None:
        owner = type(self).__name__
        _check_ident(owner, "timestamp_field", self.timestamp_field)
        if self.created_timestamp_field is not None:
            _check_ident(owner, "created_timestamp_field", self.created_timestamp_field)
            if self.created_timestamp_field == self.timestamp_field:
                raise DefinitionError(
                    f"{owner}: created_timestamp_field must differ from timestamp_field "
                    f"(both {self.timestamp_field!r})"
                )

    def scan(self, repo_path: Path | None = None) -> pl.LazyFrame:
        """A lazy scan of the source's rows; relative paths resolve against ``repo_path``."""
        raise NotImplementedError

    def to_config(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "timestamp_field": self.timestamp_field,
            "created_timestamp_field": self.created_timestamp_field,
        }

    @staticmethod
    def from_config(config: Mapping[str, Any]) -> Source:
        kinds = {"parquet": ParquetSource, "csv": CSVSource}
        cls = kinds.get(config.get("type", ""))
        if cls is None:
            raise DefinitionError(
                f"source type {config.get('type')!r} in the registry file is not one of "
                f"{sorted(kinds)}"
            )
        return cls(
            config["path"],
            timestamp_field=config["timestamp_field"],
            created_timestamp_field=config.get("created_timestamp_field"),
        )


@dataclass(frozen=True, init=False)
class _FileSource(Source):
    path: str | Path = ""

    def __init__(
        self,
        path: str | Path,
        *,
        timestamp_field: str = "event_timestamp",
        created_timestamp_field: str | None = None,
    ) -> None:
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "timestamp_field", timestamp_field)
        object.__setattr__(self, "created_timestamp_field", created_timestamp_field)
        self.__post_init__()

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.path, (str, Path)) or not str(self.path):
            raise DefinitionError(
                f"{type(self).__name__}: path must be a non-empty path or glob, got {self.path!r}"
            )
        object.__setattr__(self, "path", str(self.path))

    def resolved_path(self, repo_path: Path | None = None) -> str:
        path = Path(self.path)  # type: ignore[arg-type]
        if not path.is_absolute() and repo_path is not None:
            path = repo_path / path
        return str(path)

    def to_config(self) -> dict[str, Any]:
        return {**super().to_config(), "path": self.path}


@dataclass(frozen=True, init=False)
class ParquetSource(_FileSource):
    """Parquet file(s): a path or a glob such as ``"data/user_stats/*.parquet"``.

    >>> ParquetSource("data/*.parquet", timestamp_field="ts").kind
    'parquet'
    """

    kind = "parquet"

    def scan(self, repo_path: Path | None = None) -> pl.LazyFrame:
        return pl.scan_parquet(self.resolved_path(repo_path))


@dataclass(frozen=True, init=False)
class CSVSource(_FileSource):
    """A CSV file; timestamp columns are parsed as dates."""

    kind = "csv"

    def scan(self, repo_path: Path | None = None) -> pl.LazyFrame:
        return pl.scan_csv(self.resolved_path(repo_path), try_parse_dates=True)


@dataclass(frozen=True, eq=False)
class DataFrameSource(Source):
    """An in-memory polars (or pandas) frame.

    On :meth:`~fskit.FeatureStore.apply` the frame is written as Parquet into the feature
    repo's offline store, so that another process sees exactly the same rows.
    """

    frame: pl.DataFrame | pl.LazyFrame | None = None
    kind = "dataframe"

    def __init__(
        self,
        frame: Any,
        *,
        timestamp_field: str = "event_timestamp",
        created_timestamp_field: str | None = None,
    ) -> None:
        object.__setattr__(self, "frame", _as_polars(frame, "DataFrameSource", "frame"))
        object.__setattr__(self, "timestamp_field", timestamp_field)
        object.__setattr__(self, "created_timestamp_field", created_timestamp_field)
        self.__post_init__()

    # Frames have no boolean ==; without these, Source's generated __eq__ (timestamp fields
    # only) would call sources over different frames equal. Same frame object = same source.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DataFrameSource):
            return NotImplemented
        return (self.frame is other.frame) and (
            (self.timestamp_field, self.created_timestamp_field)
            == (other.timestamp_field, other.created_timestamp_field)
        )

    def __hash__(self) -> int:
        return hash((id(self.frame), self.timestamp_field, self.created_timestamp_field))

    def __repr__(self) -> str:
        frame = self.frame
        shape = frame.shape if isinstance(frame, pl.DataFrame) else "lazy"
        return f"DataFrameSource({shape}, timestamp_field={self.timestamp_field!r})"

    def scan(self, repo_path: Path | None = None) -> pl.LazyFrame:
        assert self.frame is not None
        return self.frame.lazy()

    def to_config(self) -> dict[str, Any]:
        raise DefinitionError(
            "DataFrameSource is persisted by FeatureStore.apply, which writes it as Parquet"
        )


def _as_polars(frame: Any, owner: str, field_name: str) -> pl.DataFrame | pl.LazyFrame:
    """Accept polars frames as they are and pandas frames by conversion."""
    if isinstance(frame, (pl.DataFrame, pl.LazyFrame)):
        return frame
    if type(frame).__module__.startswith("pandas"):
        return pl.from_pandas(frame)
    raise DefinitionError(
        f"{owner}: {field_name} must be a polars DataFrame or LazyFrame (pandas accepted), "
        f"got {type(frame).__name__}"
    )


SourceLike = Source | pl.DataFrame | pl.LazyFrame | str | Path


def _coerce_source(owner: str, source: object) -> Source:
    if isinstance(source, Source):
        return source
    if isinstance(source, (pl.DataFrame, pl.LazyFrame)) or type(source).__module__.startswith(
        "pandas"
    ):
        return DataFrameSource(source)
    if isinstance(source, (str, Path)):
        text = str(source)
        if text.lower().endswith((".csv", ".csv.gz")):
            return CSVSource(text)
        return ParquetSource(text)
    raise DefinitionError(
        f"{owner}: source must be a ParquetSource, CSVSource or DataFrameSource (or a frame "
        f"or path), got {type(source).__name__}"
    )


# ---------------------------------------------------------------------------- feature views


@dataclass(frozen=True, kw_only=True)
class FeatureView:
    """A versioned group of features for some entities, read from one source.

    Parameters
    ----------
    name
        Identifier of the view; with ``version`` it names the view in the registry
        (``"user_stats@v2"``).
    entities
        The entities the rows describe; their join keys must be columns of the source.
    source
        Where rows come from (Parquet, CSV or an in-memory frame).
    schema
        The feature columns. ``None`` infers them at ``apply`` from the source: every column
        but the join keys and timestamps.
    ttl
        How old a feature row may be and still be served, relative to the entity row's
        timestamp. ``None`` means no limit (unlike Feast, ``timedelta(0)`` is an error).
    version
        Bump it to change the view's logic (source, timestamps, TTL, schema, entities);
        several versions can be applied side by side.
    online, description, owner, tags, freshness_sla
        Metadata: may change under the same version. ``freshness_sla`` is how stale an online
        value may be before a read counts as a breach of the service level.
    """

    name: str
    entities: Sequence[Entity]
    source: SourceLike
    schema: Sequence[Field] | None = None
    ttl: timedelta | None = None
    version: int = 1
    online: bool = True
    description: str = ""
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)  # see Entity.tags
    freshness_sla: timedelta | None = None

    def __post_init__(self) -> None:
        _check_ident("FeatureView", "name", self.name)
        owner = f"FeatureView {self.name!r}"
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise DefinitionError(f"{owner}: version must be an int >= 1, got {self.version!r}")
        entities = self.entities
        if isinstance(entities, Entity):
            entities = [entities]
        entities = tuple(entities)
        if not entities or not all(isinstance(e, Entity) for e in entities):
            raise DefinitionError(
                f"{owner}: entities must be a non-empty list of Entity, got {self.entities!r}"
            )
        names = [e.name for e in entities]
        if len(set(names)) != len(names):
            raise DefinitionError(f"{owner}: entities has duplicates: {names!r}")
        object.__setattr__(self, "entities", entities)
        source = _coerce_source(owner, self.source)
        object.__setattr__(self, "source", source)
        _check_duration(owner, "ttl", self.ttl)
        _check_duration(owner, "freshness_sla", self.freshness_sla)
        if not isinstance(self.online, bool):
            raise DefinitionError(f"{owner}: online must be True or False, got {self.online!r}")
        _check_text(owner, "description", self.description)
        _check_text(owner, "owner", self.owner)
        object.__setattr__(self, "tags", _check_tags(owner, self.tags))

        keys = self.join_keys
        reserved = {*keys, source.timestamp_field}
        if source.created_timestamp_field:
            reserved.add(source.created_timestamp_field)
        if len(keys) + 1 + bool(source.created_timestamp_field) != len(reserved):
            raise DefinitionError(
                f"{owner}: join keys {list(keys)!r} and timestamp fields must be distinct columns"
            )
        if self.schema is not None:
            schema = tuple(self.schema)
            if not all(isinstance(f, Field) for f in schema):
                raise DefinitionError(
                    f"{owner}: schema must be a list of fk.Field, got {self.schema!r}"
                )
            seen: set[str] = set()
            for f in schema:
                if f.name in seen:
                    raise DefinitionError(f"{owner}: schema field {f.name!r} appears twice")
                if f.name in reserved:
                    raise DefinitionError(
                        f"{owner}: schema field {f.name!r} is a join key or timestamp column; "
                        "list only feature columns in the schema"
                    )
                seen.add(f.name)
            if not schema:
                raise DefinitionError(f"{owner}: schema is empty; give fields or None to infer")
            object.__setattr__(self, "schema", schema)

    # -- derived ---------------------------------------------------------------------------
    @property
    def ref(self) -> str:
        """Registry name with version, e.g. ``'user_stats@v1'``."""
        return f"{self.name}@v{self.version}"

    @property
    def join_keys(self) -> tuple[str, ...]:
        keys: list[str] = []
        for entity in self.entities:  # type: ignore[union-attr]
            keys.extend(k for k in entity.join_keys if k not in keys)
        return tuple(keys)

    @property
    def feature_names(self) -> tuple[str, ...]:
        if self.schema is None:
            raise DefinitionError(
                f"FeatureView {self.name!r}: schema is not known yet; apply the view to infer it"
            )
        return tuple(f.name for f in self.schema)

    def __getitem__(self, feature: str) -> FeatureRef:
        """``view["total_purchases"]`` → a reference pinned to this view's version."""
        if self.schema is not None and feature not in self.feature_names:
            raise FeatureRefError(
                f"FeatureView {self.ref!r} has no feature {feature!r}; "
                f"it has {list(self.feature_names)!r}"
            )
        return FeatureRef(self.name, feature, self.version)

    def __repr__(self) -> str:
        n = "?" if self.schema is None else len(self.schema)
        return (
            f"FeatureView({self.ref!r}, entities={[e.name for e in self.entities]!r}, "  # type: ignore[union-attr]
            f"features={n}, ttl={format_timedelta(self.ttl)})"
        )

    def _repr_html_(self) -> str:
        from fskit._utils.html import definition_html

        return definition_html(self)

    # -- persistence -----------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        assert isinstance(self.source, Source)
        return {
            "name": self.name,
            "version": self.version,
            "entities": [e.name for e in self.entities],  # type: ignore[union-attr]
            "source": self.source.to_config(),
            "schema": None if self.schema is None else [f.to_config() for f in self.schema],
            "ttl_seconds": _td_to_config(self.ttl),
            "online": self.online,
            "description": self.description,
            "owner": self.owner,
            "tags": dict(self.tags),
            "freshness_sla_seconds": _td_to_config(self.freshness_sla),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any], entities: Mapping[str, Entity]) -> FeatureView:
        return cls(
            name=config["name"],
            version=config["version"],
            entities=[entities[name] for name in config["entities"]],
            source=Source.from_config(config["source"]),
            schema=None
            if config["schema"] is None
            else [Field.from_config(f) for f in config["schema"]],
            ttl=_td_from_config(config["ttl_seconds"]),
            online=config["online"],
            description=config["description"],
            owner=config["owner"],
            tags=config["tags"],
            freshness_sla=_td_from_config(config["freshness_sla_seconds"]),
        )

    _LOGIC = ("name", "version", "entities", "source", "schema", "ttl_seconds")

    def _logic(self) -> dict[str, Any]:
        """The part of the config that defines the values; changing it needs a new version."""
        config = self.to_config()
        logic = {k: config[k] for k in self._LOGIC}
        if logic["schema"] is not None:  # descriptions are metadata
            logic["schema"] = [{k: f[k] for k in ("name", "dtype")} for f in logic["schema"]]
        return logic


# ------------------------------------------------------------------------- feature references

_REF = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:@v([1-9][0-9]*))?:([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class FeatureRef:
    """A reference to one feature: ``"view:feature"`` or ``"view@v2:feature"``.

    Without a version the reference means the latest applied version of the view.

    >>> FeatureRef.parse("user_stats:total_purchases")
    FeatureRef(view='user_stats', feature='total_purchases', version=None)
    >>> str(FeatureRef("user_stats", "total_purchases", 2))
    'user_stats@v2:total_purchases'
    """

    view: str
    feature: str
    version: int | None = None

    @classmethod
    def parse(cls, ref: str | FeatureRef) -> FeatureRef:
        if isinstance(ref, FeatureRef):
            return ref
        if not isinstance(ref, str):
            raise FeatureRefError(
                f"a feature reference must be a string like 'view:feature' or a FeatureRef, "
                f"got {ref!r}"
            )
        m = _REF.match(ref)
        if m is None:
            raise FeatureRefError(
                f"feature reference {ref!r} is malformed: expected 'view:feature' or "
                "'view@v2:feature'"
            )
        return cls(m.group(1), m.group(3), int(m.group(2)) if m.group(2) else None)

    def __str__(self) -> str:
        version = "" if self.version is None else f"@v{self.version}"
        return f"{self.view}{version}:{self.feature}"


# ---------------------------------------------------------------------------- feature services


@dataclass(frozen=True, kw_only=True)
class FeatureService:
    """A named, reusable set of features, e.g. the inputs of one model (Feast's name).

    Pass it wherever a feature list goes (``get_historical_features``,
    ``get_online_features``, :func:`fskit.train`): it stands for the refs it pins.

    Parameters
    ----------
    name
        Identifier of the service in the registry.
    features
        ``"view:feature"``, ``"view@v2:feature"``, :class:`FeatureRef`, or a whole
        :class:`FeatureView` (all its features, at its ``version``). At
        :meth:`~fskit.FeatureStore.apply` every ref is pinned to the view version it means
        then (``"view:feature"`` → ``"view@v1:feature"``), so the service keeps meaning the
        same columns after the view gets a new version; apply the service again to re-pin.
    description, owner, tags
        Metadata. A service has no version: applying a changed service is an update.

    Examples
    --------
    >>> service = FeatureService(
    ...     name="fraud_model",
    ...     features=["user_stats:purchases", FeatureRef("merchant", "category", 2)],
    ... )
    >>> service
    FeatureService('fraud_model', features=['user_stats:purchases', 'merchant@v2:category'])
    >>> service.pinned
    False
    """

    name: str
    features: Sequence[str | FeatureRef | FeatureView]
    description: str = ""
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)  # see Entity.tags

    def __post_init__(self) -> None:
        _check_ident("FeatureService", "name", self.name)
        owner = f"FeatureService {self.name!r}"
        given = self.features
        if isinstance(given, (str, FeatureRef, FeatureView)):
            given = [given]
        elif not isinstance(given, Sequence):
            raise DefinitionError(
                f"{owner}: features must be a list of 'view:feature' refs, FeatureRefs or "
                f"FeatureViews, got {given!r}"
            )
        items: list[FeatureRef | FeatureView] = []
        for item in given:
            if isinstance(item, FeatureView):
                if item.schema is None:  # expanded from the applied version's schema at apply
                    items.append(item)
                else:
                    items.extend(FeatureRef(item.name, f, item.version) for f in item.feature_names)
                continue
            try:
                items.append(FeatureRef.parse(item))
            except FeatureRefError as exc:
                raise DefinitionError(f"{owner}: {exc}") from None
        if not items:
            raise DefinitionError(
                f"{owner}: features is empty; list at least one 'view:feature' ref"
            )
        labels = [_service_label(i) for i in items]
        dupes = sorted({label for label in labels if labels.count(label) > 1})
        if dupes:
            raise DefinitionError(
                f"{owner}: features lists {dupes!r} more than once; list each feature once"
            )
        _check_text(owner, "description", self.description)
        _check_text(owner, "owner", self.owner)
        object.__setattr__(self, "features", tuple(items))
        object.__setattr__(self, "tags", _check_tags(owner, self.tags))

    @property
    def pinned(self) -> bool:
        """Whether every ref names a view version, as in an applied service."""
        return all(isinstance(i, FeatureRef) and i.version is not None for i in self.features)

    @property
    def feature_refs(self) -> tuple[str, ...]:
        """The refs as strings (``"user_stats@v1:purchases"`` once applied)."""
        return tuple(_service_label(i) for i in self.features)

    def __repr__(self) -> str:
        return f"FeatureService({self.name!r}, features={list(self.feature_refs)!r})"

    def _repr_html_(self) -> str:
        import html

        from fskit._utils.html import table

        meta = [["owner", self.owner or "-"], ["description", self.description or "-"]]
        meta += [[f"tag {k}", v] for k, v in self.tags.items()]
        status = "" if self.pinned else " (pinned to view versions at apply)"
        return (
            f"<b>FeatureService <code>{html.escape(self.name)}</code></b>{html.escape(status)}"
            + table(["property", "value"], meta)
            + table(["feature ref"], [[r] for r in self.feature_refs])
        )

    # -- persistence -----------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        if not self.pinned:
            raise DefinitionError(
                f"FeatureService {self.name!r}: its refs are not pinned to view versions "
                f"({list(self.feature_refs)!r}); FeatureStore.apply pins and stores them"
            )
        return {
            "name": self.name,
            "features": list(self.feature_refs),
            "description": self.description,
            "owner": self.owner,
            "tags": dict(self.tags),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FeatureService:
        return cls(
            name=config["name"],
            features=config["features"],
            description=config.get("description", ""),
            owner=config.get("owner", ""),
            tags=config.get("tags", {}),
        )


def _service_label(item: FeatureRef | FeatureView) -> str:
    return f"{item.ref}:*" if isinstance(item, FeatureView) else str(item)
