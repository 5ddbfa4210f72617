"""Feature drift and data quality: reference vs current, per feature, per dataset, over time.

Works on any two polars frames (``DataFrame`` or ``LazyFrame``; pandas is converted), or on a
stored :class:`ReferenceProfile` (what a model artifact keeps of its training data) against a
frame such as the server's prediction log.

What is computed, per feature
-----------------------------
* **numerical** (any numeric dtype): the two-sample Kolmogorov-Smirnov statistic and p-value,
  equal to ``scipy.stats.ks_2samp`` (exact up to 10,000 values a side, asymptotic above); the
  normalized Wasserstein distance ``W1 / std(reference)`` (std floored at 0.001, as Evidently
  does) and the PSI on 10 reference-quantile bins — effect sizes that do not grow with n;
* **categorical** (string, categorical, enum, boolean, or named in ``categorical=``): the
  chi-square test of homogeneity (2 x K table, no continuity correction) and the PSI; the
  categories of the current data never seen in the reference;
* **quality**: null and NaN rates, the share of current values outside the reference range,
  constant columns, dtype changes, features missing from the current data.

Nulls and NaNs never enter a test; they are counted in the quality columns.

The decision rule (``DriftConfig(numerical_method="auto")``, as Evidently does)
-------------------------------------------------------------------------------
With few values a distance is noisy, so a test decides; with many values every test rejects for
a negligible shift, so an effect size decides:

==================  =================================  ==================================
smaller sample      numerical                          categorical
==================  =================================  ==================================
<= 1000 values      K-S p-value < 0.05                 chi-square p-value < 0.05
> 1000 values       Wasserstein / std >= 0.1           PSI >= 0.1
==================  =================================  ==================================

Evidently looks at the reference size only; fskit looks at the smaller of the two samples, so a
small current window compared with a large reference still gets a test whose false-alarm rate is
the nominal 5%. ``numerical_method=`` / ``categorical_method=`` force one criterion.

Dataset drift: the share of tested features that drifted, ``>= DriftConfig.drift_share``.

Results are polars frames that code can alert on (``report.features.filter(pl.col("drifted"))``)
and the charts (:mod:`fskit.charts`, altair) are drawn from small aggregates kept in the report,
never from the raw rows.

Example
-------
>>> import polars as pl
>>> from fskit import drift
>>> ref = pl.DataFrame({"amount": [float(i % 50) for i in range(400)], "country": ["fr", "de"] * 200})
>>> cur = pl.DataFrame({"amount": [float(i % 50) + 30 for i in range(400)], "country": ["fr", "it"] * 200})
>>> report = drift.compare(ref, cur)
>>> report.features.select("feature", "kind", "method", "drifted", "new_categories")
shape: (2, 5)
┌─────────┬─────────────┬────────┬─────────┬────────────────┐
│ feature ┆ kind        ┆ method ┆ drifted ┆ new_categories │
│ ---     ┆ ---         ┆ ---    ┆ ---     ┆ ---            │
│ str     ┆ str         ┆ str    ┆ bool    ┆ list[str]      │
╞═════════╪═════════════╪════════╪═════════╪════════════════╡
│ amount  ┆ numerical   ┆ ks     ┆ true    ┆ []             │
│ country ┆ categorical ┆ chi2   ┆ true    ┆ ["it"]         │
└─────────┴─────────────┴────────┴─────────┴────────────────┘
>>> report.dataset_drift, report.drift_share
(True, 1.0)
"""

from __future__ import annotations

import html
import math
import os
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from fskit import _drift_stats as _st
from fskit.errors import DefinitionError, FskitError, SchemaError

if TYPE_CHECKING:
    import altair as alt

__all__ = [
    "DriftConfig",
    "DriftReport",
    "ReferenceProfile",
    "compare",
    "over_time",
    "prediction_drift",
    "profile",
    "quality_over_time",
]

FrameLike = Any  # pl.DataFrame | pl.LazyFrame | pandas.DataFrame

NUMERICAL_METHODS = ("auto", "ks", "wasserstein", "psi")
CATEGORICAL_METHODS = ("auto", "chi2", "psi")
P_VALUE_METHODS = ("ks", "chi2")

#: Quality issues a feature can carry in ``DriftReport.features["issues"]``.
ISSUES = (
    "missing",  # the feature is not in the current data
    "empty",  # no non-null value in the current data
    "type_change",  # the current dtype differs from the reference dtype
    "null_rate",  # null + NaN rate grew by more than max_null_rate_increase
    "out_of_range",  # share outside the reference [min, max] above max_out_of_range_share
    "new_categories",  # share of unseen categories above max_new_category_share
    "constant",  # one distinct value in the current data, several in the reference
)

