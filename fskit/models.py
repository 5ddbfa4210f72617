"""The model registry: trained models as files in the feature repo, bound to their features.

Each registered version is a directory ``<repo>/models/<name>/v<N>/`` holding exactly two files:

* ``model.ubj`` — XGBoost's own binary model format (``Booster.save_model``); never pickle;
* ``metadata.json`` — human-readable JSON: the exact feature refs (``"user_stats@v1:x"``) and
  the logic fingerprint of every feature view version they come from, the model's input columns
  in order, the category lists of string features, the training window, metrics, parameters, a
  fingerprint of the training data, library versions, and a
  :class:`~fskit.drift.ReferenceProfile` of every feature and of the score for drift checks.

A version is written into a temporary directory and renamed into place, so a reader sees a
complete version or none. :meth:`ModelRegistry.load` is the skew guard for models: it refuses a
model whose feature view versions are no longer applied, or whose logic changed since training
(:class:`ModelLoadError`, naming the view, what changed and the fix).

Serving encodes inputs exactly as training did: :class:`LoadedModel` reads columns by name,
maps string features through the category lists fixed at training time (an unknown category is
missing, as is null), and scores with XGBoost's ``inplace_predict``. :func:`predict_batch`
scores many entities from offline features and can write the scores to Parquet or into the
online store as a feature view of precomputed predictions.

Errors::

    FskitError
    └── ModelLoadError          a model cannot be loaded or used as it is (also a ValueError)
        ├── ModelNotFoundError  no such model name or version (also a KeyError)
        └── ModelInputError     the features given to predict lack columns or have bad types
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import html
import json
import math
import os
import re
import shutil
import uuid
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from fskit._trees import CompiledTrees
from fskit._utils.html import table
from fskit.definitions import _as_polars
from fskit.errors import DefinitionError, FeatureRefError, FskitError

if TYPE_CHECKING:
    import xgboost as xgb

    from fskit.drift import ReferenceProfile
    from fskit.store import FeatureStore
    from fskit.training import TrainResult

__all__ = [
    "LoadedModel",
    "ModelInputError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelRegistry",
    "ModelVersion",
    "predict_batch",
]

MODELS_DIR = "models"
MODEL_FILE = "model.ubj"
METADATA_FILE = "metadata.json"
METADATA_FORMAT = "fskit-model/1"
SCORE = "score"
MODEL_VERSION = "model_version"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_VERSION_DIR = re.compile(r"^v([1-9][0-9]*)$")
_CATEGORICAL_DTYPES = (pl.String, pl.Categorical, pl.Enum)
#: Up to this many rows, ``LoadedModel.predict`` walks the compiled trees in Python (~25 µs a
#: row) instead of calling XGBoost (~170 µs a call, whatever the rows): see ``fskit._trees``.
SMALL_BATCH = 8


class ModelLoadError(FskitError, ValueError):
    """A registered model cannot be loaded or used as it is (the skew guard refuses it)."""


class ModelNotFoundError(ModelLoadError, KeyError):
    """No model of that name, or no such version; the message lists what exists."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ModelInputError(ModelLoadError):
    """The features given to a model lack columns or have types it cannot use."""


# --------------------------------------------------------------------------- encoding inputs


