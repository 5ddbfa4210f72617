"""Summary statistics and the distribution of one feature over its offline rows.

:func:`feature_statistics` (on the store: :meth:`fskit.FeatureStore.feature_statistics`) reads
one column of a feature view's offline rows — its source plus every row pushed to it since —
and returns a :class:`FeatureStatistics`:

* numbers: ``count`` (rows, nulls included), ``null_count``, then ``mean``, ``std``, ``min``,
  the quartiles ``25%``, ``50%``, ``75%`` (nearest value) and ``max`` of the non-null,
  non-NaN values; the distribution is a histogram of equal-width bins from ``min`` to
  ``max`` (``bin_start < x <= bin_end``, the first bin also holds ``min``);
* anything else (strings, booleans, dates): ``count``, ``null_count`` and ``n_unique`` (of the
  non-null values); the distribution is the most frequent values, most frequent first (ties
  in value order).

Only stored columns can be profiled: on-demand features and windowed aggregations are
computed per request or per training row, so profile a training set instead.

>>> import tempfile
>>> from datetime import datetime
>>> import polars as pl
>>> import fskit as fk
>>> rows = pl.DataFrame({
...     "user_id": [1, 2, 3, 4],
...     "event_timestamp": [datetime(2026, 1, d) for d in (1, 2, 3, 4)],
...     "purchases": [3, 5, None, 10],
...     "country": ["NL", "FR", "NL", None],
... })
>>> store = fk.FeatureStore(tempfile.mkdtemp())
>>> user = fk.Entity("user", join_keys=["user_id"])
>>> _ = store.apply([user, fk.FeatureView(name="user_stats", entities=[user], source=rows)])
>>> stats = store.feature_statistics("user_stats:purchases", bins=2)
>>> stats
FeatureStatistics('user_stats@v1:purchases', Int64): 4 rows, 1 null; mean 6, std 3.606, min 3, 25% 5, 50% 5, 75% 10, max 10
>>> stats.distribution
shape: (2, 3)
┌───────────┬─────────┬───────┐
│ bin_start ┆ bin_end ┆ count │
│ ---       ┆ ---     ┆ ---   │
│ f64       ┆ f64     ┆ i64   │
╞═══════════╪═════════╪═══════╡
│ 3.0       ┆ 6.5     ┆ 2     │
│ 6.5       ┆ 10.0    ┆ 1     │
└───────────┴─────────┴───────┘
>>> store.feature_statistics("user_stats:country")
FeatureStatistics('user_stats@v1:country', String): 4 rows, 1 null, 2 unique; top 'NL' (2), 'FR' (1)
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from fskit._utils.dtypes import dtype_to_str
from fskit._utils.html import table
from fskit.definitions import FeatureRef, FeatureView
from fskit.errors import DefinitionError, FeatureRefError
from fskit.offline import resolve_features, scan_view
from fskit.transformations import OnDemandFeatureView, StreamFeatureView

if TYPE_CHECKING:
    import altair as alt

    from fskit.registry import Registry

__all__ = ["DEFAULT_BINS", "DEFAULT_TOP", "FeatureStatistics", "feature_statistics"]

#: Histogram bins of a numerical feature.
DEFAULT_BINS = 20
#: Most frequent values kept for a non-numerical feature.
DEFAULT_TOP = 15

_SUMMARY_SCHEMA = {"statistic": pl.String, "value": pl.Float64}
_BINS_SCHEMA = {"bin_start": pl.Float64, "bin_end": pl.Float64, "count": pl.Int64}


@dataclass(frozen=True, eq=False)
class FeatureStatistics:
    """Summary statistics and the distribution of one feature over its offline rows.

    Made by :meth:`fskit.FeatureStore.feature_statistics`; see :mod:`fskit.statistics`. Two
    are equal when their ref, dtype and frames are.
    """

    ref: str
    """The exact, versioned feature ref (``"user_stats@v1:purchases"``)."""
    dtype: str
    """The column's polars dtype as text (``"Float64"``)."""
    summary: pl.DataFrame
    """``statistic, value`` rows: count, null_count, mean, std, min, 25%, 50%, 75%, max
    (numbers), or count, null_count, n_unique (others)."""
    distribution: pl.DataFrame
    """Numbers: ``bin_start, bin_end, count``; others: ``value, count`` (top values)."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeatureStatistics):
            return NotImplemented
        return (
            (self.ref, self.dtype) == (other.ref, other.dtype)
            and self.summary.equals(other.summary)
            and self.distribution.equals(other.distribution)
        )

    @property
    def numeric(self) -> bool:
        """Whether the distribution is a histogram (else: the most frequent values)."""
        return "bin_start" in self.distribution.columns

    @property
    def values(self) -> dict[str, float | None]:
        """The summary as a dict: ``stats.values["mean"]``."""
        return dict(self.summary.iter_rows())  # type: ignore[arg-type]

    def chart(self) -> alt.Chart:
        """The distribution as bars: a histogram, or the most frequent values."""
        import altair as alt

        feature = self.ref.split(":")[-1]
        if self.numeric:
            return (
                alt.Chart(self.distribution, title=f"{self.ref}: distribution")
                .mark_bar(color="#4c78a8", binSpacing=0)
                .encode(
                    x=alt.X("bin_start:Q", bin="binned", title=feature),
                    x2="bin_end:Q",
                    y=alt.Y("count:Q", title="rows"),
                    tooltip=[
                        alt.Tooltip("bin_start:Q", format=".4g", title="from"),
                        alt.Tooltip("bin_end:Q", format=".4g", title="to"),
                        "count:Q",
                    ],
                )
                .properties(width=360, height=180)
            )
        return (
            alt.Chart(self.distribution, title=f"{self.ref}: most frequent values")
            .mark_bar(color="#4c78a8")
            .encode(
                x=alt.X("count:Q", title="rows"),
                y=alt.Y("value:N", sort="-x", title=None),
                tooltip=["value:N", "count:Q"],
            )
            .properties(width=360, height=max(60, 16 * self.distribution.height))
        )

    def __repr__(self) -> str:
        v = self.values
        head = (
            f"FeatureStatistics({self.ref!r}, {self.dtype}): {_count(v['count'])} rows, "
            f"{_count(v['null_count'])} null"
        )
        if self.numeric:
            rest = ", ".join(f"{k} {_fmt(x)}" for k, x in v.items() if k not in _COUNTS)
            return f"{head}; {rest}" if rest else head
        top = ", ".join(f"{value!r} ({n:,})" for value, n in self.distribution.head(5).rows())
        more = ", ..." if self.distribution.height > 5 else ""
        return f"{head}, {_count(v['n_unique'])} unique" + (f"; top {top}{more}" if top else "")

    def _repr_html_(self) -> str:
        summary = [[k, _fmt(x)] for k, x in self.values.items()]
        if self.numeric:
            header = ["from", "to", "rows"]
            dist = [[_fmt(a), _fmt(b), f"{n:,}"] for a, b, n in self.distribution.rows()]
        else:
            header = ["value", "rows"]
            dist = [[value, f"{n:,}"] for value, n in self.distribution.rows()]
        return (
            f"<b>Feature statistics</b> <code>{html.escape(self.ref)}</code> "
            f"({html.escape(self.dtype)})"
            "<div style='display:flex;gap:24px;align-items:flex-start'>"
            f"<div>{table(['statistic', 'value'], summary)}</div>"
            f"<div>{table(header, dist)}</div></div>"
        )


_COUNTS = ("count", "null_count", "n_unique")


def _count(value: float | None) -> str:
    return "?" if value is None else f"{int(value):,}"


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.4g}"


def feature_statistics(
    registry: Registry,
    feature: str | FeatureRef,
    *,
    bins: int = DEFAULT_BINS,
    top: int = DEFAULT_TOP,
) -> FeatureStatistics:
    """Statistics of ``feature`` over its view's offline rows (see the module docs).

    Parameters
    ----------
    registry
        The repo's registry (``store.registry``).
    feature
        ``"view:feature"`` (the latest applied version), ``"view@v2:feature"`` or a
        :class:`~fskit.FeatureRef`: one stored feature.
    bins
        Histogram bins of a numerical feature.
    top
        Most frequent values kept for any other feature.
    """
    for name, value in (("bins", bins), ("top", top)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DefinitionError(
                f"feature_statistics: {name} must be a positive int, got {value!r}"
            )
    if isinstance(feature, FeatureView):
        raise FeatureRefError(
            f"feature_statistics profiles one feature, got the whole feature view "
            f"{feature.ref!r}; pass 'view:feature', e.g. [store.feature_statistics(f"
            f"'{feature.name}:' + name) for name in view.feature_names]"
        )
    if not isinstance(feature, (str, FeatureRef)):
        raise FeatureRefError(
            f"feature_statistics profiles one feature: pass 'view:feature' or a FeatureRef, "
            f"got {feature!r}; for several, call it once per feature"
        )
    (resolved,) = resolve_features(registry, [feature])
    view, name = resolved.view, resolved.feature
    ref = f"{view.ref}:{name}"
    if isinstance(view, OnDemandFeatureView | StreamFeatureView):
        kind = (
            "an on-demand feature"
            if isinstance(view, OnDemandFeatureView)
            else "a windowed aggregation"
        )
        raise FeatureRefError(
            f"{ref!r} is {kind}: its values are computed per request or per training row, so "
            "there is no stored column to profile; build a training set and profile that"
        )
    column = scan_view(view, registry.repo_path).select(name).collect().to_series()
    dtype = dtype_to_str(column.dtype)
    if column.dtype.is_numeric():
        summary, distribution = _numeric(column, bins)
    else:
        summary, distribution = _categorical(column, top)
    return FeatureStatistics(ref, dtype, summary, distribution)


def _summary(stats: Mapping[str, Any]) -> pl.DataFrame:
    values = [None if v is None else float(v) for v in stats.values()]
    return pl.DataFrame({"statistic": list(stats), "value": values}, schema=_SUMMARY_SCHEMA)


def _numeric(column: pl.Series, bins: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    values = column.cast(pl.Float64).drop_nulls().drop_nans()
    low, high = values.min(), values.max()
    summary = _summary(
        {
            "count": column.len(),
            "null_count": column.null_count(),
            "mean": values.mean(),
            "std": values.std(),
            "min": low,
            **{f"{int(q * 100)}%": values.quantile(q, "nearest") for q in (0.25, 0.5, 0.75)},
            "max": high,
        }
    )
    if values.is_empty():
        return summary, pl.DataFrame(schema=_BINS_SCHEMA)
    assert isinstance(low, float) and isinstance(high, float)
    if low == high:
        one = {"bin_start": [low], "bin_end": [high], "count": [values.len()]}
        return summary, pl.DataFrame(one, schema=_BINS_SCHEMA)
    # equal-width edges; a range too narrow for the floats between its ends gets fewer bins
    inner = (low + (high - low) * i / bins for i in range(1, bins))
    edges = sorted({low, high, *(e for e in inner if low < e < high)})
    hist = values.hist(bins=edges)
    distribution = pl.DataFrame(
        {"bin_start": edges[:-1], "bin_end": edges[1:], "count": hist["count"]},
        schema=_BINS_SCHEMA,
    )
    return summary, distribution


def _categorical(column: pl.Series, top: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    present = column.cast(pl.String).drop_nulls()
    summary = _summary(
        {"count": column.len(), "null_count": column.null_count(), "n_unique": present.n_unique()}
    )
    distribution = (
        present.rename("value")
        .to_frame()
        .group_by("value")
        .agg(pl.len().cast(pl.Int64).alias("count"))
        .sort(["count", "value"], descending=[True, False])
        .head(top)
    )
    return summary, distribution