_HIST_BINS = 40  # histogram bins in feature charts
_ECDF_POINTS = 200  # order statistics per sample drawn in ECDF charts
_TOP_CATEGORIES = 20  # categories drawn in a categorical chart; the rest are "(other)"
_MAX_NEW_LISTED = 100  # new categories listed per feature (n_new_categories counts them all)
_STD_FLOOR = 1e-3  # Evidently's floor for the Wasserstein normalization


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DriftConfig:
    """Thresholds for drift and quality checks. Every field has a sensible default.

    Parameters
    ----------
    small_sample_size
        ``"auto"`` methods use a p-value test when the smaller sample has at most this many
        values, and a distance above it (Evidently's cut-over, 1000).
    numerical_method
        ``"auto"``, ``"ks"`` (p-value), ``"wasserstein"`` (normalized distance) or ``"psi"``.
    categorical_method
        ``"auto"``, ``"chi2"`` (p-value) or ``"psi"``.
    ks_p_value, chi2_p_value
        A feature drifted when the test's p-value is below this.
    wasserstein_threshold, psi_threshold
        A feature drifted when the distance is at least this.
    psi_bins
        Reference-quantile bins for the PSI of numerical features.
    drift_share
        The dataset drifted when at least this share of the tested features drifted.
    range_margin
        Widen the reference ``[min, max]`` by this fraction of its width on each side before
        counting current values as out of range.
    max_out_of_range_share, max_null_rate_increase, max_new_category_share
        Quality issues are raised above these (rates are shares of rows, 0..1).

    Examples
    --------
    >>> DriftConfig(psi_threshold=0.2).psi_threshold
    0.2
    >>> DriftConfig(ks_p_value=5)
    Traceback (most recent call last):
    ...
    fskit.errors.DefinitionError: DriftConfig.ks_p_value must be a probability strictly between 0 and 1, got 5; for 5% write 0.05
    """

    small_sample_size: int = 1000
    numerical_method: str = "auto"
    categorical_method: str = "auto"
    ks_p_value: float = 0.05
    chi2_p_value: float = 0.05
    wasserstein_threshold: float = 0.1
    psi_threshold: float = 0.1
    psi_bins: int = 10
    drift_share: float = 0.5
    range_margin: float = 0.0
    max_out_of_range_share: float = 0.01
    max_null_rate_increase: float = 0.05
    max_new_category_share: float = 0.0

    def __post_init__(self) -> None:
        def fail(name: str, expected: str, fix: str = "") -> None:
            value = getattr(self, name)
            msg = f"DriftConfig.{name} must be {expected}, got {value!r}"
            raise DefinitionError(msg + (f"; {fix}" if fix else ""))

        def is_number(value: object) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool)

        for name in ("small_sample_size", "psi_bins"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                fail(name, "a non-negative integer")
        if self.psi_bins < 2:
            fail("psi_bins", "an integer >= 2")
        if self.numerical_method not in NUMERICAL_METHODS:
            fail("numerical_method", f"one of {NUMERICAL_METHODS}")
        if self.categorical_method not in CATEGORICAL_METHODS:
            fail("categorical_method", f"one of {CATEGORICAL_METHODS}")
        for name in ("ks_p_value", "chi2_p_value"):
            value = getattr(self, name)
            if not is_number(value) or not 0 < value < 1:
                fail(name, "a probability strictly between 0 and 1", "for 5% write 0.05")
        for name in ("wasserstein_threshold", "psi_threshold"):
            value = getattr(self, name)
            if not is_number(value) or not (value > 0 and math.isfinite(value)):
                fail(name, "a positive number")
        if not is_number(self.drift_share) or not 0 < self.drift_share <= 1:
            fail("drift_share", "a share in (0, 1]", "0.5 means half of the features")
        if not is_number(self.range_margin) or not (
            self.range_margin >= 0 and math.isfinite(self.range_margin)
        ):
            fail("range_margin", "a non-negative number (a fraction of the reference range)")
        for name in ("max_out_of_range_share", "max_null_rate_increase", "max_new_category_share"):
            value = getattr(self, name)
            if not is_number(value) or not 0 <= value <= 1:
                fail(name, "a share in [0, 1]")

    def threshold(self, method: str) -> float:
        """The threshold that ``method`` (``"ks"``, ``"chi2"``, ``"wasserstein"``, ``"psi"``) uses."""
        return {
            "ks": self.ks_p_value,
            "chi2": self.chi2_p_value,
            "wasserstein": self.wasserstein_threshold,
            "psi": self.psi_threshold,
        }[method]


# --------------------------------------------------------------------------------------------
# Reference profiles: what is kept of one side
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class _Column:
    """One feature of one side: counts for quality, sorted values or category counts."""

    name: str
    dtype: str
    kind: str
    n_rows: int
    n_null: int
    n_nan: int
    values: np.ndarray | None = None  # numerical: sorted valid values (maybe a sketch)
    categories: pl.DataFrame | None = None  # categorical: (category: str, count: i64)
    minimum: float | None = None
    maximum: float | None = None
    std: float | None = None
    polars_dtype: pl.DataType | None = field(default=None, compare=False)

    @property
    def n_valid(self) -> int:
        """Values entering the tests (the stored values for a sketched profile)."""
        if self.values is not None:
            return int(self.values.shape[0])
        if self.categories is not None:
            return int(self.categories["count"].sum())
        return 0

    @property
    def constant(self) -> bool:
        if self.values is not None:
            return self.values.shape[0] > 1 and self.values[0] == self.values[-1]
        if self.categories is not None:
            return self.categories.height == 1 and self.n_valid > 1
        return False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dtype": self.dtype,
            "kind": self.kind,
            "n_rows": self.n_rows,
            "n_null": self.n_null,
            "n_nan": self.n_nan,
        }
        if self.values is not None:
            out.update(
                values=self.values.tolist(),
                minimum=self.minimum,
                maximum=self.maximum,
                std=self.std,
            )
        if self.categories is not None:
            out["categories"] = dict(
                zip(
                    self.categories["category"].to_list(),
                    self.categories["count"].to_list(),
                    strict=True,
                )
            )
        return out

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> _Column:
        values = data.get("values")
        cats = data.get("categories")
        return cls(
            name=name,
            dtype=data["dtype"],
            kind=data["kind"],
            n_rows=int(data["n_rows"]),
            n_null=int(data["n_null"]),
            n_nan=int(data["n_nan"]),
            values=None if values is None else np.sort(np.asarray(values, dtype=np.float64)),
            categories=None if cats is None else _category_frame(cats.keys(), cats.values()),
            minimum=data.get("minimum"),
            maximum=data.get("maximum"),
            std=data.get("std"),
        )


def _category_frame(categories: Iterable[str], counts: Iterable[int]) -> pl.DataFrame:
    return pl.DataFrame(
        {"category": list(categories), "count": list(counts)},
        schema={"category": pl.String, "count": pl.Int64},
    )


@dataclass(frozen=True, repr=False)
class ReferenceProfile:
    """What drift checks need of a reference data set, computed once, storable as JSON.

    Build it with :func:`profile`; pass it as ``reference`` to :func:`compare` or
    :func:`over_time`. A model artifact stores ``profile.to_dict()`` (plain JSON types) and
    restores it with :meth:`from_dict`. With ``max_values``, each numerical feature keeps that
    many evenly spaced order statistics instead of every value (the K-S test then uses them as
    the reference sample); counts, null/NaN rates, min, max and std stay exact.
    """

    columns: Mapping[str, _Column]
    n_rows: int

    @property
    def features(self) -> tuple[str, ...]:
        """The profiled feature names, in order."""
        return tuple(self.columns)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (lists, numbers, strings) for a model artifact."""
        return {
            "format": "fskit.drift.ReferenceProfile/1",
            "n_rows": self.n_rows,
            "columns": {name: col.to_dict() for name, col in self.columns.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_dict` output."""
        fmt = data.get("format") if isinstance(data, Mapping) else None
        if fmt != "fskit.drift.ReferenceProfile/1":
            msg = (
                f"ReferenceProfile.from_dict expects the output of ReferenceProfile.to_dict() "
                f"(format 'fskit.drift.ReferenceProfile/1'), got format {fmt!r}"
            )
            raise DefinitionError(msg)
        cols = {name: _Column.from_dict(name, c) for name, c in data["columns"].items()}
        return cls(columns=cols, n_rows=int(data["n_rows"]))

    def __repr__(self) -> str:
        kinds = [c.kind for c in self.columns.values()]
        return (
            f"ReferenceProfile({self.n_rows} rows, {kinds.count('numerical')} numerical and "
            f"{kinds.count('categorical')} categorical features: {list(self.columns)})"
        )


def _to_frame(data: FrameLike, what: str) -> pl.DataFrame | pl.LazyFrame:
    if isinstance(data, (pl.DataFrame, pl.LazyFrame)):
        return data
    if type(data).__module__.split(".")[0] == "pandas":
        return pl.from_pandas(data)
    msg = (
        f"{what} must be a polars DataFrame or LazyFrame (or a pandas DataFrame), "
        f"got {type(data).__name__}; convert it with pl.DataFrame(...)"
    )
    raise FskitError(msg)