def logic_fingerprint(logic: Mapping[str, Any]) -> str:
    """sha256 of a feature view's logic (``FeatureView._logic()``) as canonical JSON."""
    text = json.dumps(logic, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def view_logic(registry: Any, view: Any) -> dict[str, Any]:
    """``view._logic()`` as the registry file stores it (data paths relative to the repo).

    In memory the registry makes source paths absolute; the stored form keeps a model valid
    when the feature repo directory is moved or copied as a whole.
    """
    stored = getattr(registry, "_stored", None)
    return (stored(view) if stored is not None else view)._logic()


def model_views(registry: Any, views: Sequence[Any]) -> dict[str, Any]:
    """``views`` and, for on-demand views, the feature views they read, by ref, in order."""
    out: dict[str, Any] = {}
    todo = list(views)
    while todo:
        view = todo.pop(0)
        if view.ref in out:
            continue
        out[view.ref] = view
        for ref in getattr(view, "sources", ()):  # an on-demand view's inputs, pinned at apply
            todo.append(registry.get_feature_view(ref.view, ref.version))
    return out


def encode_features(
    features: Any,
    columns: Sequence[str],
    categories: Mapping[str, Sequence[str]],
    *,
    owner: str = "model",
) -> np.ndarray:
    """The model's input matrix (float32, one column per ``columns``), the one encoding.

    Training and serving both call this, so a value reaches the trees the same way in both:
    numbers and booleans as float32, null as NaN (XGBoost's missing value), strings of a
    categorical feature as their index in ``categories[column]`` (unknown or null: NaN).
    ``features`` is a polars (or pandas) DataFrame, or a mapping of column -> values (a list
    per column, or one scalar per column for a single row).
    """
    if isinstance(features, Mapping):
        return _encode_mapping(features, columns, categories, owner)
    frame = _as_polars(features, owner, "features")
    if isinstance(frame, pl.LazyFrame):
        frame = frame.select(c for c in columns if c in frame.collect_schema()).collect()
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ModelInputError(
            f"{owner}: the features lack column(s) {missing}; the model reads {list(columns)} "
            f"(given: {frame.columns})"
        )
    out = np.empty((frame.height, len(columns)), dtype=np.float32)
    for j, name in enumerate(columns):
        series = frame.get_column(name)
        out[:, j] = _encode_series(series, name, categories.get(name), owner)
    return out


def _encode_series(
    series: pl.Series, name: str, cats: Sequence[str] | None, owner: str
) -> np.ndarray:
    dtype = series.dtype
    if cats is not None:
        if dtype == pl.Null:
            return np.full(series.len(), np.nan, dtype=np.float32)
        if not isinstance(dtype, _CATEGORICAL_DTYPES):
            raise ModelInputError(
                f"{owner}: feature {name!r} is categorical (trained on strings such as "
                f"{list(cats[:3])!r}), got a {dtype} column; pass the strings"
            )
        codes = series.cast(pl.String).replace_strict(
            list(cats), list(range(len(cats))), default=None, return_dtype=pl.Float64
        )
        return codes.to_numpy().astype(np.float32)
    if not (dtype.is_numeric() or dtype in (pl.Boolean, pl.Null)):
        raise ModelInputError(
            f"{owner}: feature {name!r} is numerical, got a {dtype} column; cast it to a number"
        )
    values = series.cast(pl.Float64).to_numpy()
    return values.astype(np.float32)


def _mapping_columns(
    features: Mapping[str, Any], columns: Sequence[str], owner: str
) -> tuple[list[Sequence[Any]], int]:
    """The values of each of ``columns`` in ``features`` (scalars as one row) and the row count."""
    missing = [c for c in columns if c not in features]
    if missing:
        raise ModelInputError(
            f"{owner}: the features lack column(s) {missing}; the model reads {list(columns)} "
            f"(given: {list(features)})"
        )
    cols: list[Sequence[Any]] = []
    for name in columns:
        values = features[name]
        if type(values) is list:  # the common case, first: the checks below cost microseconds
            cols.append(values)
            continue
        if isinstance(values, pl.Series) or type(values).__module__.startswith("pandas"):
            values = values.to_list()
        elif isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
            values = [values]  # one row given as scalars
        cols.append(values)
    lengths = {len(v) for v in cols}
    if len(lengths) > 1:
        sizes = {name: len(v) for name, v in zip(columns, cols, strict=True)}
        raise ModelInputError(f"{owner}: the feature columns differ in length: {sizes}")
    return cols, (lengths.pop() if lengths else 0)


def _encode_values(
    name: str, values: Sequence[Any], cats: Sequence[str] | None, owner: str
) -> list[float] | np.ndarray:
    """One input column as floats (NaN for missing), the same rule as ``_encode_series``."""
    if cats is not None:
        index = _category_index(cats)
        row: list[float] = []
        for v in values:
            if v is None:
                row.append(math.nan)
            elif isinstance(v, str):
                row.append(index.get(v, math.nan))
            else:
                raise ModelInputError(
                    f"{owner}: feature {name!r} is categorical (trained on strings such as "
                    f"{list(cats[:3])!r}), got {v!r}; pass the strings"
                )
        return row
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return values.astype(np.float64)
    row = []
    for v in values:
        kind = type(v)
        if kind is float or kind is int:
            row.append(float(v))
        elif v is None:
            row.append(math.nan)
        elif isinstance(v, (int, float, np.integer, np.floating)):  # bool is an int
            row.append(float(v))
        else:
            raise ModelInputError(
                f"{owner}: feature {name!r} is numerical, got {v!r}; pass a number or None"
            )
    return row


_CATEGORY_INDEXES: dict[int, tuple[Sequence[str], dict[str, float]]] = {}


def _category_index(cats: Sequence[str]) -> dict[str, float]:
    """``{category: code}`` of a model's category list, built once per list object."""
    cached = _CATEGORY_INDEXES.get(id(cats))
    if cached is not None and cached[0] is cats:
        return cached[1]
    index = {c: float(i) for i, c in enumerate(cats)}
    if len(_CATEGORY_INDEXES) > 256:
        _CATEGORY_INDEXES.clear()
    _CATEGORY_INDEXES[id(cats)] = (cats, index)  # holding `cats` keeps its id unique
    return index


def _encode_mapping(
    features: Mapping[str, Any],
    columns: Sequence[str],
    categories: Mapping[str, Sequence[str]],
    owner: str,
) -> np.ndarray:
    """The same encoding as for frames, in plain numpy: a request of a few rows stays fast."""
    cols, n = _mapping_columns(features, columns, owner)
    return _matrix(cols, n, columns, categories, owner)


def _matrix(
    cols: Sequence[Sequence[Any]],
    n: int,
    columns: Sequence[str],
    categories: Mapping[str, Sequence[str]],
    owner: str,
) -> np.ndarray:
    out = np.empty((n, len(columns)), dtype=np.float32)
    for j, (name, values) in enumerate(zip(columns, cols, strict=True)):
        out[:, j] = _encode_values(name, values, categories.get(name), owner)
    return out


def encode_rows(
    features: Mapping[str, Any],
    columns: Sequence[str],
    categories: Mapping[str, Sequence[str]],
    *,
    owner: str = "model",
) -> list[list[float]]:
    """:func:`encode_features` of a mapping as rows of Python floats holding float32 values.

    What :class:`fskit._trees.CompiledTrees` walks: the same values as the matrix, without
    building one (a request of one row pays microseconds, not a numpy round trip).

    >>> encode_rows({"x": [0.1, None], "c": ["b", "z"]}, ["x", "c"], {"c": ["a", "b"]})
    [[0.10000000149011612, 1.0], [nan, nan]]
    """
    cols, _ = _mapping_columns(features, columns, owner)
    return _rows(cols, columns, categories, owner)


def _rows(
    cols: Sequence[Sequence[Any]],
    columns: Sequence[str],
    categories: Mapping[str, Sequence[str]],
    owner: str,
) -> list[list[float]]:
    encoded = [
        _encode_values(name, values, categories.get(name), owner)
        for name, values in zip(columns, cols, strict=True)
    ]
    # array("f") rounds each float64 to float32, as XGBoost's float32 input does
    return [array("f", row).tolist() for row in zip(*encoded, strict=True)]


# ------------------------------------------------------------------------------ model version


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _from_iso(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version: where it lives and everything it was trained on.

    ``feature_columns`` are the model's input columns in order: first one per
    ``feature_refs`` (same order; named as ``get_historical_features`` named them), then the
    ``extra_columns`` (request-time fields such as ``"amount"``). ``views`` maps each feature
    view version the model reads (``"user_stats@v1"``) to the sha256 of its logic at training.
    """

    name: str
    version: int
    path: Path
    feature_refs: tuple[str, ...]
    feature_columns: tuple[str, ...]
    label: str
    metrics: dict[str, Any]
    created_at: datetime
    params: dict[str, Any]
    fingerprint: str
    categories: dict[str, list[str]]
    reference: dict[str, Any]
    library_versions: dict[str, str]
    # beyond the contract's fields:
    extra_columns: tuple[str, ...] = ()
    views: dict[str, str] = field(default_factory=dict)
    view_logic: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    window: dict[str, datetime | None] = field(default_factory=dict)
    feature_dtypes: dict[str, str] = field(default_factory=dict)
    importance: dict[str, float] = field(default_factory=dict)
    full_feature_names: bool = False
    n_rows: int = 0
    best_round: int = 0
    model_file: str = MODEL_FILE

    @property
    def ref(self) -> str:
        """``"fraud@v3"``."""
        return f"{self.name}@v{self.version}"

    @property
    def model_path(self) -> Path:
        return self.path / self.model_file

    def reference_profile(self) -> ReferenceProfile:
        """The stored reference statistics as a :class:`fskit.drift.ReferenceProfile`.

        It profiles every model input and the score (column ``"score"``) over the validation
        period; pass it to :func:`fskit.drift.compare` with a serving log.
        """
        from fskit.drift import ReferenceProfile

        return ReferenceProfile.from_dict(self.reference)

    def __repr__(self) -> str:
        auc = self.metrics.get("auc")
        auc_text = "?" if auc is None else f"{auc:.4f}"
        return (
            f"ModelVersion({self.ref!r}, label={self.label!r}, "
            f"features={len(self.feature_columns)}, auc={auc_text}, "
            f"created_at={self.created_at.isoformat(timespec='seconds')})"
        )

    def _repr_html_(self) -> str:
        metrics = [[k, f"{v:.4f}" if isinstance(v, float) else v] for k, v in self.metrics.items()]
        window = [[k, _iso(v) or "-"] for k, v in self.window.items()]
        inputs = [
            [
                c,
                self.feature_refs[i] if i < len(self.feature_refs) else "(extra column)",
                self.feature_dtypes.get(c, ""),
                f"{self.importance.get(c, 0.0):.1%}",
            ]
            for i, c in enumerate(self.feature_columns)
        ]
        return (
            f"<b>ModelVersion <code>{html.escape(self.ref)}</code></b> "
            f"label <code>{html.escape(self.label)}</code>, {self.n_rows:,} training rows, "
            f"data fingerprint <code>{self.fingerprint[:12]}</code>"
            + table(["metric", "value"], metrics)
            + table(["window", "UTC"], window)
            + table(["input column", "feature ref", "dtype", "importance"], inputs)
        )

    # -- persistence -----------------------------------------------------------------------
    def to_metadata(self) -> dict[str, Any]:
        """The ``metadata.json`` document (plain JSON types)."""
        return {
            "format": METADATA_FORMAT,
            "name": self.name,
            "version": self.version,
            "created_at": _iso(self.created_at),
            "label": self.label,
            "model_file": self.model_file,
            "feature_refs": list(self.feature_refs),
            "feature_columns": list(self.feature_columns),
            "extra_columns": list(self.extra_columns),
            "full_feature_names": self.full_feature_names,
            "feature_dtypes": self.feature_dtypes,
            "categories": self.categories,
            "feature_views": {
                ref: {"logic_sha256": sha, "logic": self.view_logic.get(ref)}
                for ref, sha in self.views.items()
            },
            "window": {k: _iso(v) for k, v in self.window.items()},
            "metrics": {  # NaN (e.g. AUC without positives) is not JSON: write null
                k: None if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in self.metrics.items()
            },
            "importance": self.importance,
            "params": self.params,
            "best_round": self.best_round,
            "training_data": {"sha256": self.fingerprint, "rows": self.n_rows},
            "library_versions": self.library_versions,
            "reference": self.reference,
        }

    @classmethod
    def from_metadata(cls, data: Mapping[str, Any], path: Path) -> ModelVersion:
        if data.get("format") != METADATA_FORMAT:
            raise ModelLoadError(
                f"{path / METADATA_FILE}: unknown model metadata format {data.get('format')!r}, "
                f"expected {METADATA_FORMAT!r}"
            )
        views = data["feature_views"]
        return cls(
            name=data["name"],
            version=int(data["version"]),
            path=path,
            feature_refs=tuple(data["feature_refs"]),
            feature_columns=tuple(data["feature_columns"]),
            label=data["label"],
            metrics=dict(data["metrics"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            params=dict(data["params"]),
            fingerprint=data["training_data"]["sha256"],
            categories={k: list(v) for k, v in data["categories"].items()},
            reference=data["reference"],
            library_versions=dict(data["library_versions"]),
            extra_columns=tuple(data["extra_columns"]),
            views={ref: v["logic_sha256"] for ref, v in views.items()},
            view_logic={ref: v["logic"] for ref, v in views.items()},
            window={k: _from_iso(v) for k, v in data["window"].items()},
            feature_dtypes=dict(data["feature_dtypes"]),
            importance=dict(data["importance"]),
            full_feature_names=bool(data["full_feature_names"]),
            n_rows=int(data["training_data"]["rows"]),
            best_round=int(data["best_round"]),
            model_file=data["model_file"],
        )


# ------------------------------------------------------------------------------ loaded model


class LoadedModel:
    """A model version ready to score: its booster and the encoding fixed at training.

    ``predict`` takes the inputs by name (``version.feature_columns``) from a polars frame or a
    mapping of column -> values (what ``get_online_features(..., return_type="dict")`` gives,
    plus request-time fields); other columns are ignored. It returns the probability of the
    positive class, one float64 per row.
    """

    def __init__(self, version: ModelVersion, booster: xgb.Booster) -> None:
        self.version = version
        self.booster = booster
        self._trees: CompiledTrees | None | bool = False  # False: not compiled yet

    @property
    def trees(self) -> CompiledTrees | None:
        """The trees compiled for scoring a few rows (``None`` when XGBoost must score)."""
        if self._trees is False:
            self._trees, _ = CompiledTrees.from_booster(self.booster)
        return self._trees  # type: ignore[return-value]

    @property
    def feature_columns(self) -> tuple[str, ...]:
        return self.version.feature_columns

    @property
    def feature_refs(self) -> tuple[str, ...]:
        return self.version.feature_refs

    def predict(self, features: pl.DataFrame | Mapping[str, Sequence[Any]]) -> np.ndarray:
        """Probability of the positive class for each row of ``features``."""
        version = self.version
        columns, categories = version.feature_columns, version.categories
        owner = f"model {version.ref!r}"
        trees = self.trees
        if isinstance(features, Mapping):  # the serving path: lists, no frame
            cols, n = _mapping_columns(features, columns, owner)
            if 0 < n <= SMALL_BATCH and trees is not None:
                rows = _rows(cols, columns, categories, owner)
                return np.asarray(trees.predict(rows), dtype=np.float64)
            x = _matrix(cols, n, columns, categories, owner)
        else:
            x = encode_features(features, columns, categories, owner=owner)
        if 0 < x.shape[0] <= SMALL_BATCH and trees is not None:
            return np.asarray(trees.predict(x.tolist()), dtype=np.float64)
        return predict_matrix(self.booster, x)

    def __repr__(self) -> str:
        return f"LoadedModel({self.version!r})"

    def _repr_html_(self) -> str:
        return self.version._repr_html_()


def predict_matrix(booster: xgb.Booster, x: np.ndarray) -> np.ndarray:
    """Scores of an encoded input matrix (see :func:`encode_features`), as float64."""
    if x.shape[0] == 0:
        return np.empty(0, dtype=np.float64)
    return np.asarray(booster.inplace_predict(x, validate_features=False), dtype=np.float64)


def load_booster(path: Path, nthread: int | None = None) -> xgb.Booster:
    import xgboost as xgb

    booster = xgb.Booster(model_file=str(path))
    if nthread is not None:
        booster.set_param({"nthread": nthread})
    return booster


# ---------------------------------------------------------------------------------- registry


def check_name(name: object) -> str:
    """A model name: ``^[a-z][a-z0-9_-]{0,63}$`` (it becomes a directory name)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise DefinitionError(
            f"model name must match ^[a-z][a-z0-9_-]{{0,63}}$ (lowercase letters, digits, '_' "
            f"and '-', starting with a letter), got {name!r}"
        )
    return name


def _check_version(version: object) -> int | None:
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise DefinitionError(f"model version must be an int >= 1 or None, got {version!r}")
    return version


class ModelRegistry:
    """The models of one feature repo, under ``<repo>/models``.

    Examples
    --------
    >>> import tempfile
    >>> import fskit as fk
    >>> registry = ModelRegistry(fk.FeatureStore(tempfile.mkdtemp()))
    >>> registry.list().columns
    ['name', 'version', 'created_at', 'auc', 'pr_auc', 'n_features', 'label', 'logloss']
    >>> registry.get("fraud")
    Traceback (most recent call last):
    ...
    fskit.models.ModelNotFoundError: no model named 'fraud' in .../models; registered models: []; train one and call result.register('fraud')
    """

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self.root = Path(store.repo_path) / MODELS_DIR

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.root)!r}, models={self.names()})"

    def _repr_html_(self) -> str:
        frame = self.list()
        rows = [
            [
                r["name"],
                r["version"],
                r["created_at"].isoformat(timespec="seconds"),
                "-" if r["auc"] is None else f"{r['auc']:.4f}",
                "-" if r["pr_auc"] is None else f"{r['pr_auc']:.4f}",
                r["n_features"],
                r["label"],
            ]
            for r in frame.iter_rows(named=True)
        ]
        return f"<b>ModelRegistry</b> <code>{html.escape(str(self.root))}</code>" + table(
            ["model", "version", "created", "auc", "pr_auc", "features", "label"], rows
        )

    # -- reading ---------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Names of the models with at least one version."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if _NAME.match(p.name) and self._versions(p.name)
        )

    def _versions(self, name: str) -> list[int]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        found = []
        for p in folder.iterdir():
            m = _VERSION_DIR.match(p.name)
            if m and (p / METADATA_FILE).is_file():
                found.append(int(m.group(1)))
        return sorted(found)

    def versions(self, name: str) -> list[int]:
        """The registered versions of model ``name``, ascending (empty if none)."""
        return self._versions(check_name(name))

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """The metadata of ``name`` at ``version`` (the latest when ``None``); no skew check."""
        versions = self.versions(name)
        version = _check_version(version)
        if not versions:
            raise ModelNotFoundError(
                f"no model named {name!r} in {self.root}; registered models: {self.names()}; "
                f"train one and call result.register({name!r})"
            )
        if version is None:
            version = versions[-1]
        elif version not in versions:
            raise ModelNotFoundError(
                f"model {name!r} has no version {version}; registered versions: {versions}"
            )
        path = self.root / name / f"v{version}"
        try:
            data = json.loads((path / METADATA_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read {path / METADATA_FILE}: {exc}") from None
        return ModelVersion.from_metadata(data, path)

    def list(self) -> pl.DataFrame:
        """One row per registered version: name, version, created_at, auc, pr_auc, ..."""
        rows = []
        for name in self.names():
            for version in self._versions(name):
                mv = self.get(name, version)
                rows.append(
                    {
                        "name": name,
                        "version": version,
                        "created_at": mv.created_at,
                        "auc": mv.metrics.get("auc"),
                        "pr_auc": mv.metrics.get("pr_auc"),
                        "n_features": len(mv.feature_columns),
                        "label": mv.label,
                        "logloss": mv.metrics.get("logloss"),
                    }
                )
        return pl.DataFrame(
            rows,
            schema={
                "name": pl.String,
                "version": pl.Int64,
                "created_at": pl.Datetime("us", "UTC"),
                "auc": pl.Float64,
                "pr_auc": pl.Float64,
                "n_features": pl.Int64,
                "label": pl.String,
                "logloss": pl.Float64,
            },
        )

    # -- the skew guard --------------------------------------------------------------------
    def check_views(self, model: ModelVersion) -> list[str]:
        """Problems that make ``model`` unsafe to serve from this repo's features (or ``[]``).

        Every feature view version the model reads must still be applied with the logic it
        had at training (same sha256 of ``FeatureView._logic()``).
        """
        from fskit.registry import _diff

        registry = self.store.registry
        problems = []
        for ref, sha in model.views.items():
            view_name, _, number = ref.rpartition("@v")
            version = int(number)
            used: Any = [r for r in model.feature_refs if r.startswith(f"{ref}:")]
            used = used or "the inputs of its on-demand features"
            versions = registry.versions(view_name)
            if not versions:
                problems.append(
                    f"feature view {view_name!r} no longer exists (the model reads {used} from "
                    f"{ref!r}); re-apply {ref!r} with its training definition, or retrain"
                )
                continue
            if version not in versions:
                problems.append(
                    f"feature view {ref!r} is no longer applied (applied versions of "
                    f"{view_name!r}: {versions}; the model reads {used}); re-apply {ref!r}, or "
                    f"retrain on {view_name}@v{versions[-1]}"
                )
                continue
            now = view_logic(registry, registry.get_feature_view(view_name, version))
            if logic_fingerprint(now) != sha:
                was = model.view_logic.get(ref)
                changes = "; ".join(_diff(was, now)) if was else "logic fingerprint differs"
                problems.append(
                    f"feature view {ref!r} changed since training ({changes}): it would serve "
                    "values computed differently from those the model learned from; restore "
                    "its definition, or retrain the model on the current view"
                )
        return problems

    def load(
        self, name: str, version: int | None = None, *, check_views: bool = True
    ) -> LoadedModel:
        """The model ``name`` at ``version`` (latest when ``None``), ready to ``predict``.

        Raises :class:`ModelLoadError` when a feature view version it was trained on is gone
        or changed (``check_views=False`` skips this skew guard, e.g. to inspect an old model).
        """
        mv = self.get(name, version)
        if check_views:
            problems = self.check_views(mv)
            if problems:
                raise ModelLoadError(
                    f"cannot load model {mv.ref!r}: the features it was trained on changed "
                    f"in {self.store.repo_path}:\n" + "\n".join(f"  - {p}" for p in problems)
                )
        if not mv.model_path.is_file():
            raise ModelLoadError(f"model {mv.ref!r}: the model file {mv.model_path} is missing")
        booster = load_booster(mv.model_path, mv.params.get("nthread"))
        return LoadedModel(mv, booster)

    # -- writing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def register(self, result: TrainResult, name: str) -> ModelVersion:
        """Store ``result`` as the next version of model ``name`` (1, 2, 3...)."""
        check_name(name)
        from fskit.training import TrainResult

        if not isinstance(result, TrainResult):
            raise DefinitionError(
                f"register: expected the TrainResult of fk.train(...), got {type(result).__name__}"
            )
        with self._lock():
            folder = self.root / name
            folder.mkdir(parents=True, exist_ok=True)
            existing = [
                int(m.group(1)) for p in folder.iterdir() if (m := _VERSION_DIR.match(p.name))
            ]
            version = max(existing, default=0) + 1
            target = folder / f"v{version}"
            tmp = folder / f".tmp-v{version}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            try:
                mv = _model_version(result, name, version, target)
                result.booster.save_model(str(tmp / MODEL_FILE))
                with open(tmp / MODEL_FILE, "rb") as fh:
                    os.fsync(fh.fileno())
                text = json.dumps(mv.to_metadata(), indent=2) + "\n"
                with open(tmp / METADATA_FILE, "w") as fh:
                    fh.write(text)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.rename(tmp, target)  # the commit point: readers see all of it or nothing
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return mv


def _model_version(result: TrainResult, name: str, version: int, path: Path) -> ModelVersion:
    return ModelVersion(
        name=name,
        version=version,
        path=path,
        feature_refs=tuple(result.feature_refs),
        feature_columns=tuple(result.feature_columns),
        label=result.label,
        metrics=dict(result.metrics),
        created_at=datetime.now(UTC),
        params=dict(result.params),
        fingerprint=result.fingerprint,
        categories={k: list(v) for k, v in result.categories.items()},
        reference=result.reference,
        library_versions=dict(result.library_versions),
        extra_columns=tuple(result.extra_columns),
        views={ref: logic_fingerprint(logic) for ref, logic in result.view_logic.items()},
        view_logic=dict(result.view_logic),
        window=dict(result.window),
        feature_dtypes=dict(result.feature_dtypes),
        importance=dict(zip(result.importance["feature"], result.importance["share"], strict=True)),
        full_feature_names=result.full_feature_names,
        n_rows=result.n_rows,
        best_round=result.best_round,
    )


# ------------------------------------------------------------------------------ batch scoring


def predict_batch(
    store: FeatureStore,
    model: str | LoadedModel,
    entity_df: Any,
    *,
    version: int | None = None,
    output: str | os.PathLike[str] | None = None,
    to_online: str | None = None,
    event_timestamp_column: str = "event_timestamp",
    as_of: datetime | None = None,
    as_known_at: bool = False,
    entities: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Score many entities at once from offline features (the batch predictions pattern).

    Each row of ``entity_df`` (the model's join keys, a timestamp and its extra columns, such
    as ``"amount"``) gets the model's features point-in-time correct as of its timestamp, then
    a score. Returns ``entity_df`` with ``"score"`` (float64) and ``"model_version"`` (int).

    Parameters
    ----------
    model
        A registered model name (loaded with the skew guard; ``version`` picks one) or a
        :class:`LoadedModel`.
    output
        Also write the result to this Parquet file (atomically).
    to_online
        Name of a feature view of precomputed predictions (``score``, ``model_version``),
        keyed by ``entities`` (default: the entities of the model's feature views): created
        and applied if missing, then the scores are pushed into it, online and offline, so
        ``store.get_online_features(["<to_online>:score"], ...)`` serves them.
    as_of
        Score every row as of this time (``entity_df`` then needs no timestamp column).
    as_known_at
        Passed to ``get_historical_features``: ignore feature rows created after each row's
        timestamp.
    """
    from fskit.offline import resolve_features

    if isinstance(model, LoadedModel):
        loaded = model
        if version is not None and version != loaded.version.version:
            raise DefinitionError(
                f"predict_batch: version={version} but the given model is "
                f"{loaded.version.ref!r}; pass the model's name to load another version"
            )
        problems = ModelRegistry(store).check_views(loaded.version)
        if problems:
            raise ModelLoadError(
                f"predict_batch: model {loaded.version.ref!r} cannot score with the current "
                "features:\n" + "\n".join(f"  - {p}" for p in problems)
            )
    elif isinstance(model, str):
        loaded = ModelRegistry(store).load(model, version)
    else:
        raise DefinitionError(
            f"predict_batch: model must be a model name or a LoadedModel, got "
            f"{type(model).__name__}"
        )
    mv = loaded.version
    frame = _as_polars(entity_df, "predict_batch", "entity_df")
    if isinstance(frame, pl.LazyFrame):
        frame = frame.collect()
    ts = event_timestamp_column
    if as_of is not None:
        if not isinstance(as_of, datetime):
            raise DefinitionError(f"predict_batch: as_of must be a datetime, got {as_of!r}")
        stamp = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
        frame = frame.with_columns(pl.lit(stamp).dt.convert_time_zone("UTC").alias(ts))

    views = {}
    for ref in mv.views:
        view_name, _, number = ref.rpartition("@v")
        views[ref] = store.get_feature_view(view_name, int(number))
    keys = list(dict.fromkeys(k for v in views.values() for k in v.join_keys))
    request = [
        f.name
        for v in views.values()
        for f in getattr(v, "request_schema", ())  # on-demand views' request fields
        if f.name not in keys
    ]
    request = list(dict.fromkeys(request))
    missing = [c for c in [*keys, *request, *mv.extra_columns] if c not in frame.columns]
    if ts not in frame.columns:
        missing.append(ts)
    if missing:
        raise ModelInputError(
            f"predict_batch: entity_df lacks column(s) {missing} needed by model {mv.ref!r} "
            f"(join keys {keys}, request fields {request}, extra columns "
            f"{list(mv.extra_columns)}, timestamp {ts!r}; pass as_of=datetime.now(UTC) to "
            "score everything as of one time)"
        )

    try:
        resolved = resolve_features(store.registry, list(mv.feature_refs))
    except FeatureRefError:  # the same feature name in two views: ask for view__feature
        resolved = resolve_features(store.registry, list(mv.feature_refs), full_feature_names=True)
    n_refs = len(mv.feature_refs)
    names = {r.column: c for r, c in zip(resolved, mv.feature_columns[:n_refs], strict=True)}
    full = any(r.column != r.feature for r in resolved)
    joined = store.get_historical_features(
        frame.select(*keys, *request, ts),
        list(mv.feature_refs),
        full_feature_names=full,
        event_timestamp_column=ts,
        as_known_at=as_known_at,
    )
    inputs = joined.select(pl.col(src).alias(dst) for src, dst in names.items())
    inputs = inputs.hstack(frame.select(mv.extra_columns)) if mv.extra_columns else inputs
    scores = loaded.predict(inputs)
    out = frame.with_columns(
        pl.Series(SCORE, scores, dtype=pl.Float64),
        pl.lit(mv.version, dtype=pl.Int64).alias(MODEL_VERSION),
    )
    if output is not None:
        _write_parquet_atomic(out, Path(output))
    if to_online is not None:
        _push_predictions(store, mv, out, to_online, ts, entities, views)
    return out


def _write_parquet_atomic(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        frame.write_parquet(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _push_predictions(
    store: FeatureStore,
    mv: ModelVersion,
    scored: pl.DataFrame,
    view_name: str,
    ts: str,
    entities: Sequence[str] | None,
    views: Mapping[str, Any],
) -> None:
    """Create (if needed) the predictions view ``view_name``, then push the scores into it."""
    from fskit.definitions import DataFrameSource, Entity, FeatureView, Field

    if entities is None:
        chosen: list[Entity] = []
        for view in views.values():
            for entity in getattr(view, "entities", ()):  # on-demand views have none
                if entity.name not in {c.name for c in chosen}:
                    chosen.append(entity)
    else:
        if isinstance(entities, str):
            entities = [entities]
        chosen = [store.get_entity(e if isinstance(e, str) else e.name) for e in entities]
    keys = list(dict.fromkeys(k for e in chosen for k in e.join_keys))
    missing = [k for k in keys if k not in scored.columns]
    if missing:
        raise ModelInputError(
            f"predict_batch(to_online={view_name!r}): entity_df lacks join key(s) {missing} "
            f"of entities {[e.name for e in chosen]}"
        )
    created = datetime.now(UTC)
    rows = scored.select(
        *keys,
        pl.col(ts).alias("event_timestamp"),
        pl.lit(created).dt.convert_time_zone("UTC").alias("created_timestamp"),
        pl.col(SCORE),
        pl.col(MODEL_VERSION),
    )
    if rows.schema["event_timestamp"] != pl.Datetime("us", "UTC"):
        from fskit.offline import _utc

        rows = rows.with_columns(
            _utc(pl.col("event_timestamp"), rows.schema["event_timestamp"])
            .dt.replace_time_zone("UTC")
            .alias("event_timestamp")
        )
    schema = [
        Field(SCORE, pl.Float64, description=f"probability of {mv.label!r}"),
        Field(MODEL_VERSION, pl.Int64, description=f"version of model {mv.name!r}"),
    ]
    wanted = FeatureView(
        name=view_name,
        entities=chosen,
        source=DataFrameSource(rows.clear(), created_timestamp_field="created_timestamp"),
        schema=schema,
        ttl=None,
        description=f"Precomputed predictions of model {mv.name!r} (fskit.predict_batch).",
        tags={"fskit.model": mv.name},
    )
    versions = store.registry.versions(view_name)
    if not versions:
        store.apply([*chosen, wanted])
        ref = f"{view_name}@v1"
    else:
        view = store.get_feature_view(view_name)
        if list(view.join_keys) != keys or list(view.feature_names) != [SCORE, MODEL_VERSION]:
            raise DefinitionError(
                f"predict_batch(to_online={view_name!r}): feature view {view.ref!r} exists with "
                f"join keys {list(view.join_keys)} and features {list(view.feature_names)}, but "
                f"the predictions need join keys {keys} and features {[SCORE, MODEL_VERSION]}; "
                "pick another to_online name"
            )
        ref = view.ref
    store.push(ref, rows, to="online_and_offline", now=created)