def _names(value: str | Sequence[str] | None, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    names = list(value)
    bad = [v for v in names if not isinstance(v, str)]
    if bad:
        msg = f"{what} must be column names (strings), got {bad[0]!r}"
        raise DefinitionError(msg)
    return names


def _is_categorical_dtype(dtype: pl.DataType) -> bool:
    return dtype in (pl.String, pl.Categorical, pl.Enum, pl.Boolean)


def _kind_of(name: str, dtype: pl.DataType, categorical: set[str], explicit: bool) -> str | None:
    """The kind a reference column is tested as; ``None`` skips it (auto-selected only)."""
    if name in categorical:
        return "categorical"
    if dtype.is_numeric() or dtype == pl.Null:
        return "numerical"
    if _is_categorical_dtype(dtype):
        return "categorical"
    if dtype.is_temporal():
        return "numerical" if explicit else None  # timestamps drift by construction
    if explicit:
        msg = (
            f"feature {name!r} has dtype {dtype}, which drift checks cannot test; "
            "expected a numeric, string, categorical, enum, boolean or temporal column"
        )
        raise SchemaError(msg)
    return None


def _numeric_expr(name: str, dtype: pl.DataType, ref_dtype: pl.DataType | None) -> pl.Expr:
    col = pl.col(name)
    target = ref_dtype if ref_dtype is not None else dtype
    if target.is_temporal():
        if dtype != target:
            col = col.cast(target, strict=False)
        return col.to_physical().cast(pl.Float64)
    if dtype.is_numeric() or dtype in (pl.Boolean, pl.Null):
        return col.cast(pl.Float64)
    return col.cast(pl.String, strict=False).cast(pl.Float64, strict=False)


def _profile_columns(
    frame: pl.DataFrame,
    specs: Sequence[tuple[str, str]],
    ref_dtypes: Mapping[str, pl.DataType] | None = None,
    max_values: int | None = None,
    *,
    with_std: bool = True,
) -> dict[str, _Column]:
    """Profile ``frame``'s columns ``specs`` [(name, kind)]; one parallel polars pass.

    ``with_std=False`` skips the standard deviation, which only the reference needs.
    """
    schema = frame.schema
    ref_dtypes = ref_dtypes or {}
    num = [name for name, kind in specs if kind == "numerical"]
    cat = [name for name, kind in specs if kind == "categorical"]
    n_rows = frame.height

    num_exprs = {n: _numeric_expr(n, schema[n], ref_dtypes.get(n)).alias(n) for n in num}
    counts: dict[str, tuple[int, int]] = {}
    if specs:
        stats = frame.select(
            *[e.null_count().alias(f"{n}\0null") for n, e in num_exprs.items()],
            *[e.is_nan().sum().alias(f"{n}\0nan") for n, e in num_exprs.items()],
            *[
                (
                    e.filter(e.is_finite()).std(ddof=0) if with_std else pl.lit(None, pl.Float64)
                ).alias(f"{n}\0std")
                for n, e in num_exprs.items()
            ],
            *[pl.col(n).null_count().alias(f"{n}\0null") for n in cat],
            *[
                (pl.col(n).is_nan().sum() if schema[n].is_float() else pl.lit(0))
                .alias(f"{n}\0nan")
                .cast(pl.Int64)
                for n in cat
            ],
        ).row(0, named=True)
        counts = {n: (int(stats[f"{n}\0null"]), int(stats[f"{n}\0nan"])) for n, _ in specs}
        stds = {n: stats[f"{n}\0std"] for n in num}

    out: dict[str, _Column] = {}
    if num:
        # NaN sorts after every number and nulls go last: the valid values are a prefix.
        ordered = frame.select(e.sort(nulls_last=True) for e in num_exprs.values())
        for name in num:
            n_null, n_nan = counts[name]
            n_valid = n_rows - n_null - n_nan
            values = ordered[name].slice(0, n_valid).to_numpy()
            out[name] = _numerical_column(
                name, schema[name], n_rows, n_null, n_nan, values, stds[name], max_values
            )
    for name in cat:
        n_null, n_nan = counts[name]
        col = pl.col(name)
        if schema[name].is_float():
            col = col.filter(~col.is_nan())
        vc = (
            frame.select(col.cast(pl.String).alias("category"))
            .drop_nulls()
            .group_by("category")
            .len(name="count")
            .with_columns(pl.col("count").cast(pl.Int64))
            .sort(["count", "category"], descending=[True, False])
        )
        out[name] = _Column(
            name=name,
            dtype=str(schema[name]),
            kind="categorical",
            n_rows=n_rows,
            n_null=n_null,
            n_nan=n_nan,
            categories=vc,
            polars_dtype=schema[name],
        )
    return {name: out[name] for name, _ in specs}


def _numerical_column(
    name: str,
    dtype: pl.DataType,
    n_rows: int,
    n_null: int,
    n_nan: int,
    values: np.ndarray,
    std: float | None,
    max_values: int | None,
) -> _Column:
    values = np.ascontiguousarray(values, dtype=np.float64)
    minimum = float(values[0]) if values.shape[0] else None
    maximum = float(values[-1]) if values.shape[0] else None
    if max_values is not None and values.shape[0] > max_values:
        idx = np.round(np.linspace(0, values.shape[0] - 1, max_values)).astype(np.int64)
        values = values[idx]
    return _Column(
        name=name,
        dtype=str(dtype),
        kind="numerical",
        n_rows=n_rows,
        n_null=n_null,
        n_nan=n_nan,
        values=values,
        minimum=minimum,
        maximum=maximum,
        std=std,
        polars_dtype=dtype,
    )


def _finite(sorted_values: np.ndarray) -> np.ndarray:
    """The finite part of a sorted array (a view: infinities sit at both ends)."""
    lo = np.searchsorted(sorted_values, -np.inf, side="right")
    hi = np.searchsorted(sorted_values, np.inf, side="left")
    return sorted_values[lo:hi]


def _select_specs(
    schema: Mapping[str, pl.DataType],
    features: list[str] | None,
    categorical: list[str] | None,
    exclude: Iterable[str] = (),
) -> list[tuple[str, str]]:
    cats = set(categorical or ())
    unknown = [c for c in cats if c not in schema]
    if unknown:
        msg = f"categorical= names {unknown[0]!r}, which is not a column of the reference; columns: {list(schema)}"
        raise SchemaError(msg)
    if features is None:
        excluded = set(exclude)
        specs = []
        for name, dtype in schema.items():
            if name in excluded:
                continue
            kind = _kind_of(name, dtype, cats, explicit=False)
            if kind is not None:
                specs.append((name, kind))
        return specs
    missing = [f for f in features if f not in schema]
    if missing:
        msg = (
            f"feature {missing[0]!r} is not a column of the reference data; columns: {list(schema)}"
        )
        raise SchemaError(msg)
    return [(f, _kind_of(f, schema[f], cats, explicit=True) or "numerical") for f in features]


def profile(
    reference: FrameLike,
    *,
    features: str | Sequence[str] | None = None,
    categorical: str | Sequence[str] | None = None,
    max_values: int | None = None,
) -> ReferenceProfile:
    """Profile a reference data set once, for repeated or stored drift checks.

    Parameters
    ----------
    reference
        Polars DataFrame or LazyFrame (pandas accepted).
    features
        Columns to profile; default: every numeric, string, categorical, enum and boolean column.
    categorical
        Columns to treat as categorical whatever their dtype (e.g. integer codes).
    max_values
        Keep at most this many evenly spaced order statistics per numerical feature, so that
        the profile stays small enough to store next to a model. ``None`` keeps every value.

    Examples
    --------
    >>> import polars as pl
    >>> p = profile(pl.DataFrame({"x": [1.0, 2.0, None], "c": ["a", "b", "a"]}))
    >>> p
    ReferenceProfile(3 rows, 1 numerical and 1 categorical features: ['x', 'c'])
    >>> ReferenceProfile.from_dict(p.to_dict()).columns["c"].categories.rows()
    [('a', 2), ('b', 1)]
    """
    if max_values is not None and (
        not isinstance(max_values, int) or isinstance(max_values, bool) or max_values < 2
    ):
        msg = f"profile(max_values=...) must be an integer >= 2 or None, got {max_values!r}"
        raise DefinitionError(msg)
    frame = _to_frame(reference, "reference")
    schema = frame.collect_schema()
    specs = _select_specs(schema, _names(features, "features"), _names(categorical, "categorical"))
    if isinstance(frame, pl.LazyFrame):
        frame = frame.select([n for n, _ in specs]).collect()
    cols = _profile_columns(frame, specs, max_values=max_values)
    return ReferenceProfile(columns=cols, n_rows=frame.height)


# --------------------------------------------------------------------------------------------
# Per-feature comparison
# --------------------------------------------------------------------------------------------

_SCHEMA: dict[str, pl.DataType] = {
    "feature": pl.String(),
    "kind": pl.String(),
    "drifted": pl.Boolean(),
    "method": pl.String(),
    "drift_score": pl.Float64(),
    "threshold": pl.Float64(),
    "severity": pl.Float64(),
    "test": pl.String(),
    "statistic": pl.Float64(),
    "p_value": pl.Float64(),
    "wasserstein_norm": pl.Float64(),
    "psi": pl.Float64(),
    "ks_location": pl.Float64(),
    "n_ref": pl.Int64(),
    "n_cur": pl.Int64(),
    "null_rate_ref": pl.Float64(),
    "null_rate_cur": pl.Float64(),
    "nan_rate_ref": pl.Float64(),
    "nan_rate_cur": pl.Float64(),
    "out_of_range_share": pl.Float64(),
    "n_new_categories": pl.Int64(),
    "new_category_share": pl.Float64(),
    "new_categories": pl.List(pl.String()),
    "constant": pl.Boolean(),
    "dtype_ref": pl.String(),
    "dtype_cur": pl.String(),
    "type_change": pl.Boolean(),
    "issues": pl.List(pl.String()),
}

#: The quality columns of ``DriftReport.features`` (``DriftReport.quality`` selects them).
QUALITY_COLUMNS = (
    "feature",
    "kind",
    "n_cur",
    "null_rate_ref",
    "null_rate_cur",
    "nan_rate_ref",
    "nan_rate_cur",
    "out_of_range_share",
    "n_new_categories",
    "new_category_share",
    "new_categories",
    "constant",
    "dtype_ref",
    "dtype_cur",
    "type_change",
    "issues",
)


@dataclass(frozen=True)
class FeatureSummary:
    """Small aggregates of one feature, drawn by :mod:`fskit.charts` (never raw rows).

    ``hist`` (bin_start, bin_end, sample, share) and ``ecdf`` (x, sample, ecdf) for numerical
    features, with ``ks`` = {x, ecdf_reference, ecdf_current, statistic, p_value}; ``bars``
    (category, sample, share, new) for categorical ones.
    """

    feature: str
    kind: str
    row: Mapping[str, Any]
    hist: pl.DataFrame | None = None
    ecdf: pl.DataFrame | None = None
    ks: Mapping[str, float] | None = None
    bars: pl.DataFrame | None = None


def _rate(count: int, total: int) -> float | None:
    return count / total if total else None


def _base_row(name: str, ref: _Column, cur: _Column | None) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(_SCHEMA)
    row.update(
        feature=name,
        kind=ref.kind,
        n_ref=ref.n_valid,
        n_cur=cur.n_valid if cur is not None else 0,
        null_rate_ref=_rate(ref.n_null, ref.n_rows),
        nan_rate_ref=_rate(ref.n_nan, ref.n_rows),
        dtype_ref=ref.dtype,
        new_categories=[],
        constant=False,
        type_change=False,
    )
    if cur is not None:
        row.update(
            null_rate_cur=_rate(cur.n_null, cur.n_rows),
            nan_rate_cur=_rate(cur.n_nan, cur.n_rows),
            dtype_cur=cur.dtype,
            type_change=cur.dtype != ref.dtype,
            constant=cur.constant,
        )
    return row


def _decide(row: dict[str, Any], method: str, config: DriftConfig) -> None:
    threshold = config.threshold(method)
    if method in P_VALUE_METHODS:
        score = row["p_value"]
        drifted = score < threshold
    else:
        score = row["wasserstein_norm"] if method == "wasserstein" else row["psi"]
        drifted = score >= threshold
    row.update(
        method=method,
        drift_score=score,
        threshold=threshold,
        drifted=bool(drifted),
        severity=_st.severity(score, threshold, p_value=method in P_VALUE_METHODS),
    )


def _issues(row: dict[str, Any], ref: _Column, cur: _Column | None, config: DriftConfig) -> list:
    if cur is None:
        return ["missing"]
    issues = []
    if row["n_cur"] == 0:
        issues.append("empty")
    if row["type_change"]:
        issues.append("type_change")
    bad_ref = (ref.n_null + ref.n_nan) / ref.n_rows if ref.n_rows else 0.0
    bad_cur = (cur.n_null + cur.n_nan) / cur.n_rows if cur.n_rows else 0.0
    if bad_cur - bad_ref > config.max_null_rate_increase:
        issues.append("null_rate")
    if (row["out_of_range_share"] or 0.0) > config.max_out_of_range_share:
        issues.append("out_of_range")
    if (row["new_category_share"] or 0.0) > config.max_new_category_share:
        issues.append("new_categories")
    if row["constant"] and not ref.constant:
        issues.append("constant")
    return issues


def _compare_numerical(
    ref: _Column, cur: _Column, config: DriftConfig
) -> tuple[dict[str, Any], FeatureSummary]:
    row = _base_row(ref.name, ref, cur)
    row["test"] = "ks"
    a, b = ref.values, cur.values
    assert a is not None and b is not None
    n, m = a.shape[0], b.shape[0]
    ks = None
    if n and m:
        ks = _st.ks_2samp_sorted(a, b)
        std = ref.std if ref.std is not None else 0.0
        row.update(
            statistic=ks.statistic,
            p_value=ks.p_value,
            ks_location=ks.location,
            wasserstein_norm=ks.wasserstein / max(std, _STD_FLOOR),
            psi=_st.numerical_psi(a, b, config.psi_bins),
        )
        method = config.numerical_method
        if method == "auto":
            method = "ks" if min(n, m) <= config.small_sample_size else "wasserstein"
        _decide(row, method, config)
    if m and ref.minimum is not None and ref.maximum is not None:
        margin = config.range_margin * (ref.maximum - ref.minimum)
        below = np.searchsorted(b, ref.minimum - margin, side="left")
        above = m - np.searchsorted(b, ref.maximum + margin, side="right")
        row["out_of_range_share"] = float(below + above) / m
    row["issues"] = _issues(row, ref, cur, config)
    return row, _numerical_summary(ref.name, row, a, b, ks)


def _numerical_summary(
    name: str, row: dict[str, Any], a: np.ndarray, b: np.ndarray, ks: _st.KSResult | None
) -> FeatureSummary:
    samples = [(s, _finite(v)) for s, v in (("reference", a), ("current", b))]
    samples = [(s, v) for s, v in samples if v.shape[0]]
    hist = ecdf = None
    if samples:
        lo = min(float(v[0]) for _, v in samples)
        hi = max(float(v[-1]) for _, v in samples)
        if hi == lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, _HIST_BINS + 1)
        parts, grids = [], []
        for sample, v in samples:
            cum = np.searchsorted(v, edges, side="left")
            cum[-1] = v.shape[0]  # last bin is closed on the right
            counts = np.diff(cum)
            parts.append(
                pl.DataFrame(
                    {
                        "bin_start": edges[:-1],
                        "bin_end": edges[1:],
                        "sample": sample,
                        "share": counts / v.shape[0],
                    }
                )
            )
            k = min(_ECDF_POINTS, v.shape[0])
            grids.append(v[np.round(np.linspace(0, v.shape[0] - 1, k)).astype(np.int64)])
        hist = pl.concat(parts)
        if ks is not None and math.isfinite(ks.location):
            grids.append(np.array([ks.location]))
        grid = np.unique(np.concatenate(grids))
        ecdf = pl.concat(
            pl.DataFrame({"x": grid, "sample": sample, "ecdf": _st.ecdf_at(v, grid)})
            for sample, v in (("reference", a), ("current", b))
            if v.shape[0]
        )
    ks_point = None
    if ks is not None:
        ks_point = {
            "x": ks.location,
            "ecdf_reference": float(_st.ecdf_at(a, ks.location)),
            "ecdf_current": float(_st.ecdf_at(b, ks.location)),
            "statistic": ks.statistic,
            "p_value": ks.p_value,
        }
    return FeatureSummary(name, "numerical", row, hist=hist, ecdf=ecdf, ks=ks_point)


def _compare_categorical(
    ref: _Column, cur: _Column, config: DriftConfig
) -> tuple[dict[str, Any], FeatureSummary]:
    row = _base_row(ref.name, ref, cur)
    row["test"] = "chi2"
    assert ref.categories is not None and cur.categories is not None
    table = (
        ref.categories.rename({"count": "ref"})
        .join(cur.categories.rename({"count": "cur"}), on="category", how="full", coalesce=True)
        .with_columns(pl.col("ref", "cur").fill_null(0))
        .sort(["ref", "cur", "category"], descending=[True, True, False])
    )
    n, m = ref.n_valid, cur.n_valid
    new = table.filter((pl.col("ref") == 0) & (pl.col("cur") > 0)).sort(
        ["cur", "category"], descending=[True, False]
    )
    row.update(
        n_new_categories=new.height,
        new_categories=new["category"].head(_MAX_NEW_LISTED).to_list(),
        new_category_share=float(new["cur"].sum()) / m if m else None,
    )
    if n and m:
        rc = table["ref"].to_numpy()
        cc = table["cur"].to_numpy()
        stat, p = _st.chi2_homogeneity(rc, cc)
        row.update(statistic=stat, p_value=p, psi=_st.counts_psi(rc, cc))
        method = config.categorical_method
        if method == "auto":
            method = "chi2" if min(n, m) <= config.small_sample_size else "psi"
        _decide(row, method, config)
    row["issues"] = _issues(row, ref, cur, config)

    shares = table.with_columns(
        (pl.col("ref") / max(n, 1)).alias("reference"),
        (pl.col("cur") / max(m, 1)).alias("current"),
        ((pl.col("ref") == 0) & (pl.col("cur") > 0)).alias("new"),
    )
    # Drawn: the new categories (up to half the slots), then the largest; by reference share.
    top = shares.sort(
        pl.col("new") & (pl.col("new").cum_sum() <= _TOP_CATEGORIES // 2),
        pl.max_horizontal("reference", "current"),
        "category",
        descending=[True, True, False],
    )
    head, rest = top.head(_TOP_CATEGORIES), top.slice(_TOP_CATEGORIES)
    head = head.sort(["reference", "current", "category"], descending=[True, True, False])
    if rest.height:
        other = pl.DataFrame(
            {
                "category": [f"(other {rest.height})"],
                "reference": [rest["reference"].sum()],
                "current": [rest["current"].sum()],
                "new": [False],
            }
        )
        head = pl.concat([head.select(other.columns), other])
    bars = head.select("category", "reference", "current", "new").unpivot(
        index=["category", "new"], variable_name="sample", value_name="share"
    )
    return row, FeatureSummary(ref.name, "categorical", row, bars=bars)


def _missing(ref: _Column) -> tuple[dict[str, Any], FeatureSummary]:
    row = _base_row(ref.name, ref, None)
    row["issues"] = ["missing"]
    return row, FeatureSummary(ref.name, ref.kind, row)


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class DriftReport:
    """The result of :func:`compare`: one row per feature, dataset-level verdict, charts.

    Attributes
    ----------
    features
        Polars frame, one row per feature: ``feature, kind, drifted`` (null when the feature
        could not be tested: no values on one side), ``method`` (the criterion that decided),
        ``drift_score`` (its p-value or distance), ``threshold``, ``severity`` (score relative to
        the threshold, >= 1 reads "drifted"), ``test`` (``ks``/``chi2``), ``statistic``,
        ``p_value``, ``wasserstein_norm``, ``psi``, ``ks_location``, ``n_ref``, ``n_cur``
        (values tested), and the quality columns (:data:`QUALITY_COLUMNS`) with ``issues``.
    config
        The :class:`DriftConfig` used.
    """

    features: pl.DataFrame
    config: DriftConfig
    n_ref_rows: int
    n_cur_rows: int
    summaries: Mapping[str, FeatureSummary] = field(default_factory=dict)

    @property
    def n_tested(self) -> int:
        """Features with a drift verdict (values on both sides)."""
        return int(self.features["drifted"].is_not_null().sum())

    @property
    def drifted_features(self) -> list[str]:
        """Names of the drifted features, most severe first."""
        return (
            self.features.filter(pl.col("drifted"))
            .sort("severity", descending=True, nulls_last=True)["feature"]
            .to_list()
        )

    @property
    def drift_share(self) -> float:
        """Share of the tested features that drifted (0.0 when none could be tested)."""
        return len(self.drifted_features) / self.n_tested if self.n_tested else 0.0

    @property
    def dataset_drift(self) -> bool:
        """Whether ``drift_share >= config.drift_share``."""
        return self.n_tested > 0 and self.drift_share >= self.config.drift_share

    @property
    def quality(self) -> pl.DataFrame:
        """The quality columns of :attr:`features`."""
        return self.features.select(QUALITY_COLUMNS)

    @property
    def issues(self) -> pl.DataFrame:
        """One row per (feature, issue): the quality problems to alert on."""
        return (
            self.features.select("feature", "issues")
            .explode("issues")
            .drop_nulls("issues")
            .rename({"issues": "issue"})
        )

    def summary(self) -> str:
        """One line: how many features drifted and the verdict."""
        n_issues = self.issues.height
        verdict = "DATASET DRIFT" if self.dataset_drift else "no dataset drift"
        return (
            f"{len(self.drifted_features)}/{self.n_tested} features drifted "
            f"({self.drift_share:.0%}, threshold {self.config.drift_share:.0%}): {verdict}; "
            f"{n_issues} quality issue{'s' if n_issues != 1 else ''}"
        )

    def __repr__(self) -> str:
        lines = [
            f"DriftReport({self.n_ref_rows} reference rows vs {self.n_cur_rows} current rows, "
            f"{self.features.height} features)",
            self.summary(),
        ]
        for r in self.features.iter_rows(named=True):
            verdict = {True: "DRIFT", False: "ok", None: "untested"}[r["drifted"]]
            score = "" if r["method"] is None else f"{r['method']}={r['drift_score']:.3g}"
            issues = f"  issues: {', '.join(r['issues'])}" if r["issues"] else ""
            lines.append(f"  {r['feature']:<24} {r['kind']:<12} {verdict:<9} {score}{issues}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return _report_table_html(self)

    def chart(self, feature: str) -> alt.TopLevelMixin:
        """Reference vs current for one feature (histograms + ECDFs with the K-S distance)."""
        from fskit import charts

        return charts.feature_chart(self, feature)

    def overview_chart(self, *, sort_by: str = "severity") -> alt.TopLevelMixin:
        """Features by drift score (see :func:`fskit.charts.overview_chart`)."""
        from fskit import charts

        return charts.overview_chart(self, sort_by=sort_by)

    def quality_chart(self) -> alt.TopLevelMixin:
        """The quality panel (see :func:`fskit.charts.quality_chart`)."""
        from fskit import charts

        return charts.quality_chart(self)

    def to_html(self, path: str | os.PathLike[str] | None = None, **kwargs: Any) -> str:
        """A self-contained HTML report (JavaScript inlined, works offline); written if ``path``.

        Keyword arguments go to :func:`fskit.charts.report_html`.
        """
        from fskit import charts

        text = charts.report_html(self, **kwargs)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def _report_table_html(report: DriftReport) -> str:
    cols = [
        "feature",
        "kind",
        "drifted",
        "method",
        "drift_score",
        "threshold",
        "statistic",
        "p_value",
        "wasserstein_norm",
        "psi",
        "n_ref",
        "n_cur",
        "null_rate_cur",
        "nan_rate_cur",
        "out_of_range_share",
        "new_categories",
        "issues",
    ]
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = []
    for r in report.features.iter_rows(named=True):
        style = ' style="background:#fde0dd"' if r["drifted"] else ""
        cells = "".join(f"<td>{html.escape(_fmt(r[c]))}</td>" for c in cols)
        body.append(f"<tr{style}>{cells}</tr>")
    return (
        f"<div><p><b>DriftReport</b>: {html.escape(report.summary())}</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


#: Values (reference + current) profiled per pipeline step of :func:`_compare_frames`, and how
#: many steps the sorting thread may run ahead of the testing threads.
_CHUNK_VALUES = 8_000_000
_PREFETCH = 3


def _compare_frames(
    ref: ReferenceProfile | pl.DataFrame,
    specs: Sequence[tuple[str, str]],
    cur: pl.DataFrame,
    config: DriftConfig,
) -> tuple[list[dict[str, Any]], dict[str, FeatureSummary]]:
    """Profile and compare ``specs`` [(name, kind)], a few columns at a time.

    A pipeline: while the column threads test one chunk of columns, a producer thread sorts the
    next chunk in polars (which releases the GIL). The overlap matters because scipy's K-S
    p-value for large samples (``kstwo.sf``) can hold the GIL for most of a second.
    """
    cur_schema = cur.schema

    def produce(chunk: Sequence[tuple[str, str]]) -> tuple[dict, dict]:
        if isinstance(ref, ReferenceProfile):
            ref_cols = {name: ref.columns[name] for name, _ in chunk}
        else:
            ref_cols = _profile_columns(ref, chunk)
        ref_dtypes = {
            n: c.polars_dtype
            for n, c in ref_cols.items()
            if c.polars_dtype is not None and c.polars_dtype.is_temporal()
        }
        present = [(n, k) for n, k in chunk if n in cur_schema]
        cur_cols: dict[str, _Column | None] = dict.fromkeys(ref_cols)
        cur_cols.update(_profile_columns(cur, present, ref_dtypes, with_std=False))
        return ref_cols, cur_cols

    def one(r: _Column, c: _Column | None) -> tuple[dict[str, Any], FeatureSummary]:
        if c is None:
            return _missing(r)
        if r.kind == "numerical":
            return _compare_numerical(r, c, config)
        return _compare_categorical(r, c, config)

    ref_rows = ref.n_rows if isinstance(ref, ReferenceProfile) else ref.height
    per_column = max(ref_rows + cur.height, 1)
    step = max(1, _CHUNK_VALUES // per_column)
    chunks = [specs[i : i + step] for i in range(0, len(specs), step)]
    workers = min(step, len(specs), os.cpu_count() or 1)
    results: list[tuple[dict[str, Any], FeatureSummary]] = []
    if len(chunks) <= 1 and (workers <= 1 or per_column * len(specs) < 200_000):
        for chunk in chunks:  # small data: threads would cost more than they save
            ref_cols, cur_cols = produce(chunk)
            results.extend(one(ref_cols[n], cur_cols[n]) for n, _ in chunk)
    else:
        with (
            ThreadPoolExecutor(1, thread_name_prefix="fskit-drift-sort") as producer,
            ThreadPoolExecutor(workers, thread_name_prefix="fskit-drift") as pool,
        ):
            # The producer sorts up to _PREFETCH chunks ahead; columns go to the pool as soon
            # as their chunk is ready, and chunks older than _PREFETCH are awaited to bound
            # memory.
            sorting = deque(producer.submit(produce, c) for c in chunks[:_PREFETCH])
            submitted = len(sorting)
            testing: list[list[Future]] = []
            for i, chunk in enumerate(chunks):
                ref_cols, cur_cols = sorting.popleft().result()
                testing.append([pool.submit(one, ref_cols[n], cur_cols[n]) for n, _ in chunk])
                if i >= _PREFETCH:
                    wait(testing[i - _PREFETCH])
                if submitted < len(chunks):
                    sorting.append(producer.submit(produce, chunks[submitted]))
                    submitted += 1
            results = [f.result() for futures in testing for f in futures]
    return [r for r, _ in results], {s.feature: s for _, s in results}


def _as_profile(
    reference: FrameLike | ReferenceProfile,
    features: list[str] | None,
    categorical: list[str] | None,
    exclude: Iterable[str] = (),
) -> ReferenceProfile:
    if isinstance(reference, ReferenceProfile):
        if features is None:
            return reference
        missing = [f for f in features if f not in reference.columns]
        if missing:
            msg = (
                f"feature {missing[0]!r} is not in the reference profile; "
                f"profiled features: {list(reference.columns)}"
            )
            raise SchemaError(msg)
        return ReferenceProfile({f: reference.columns[f] for f in features}, reference.n_rows)
    frame = _to_frame(reference, "reference")
    specs = _select_specs(frame.collect_schema(), features, categorical, exclude)
    if isinstance(frame, pl.LazyFrame):
        frame = frame.select([n for n, _ in specs]).collect()
    return ReferenceProfile(_profile_columns(frame, specs), frame.height)


def compare(
    reference: FrameLike | ReferenceProfile,
    current: FrameLike,
    *,
    features: str | Sequence[str] | None = None,
    categorical: str | Sequence[str] | None = None,
    config: DriftConfig | None = None,
) -> DriftReport:
    """Compare current data with reference data, feature by feature: drift and quality.

    Parameters
    ----------
    reference
        The baseline (training data): a polars DataFrame or LazyFrame, a pandas DataFrame, or a
        :class:`ReferenceProfile` (e.g. stored with a model).
    current
        The data to check (serving log, a recent batch), same column names.
    features
        Columns to check; default: every numeric, string, categorical, enum and boolean column
        of the reference (temporal and nested columns are skipped unless named here).
    categorical
        Columns to treat as categorical whatever their dtype (e.g. integer codes).
    config
        Thresholds; default ``DriftConfig()``.

    Returns
    -------
    DriftReport
        ``report.features`` has one row per feature; ``report.dataset_drift`` the verdict.
        A feature missing from ``current`` gets a row with the issue ``"missing"``.
    """
    config = DriftConfig() if config is None else config
    if not isinstance(config, DriftConfig):
        msg = f"config must be a DriftConfig, got {type(config).__name__}; use DriftConfig(...)"
        raise DefinitionError(msg)
    features_ = _names(features, "features")
    if isinstance(reference, ReferenceProfile):
        return _compare_to_profile(_as_profile(reference, features_, None), current, config)
    frame = _to_frame(reference, "reference")
    specs = _select_specs(frame.collect_schema(), features_, _names(categorical, "categorical"))
    if isinstance(frame, pl.LazyFrame):
        frame = frame.select([n for n, _ in specs]).collect()
    return _report(frame, specs, current, config)


def _compare_to_profile(
    ref: ReferenceProfile, current: FrameLike, config: DriftConfig
) -> DriftReport:
    return _report(ref, [(n, c.kind) for n, c in ref.columns.items()], current, config)


def _report(
    ref: ReferenceProfile | pl.DataFrame,
    specs: Sequence[tuple[str, str]],
    current: FrameLike,
    config: DriftConfig,
) -> DriftReport:
    cur = _to_frame(current, "current")
    if isinstance(cur, pl.LazyFrame):
        names = cur.collect_schema().names()
        cur = cur.select([n for n, _ in specs if n in names]).collect()
    rows, summaries = _compare_frames(ref, specs, cur, config)
    frame = (
        pl.DataFrame(rows, schema=_SCHEMA, orient="row") if rows else pl.DataFrame(schema=_SCHEMA)
    )
    n_ref = ref.n_rows if isinstance(ref, ReferenceProfile) else ref.height
    return DriftReport(frame, config, n_ref, cur.height, summaries)


def _window_frame(frame: FrameLike, timestamp_column: str, what: str) -> pl.LazyFrame:
    lf = _to_frame(frame, what).lazy()
    schema = lf.collect_schema()
    if timestamp_column not in schema:
        msg = f"timestamp_column {timestamp_column!r} is not a column of {what}; columns: {schema.names()}"
        raise SchemaError(msg)
    if schema[timestamp_column] not in (pl.Date, pl.Datetime):
        msg = (
            f"timestamp_column {timestamp_column!r} of {what} must be a Date or Datetime column, "
            f"got {schema[timestamp_column]}; parse it with pl.col(...).str.to_datetime()"
        )
        raise SchemaError(msg)
    return lf


def _check_every(every: str) -> None:
    try:
        pl.select(pl.lit(0).cast(pl.Datetime).dt.truncate(every))
    except Exception as exc:  # polars raises several types for a bad duration string
        msg = f"every must be a polars duration such as '1d', '6h' or '1w', got {every!r}"
        raise DefinitionError(msg) from exc


def over_time(
    reference: FrameLike | ReferenceProfile,
    current: FrameLike,
    *,
    timestamp_column: str,
    every: str = "1d",
    features: str | Sequence[str] | None = None,
    categorical: str | Sequence[str] | None = None,
    config: DriftConfig | None = None,
) -> pl.DataFrame:
    """Drift of each feature per time window of ``current`` (daily by default).

    The reference is profiled once; each window of ``current`` (``timestamp_column`` truncated
    to ``every``, a polars duration such as ``"1d"`` or ``"6h"``) is compared with it. Without
    ``features``, the features are the testable columns present in both frames. Each window
    gets its own decision rule by sample size: a small window is judged by its p-value.

    Returns
    -------
    polars.DataFrame
        ``window_start`` then the columns of :attr:`DriftReport.features`, one row per
        (window, feature), sorted by window then feature order. Draw it with
        :func:`fskit.charts.drift_heatmap`.
    """
    config = DriftConfig() if config is None else config
    _check_every(every)
    lf = _window_frame(current, timestamp_column, "current")
    ref = _as_profile(
        reference,
        _names(features, "features"),
        _names(categorical, "categorical"),
        exclude=[timestamp_column],
    )
    names = lf.collect_schema().names()
    if features is None:  # only what both sides have: a missing column is not drift over time
        ref = ReferenceProfile({n: c for n, c in ref.columns.items() if n in names}, ref.n_rows)
    cur = (
        lf.select(
            pl.col(timestamp_column).dt.truncate(every).alias("window_start"),
            *[n for n in ref.columns if n in names and n != "window_start"],
        )
        .drop_nulls("window_start")
        .collect()
    )
    frames = []
    for (start,), part in sorted(cur.partition_by("window_start", as_dict=True).items()):
        report = _compare_to_profile(ref, part.drop("window_start"), config)
        frames.append(report.features.select(pl.lit(start).alias("window_start"), pl.all()))
    ts_dtype = cur.schema["window_start"]
    if not frames:
        return pl.DataFrame(schema={"window_start": ts_dtype, **_SCHEMA})
    order = {n: i for i, n in enumerate(ref.columns)}
    return (
        pl.concat(frames)
        .with_columns(pl.col("window_start").cast(ts_dtype))
        .sort(
            pl.col("window_start"),
            pl.col("feature").replace_strict(order, return_dtype=pl.Int64),
        )
    )


def _as_series(values: Any, what: str) -> pl.Series:
    if isinstance(values, pl.Series):
        return values
    if type(values).__module__.split(".")[0] == "pandas":
        return pl.from_pandas(values)
    if isinstance(values, (pl.DataFrame, pl.LazyFrame)):
        msg = f"{what} must be one column of scores; select it, e.g. frame['score']"
        raise FskitError(msg)
    try:
        return pl.Series(what, np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        msg = f"{what} must be a sequence of numbers (Series, array, list), got {type(values).__name__}"
        raise FskitError(msg) from exc


def prediction_drift(
    reference_scores: Any,
    current_scores: Any,
    *,
    name: str | None = None,
    config: DriftConfig | None = None,
) -> DriftReport:
    """Drift of the model's score distribution (a numerical feature named ``name``).

    Scores are polars/pandas Series, numpy arrays or lists; nulls and NaNs are counted, not
    tested.

    Examples
    --------
    >>> r = prediction_drift([0.1, 0.2, 0.3, 0.4] * 50, [0.6, 0.7, 0.8, 0.9] * 50)
    >>> r.features.select("feature", "method", "drifted", "statistic").row(0)
    ('prediction', 'ks', True, 1.0)
    """
    ref = _as_series(reference_scores, "reference_scores")
    cur = _as_series(current_scores, "current_scores")
    label = name or (ref.name if ref.name not in ("", "reference_scores") else "prediction")
    ref_frame = pl.DataFrame([ref.alias(label)])
    cur_frame = pl.DataFrame([cur.alias(label)])
    if not (ref_frame.schema[label].is_numeric() or ref_frame.schema[label] == pl.Null):
        msg = f"reference_scores must be numeric, got dtype {ref_frame.schema[label]}"
        raise FskitError(msg)
    return compare(ref_frame, cur_frame, features=[label], config=config)


def quality_over_time(
    frame: FrameLike,
    *,
    timestamp_column: str,
    score_column: str,
    label_column: str,
    every: str = "1d",
) -> pl.DataFrame:
    """Model quality per window: ROC AUC of ``score_column`` against a binary label.

    Labels may arrive later: rows whose label (or score) is null are counted in ``n`` but not
    in the AUC. AUC is the Mann-Whitney statistic from average ranks (ties count one half); it
    is null in a window holding only one class.

    Returns
    -------
    polars.DataFrame
        ``window_start, n, n_labeled, n_positive, positive_rate, mean_score, auc``.

    Examples
    --------
    >>> from datetime import date
    >>> f = pl.DataFrame({
    ...     "ts": [date(2024, 1, 1)] * 4 + [date(2024, 1, 2)] * 4,
    ...     "score": [0.1, 0.4, 0.35, 0.8, 0.9, 0.2, 0.5, 0.5],
    ...     "label": [0, 0, 1, 1, 0, 1, 1, None],
    ... })
    >>> quality_over_time(f, timestamp_column="ts", score_column="score", label_column="label")
    shape: (2, 7)
    ┌──────────────┬─────┬───────────┬────────────┬───────────────┬────────────┬──────┐
    │ window_start ┆ n   ┆ n_labeled ┆ n_positive ┆ positive_rate ┆ mean_score ┆ auc  │
    │ ---          ┆ --- ┆ ---       ┆ ---        ┆ ---           ┆ ---        ┆ ---  │
    │ date         ┆ i64 ┆ i64       ┆ i64        ┆ f64           ┆ f64        ┆ f64  │
    ╞══════════════╪═════╪═══════════╪════════════╪═══════════════╪════════════╪══════╡
    │ 2024-01-01   ┆ 4   ┆ 4         ┆ 2          ┆ 0.5           ┆ 0.4125     ┆ 0.75 │
    │ 2024-01-02   ┆ 4   ┆ 3         ┆ 2          ┆ 0.666667      ┆ 0.525      ┆ 0.0  │
    └──────────────┴─────┴───────────┴────────────┴───────────────┴────────────┴──────┘
    """
    _check_every(every)
    lf = _window_frame(frame, timestamp_column, "frame")
    schema = lf.collect_schema()
    for what, col in (("score_column", score_column), ("label_column", label_column)):
        if col not in schema:
            msg = f"{what} {col!r} is not a column of frame; columns: {schema.names()}"
            raise SchemaError(msg)
    labels = lf.select(pl.col(label_column).drop_nulls().unique()).collect().to_series()
    bad = [v for v in labels.to_list() if v not in (0, 1, True, False)]
    if bad:
        msg = (
            f"label_column {label_column!r} must hold binary labels (0/1 or booleans, nulls for "
            f"labels not yet known), got {bad[0]!r}"
        )
        raise SchemaError(msg)
    score = pl.col(score_column).cast(pl.Float64)
    label = pl.col(label_column).cast(pl.Int64)
    usable = label.is_not_null() & score.is_not_null() & score.is_not_nan()
    ranks = score.filter(usable).rank("average")
    pos = label.filter(usable) == 1
    n_pos = pos.sum().cast(pl.Float64)
    n_lab = usable.sum().cast(pl.Float64)
    n_neg = n_lab - n_pos
    auc = (ranks.filter(pos).sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return (
        lf.sort(timestamp_column)
        .group_by_dynamic(timestamp_column, every=every, label="left")
        .agg(
            pl.len().cast(pl.Int64).alias("n"),
            usable.sum().cast(pl.Int64).alias("n_labeled"),
            n_pos.cast(pl.Int64).alias("n_positive"),
            (n_pos / n_lab).alias("positive_rate"),
            score.mean().alias("mean_score"),
            pl.when((n_pos > 0) & (n_neg > 0)).then(auc).alias("auc"),
        )
        .rename({timestamp_column: "window_start"})
        .collect()
    )
