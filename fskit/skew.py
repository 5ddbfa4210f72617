"""Training-serving skew: the same feature, for the same entity and time, from two pipelines.

:func:`compare` asks the feature store for both sides: the offline point-in-time value (what
a training set would hold) and the online-served value, for the same entities (by default
the first :data:`DEFAULT_ENTITIES` of the features' view, see :func:`default_entity_rows`) at
the same moment ``at``. :func:`compare_frames` does the same for any two frames keyed by
entity (and time), so hand-written serving code can be checked against the registry's
definitions.

Per feature the report gives the match rate (equal values, nulls equal nulls, numbers within
``tolerance``), the mean and max absolute difference, both sides' means and their shift, the
two-sample K-S distance between the two distributions, and the entities that differ most. A
feature is flagged when its match rate is below ``min_match_rate``.

>>> import polars as pl
>>> train = pl.DataFrame({"user_id": [1, 2, 3], "avg": [10.0, 20.0, 30.0], "n": [1, 2, 3]})
>>> serve = pl.DataFrame({"user_id": [1, 2, 3], "avg": [10.0, 26.0, 30.0], "n": [1, 2, 3]})
>>> report = compare_frames(train, serve, keys=["user_id"])
>>> report.features.select("feature", "match_rate", "max_abs_diff", "flagged")
shape: (2, 4)
┌─────────┬────────────┬──────────────┬─────────┐
│ feature ┆ match_rate ┆ max_abs_diff ┆ flagged │
│ ---     ┆ ---        ┆ ---          ┆ ---     │
│ str     ┆ f64        ┆ f64          ┆ bool    │
╞═════════╪════════════╪══════════════╪═════════╡
│ avg     ┆ 0.666667   ┆ 6.0          ┆ true    │
│ n       ┆ 1.0        ┆ 0.0          ┆ false   │
└─────────┴────────────┴──────────────┴─────────┘
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from fskit.definitions import _as_polars
from fskit.errors import DefinitionError, EntityFrameError
from fskit.offline import resolve_features, scan_view
from fskit.transformations import OnDemandFeatureView

if TYPE_CHECKING:
    from fskit.store import FeatureStore

__all__ = ["DEFAULT_ENTITIES", "SkewReport", "compare", "compare_frames", "default_entity_rows"]

_SIDES = ("offline", "online")

#: How many entities :func:`compare` checks when not given ``entity_rows``.
DEFAULT_ENTITIES = 1000


@dataclass(frozen=True)
class SkewReport:
    """Per-feature skew between a reference pipeline (training) and a candidate (serving)."""

    features: pl.DataFrame
    """One row per feature: match_rate, mean/max_abs_diff, means, shift, ks, flagged."""
    pairs: pl.DataFrame
    """keys, feature, reference, candidate, abs_diff, match — one row per entity and feature
    (numeric features only hold numbers; others are compared as strings)."""
    labels: tuple[str, str] = ("training", "serving")

    @property
    def flagged(self) -> list[str]:
        return self.features.filter(pl.col("flagged"))["feature"].to_list()

    def worst(self, feature: str, n: int = 10) -> pl.DataFrame:
        """The entities whose two values differ most for ``feature``."""
        return (
            self.pairs.filter(pl.col("feature") == feature, ~pl.col("match"))
            .sort("abs_diff", descending=True, nulls_last=False)
            .head(n)
        )

    def __repr__(self) -> str:
        lines = [f"SkewReport: {len(self.flagged)} of {self.features.height} features flagged"]
        for row in self.features.iter_rows(named=True):
            mark = "!" if row["flagged"] else " "
            shift = "" if row["shift"] is None else f", mean {row['reference_mean']:.4g} -> "
            shift += "" if row["shift"] is None else f"{row['candidate_mean']:.4g}"
            lines.append(f" {mark} {row['feature']}: match {row['match_rate']:.1%}{shift}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        ref, cand = self.labels
        rows = "".join(
            f"<tr style='color:{'#cf222e' if r['flagged'] else 'inherit'}'>"
            f"<td>{html.escape(r['feature'])}</td><td>{r['match_rate']:.1%}</td>"
            f"<td>{_fmt(r['mean_abs_diff'])}</td><td>{_fmt(r['max_abs_diff'])}</td>"
            f"<td>{_fmt(r['reference_mean'])}</td><td>{_fmt(r['candidate_mean'])}</td>"
            f"<td>{_fmt(r['ks_distance'])}</td><td>{'yes' if r['flagged'] else ''}</td></tr>"
            for r in self.features.iter_rows(named=True)
        )
        return (
            f"<b>Skew report</b>: {len(self.flagged)} of {self.features.height} features "
            f"flagged<table><tr><th>feature</th><th>match</th><th>mean |diff|</th>"
            f"<th>max |diff|</th><th>{ref} mean</th><th>{cand} mean</th><th>K-S</th>"
            f"<th>flagged</th></tr>{rows}</table>"
        )

    def chart(self) -> Any:
        """Bars: the share of entities whose values differ, per feature (flagged in red)."""
        import altair as alt

        data = self.features.select(
            "feature",
            (1 - pl.col("match_rate")).alias("mismatch_rate"),
            pl.when(pl.col("flagged"))
            .then(pl.lit("flagged"))
            .otherwise(pl.lit("ok"))
            .alias("status"),
            "mean_abs_diff",
        )
        return (
            alt.Chart(alt.Data(values=data.to_dicts()))
            .mark_bar()
            .encode(
                x=alt.X(
                    "mismatch_rate:Q",
                    title="share of entities that differ",
                    axis=alt.Axis(format="%"),
                ),
                y=alt.Y("feature:N", sort="-x", title=None),
                color=alt.Color(
                    "status:N",
                    scale=alt.Scale(domain=["flagged", "ok"], range=["#cf222e", "#8c959f"]),
                ),
                tooltip=[
                    "feature:N",
                    alt.Tooltip("mismatch_rate:Q", format=".1%"),
                    "mean_abs_diff:Q",
                ],
            )
            .properties(title="Training-serving skew per feature", width=360)
        )

    def scatter(self, feature: str, *, max_points: int = 2000) -> Any:
        """Training value against serving value per entity; the diagonal is no skew."""
        import altair as alt

        ref, cand = self.labels
        pairs = self.pairs.filter(pl.col("feature") == feature).drop_nulls(
            ["reference", "candidate"]
        )
        if pairs.is_empty():
            raise DefinitionError(f"no numeric pairs for feature {feature!r} in this report")
        if pairs.height > max_points:
            pairs = pairs.sample(max_points, seed=0)
        data = pairs.select("reference", "candidate", "match").to_dicts()
        low = float(min(pairs["reference"].min(), pairs["candidate"].min()))  # type: ignore[arg-type]
        high = float(max(pairs["reference"].max(), pairs["candidate"].max()))  # type: ignore[arg-type]
        points = (
            alt.Chart(alt.Data(values=data))
            .mark_circle(size=18, opacity=0.6)
            .encode(
                x=alt.X("reference:Q", title=f"{ref} value"),
                y=alt.Y("candidate:Q", title=f"{cand} value"),
                color=alt.Color(
                    "match:N", scale=alt.Scale(domain=[True, False], range=["#8c959f", "#cf222e"])
                ),
            )
        )
        diagonal = (
            alt.Chart(alt.Data(values=[{"v": low}, {"v": high}]))
            .mark_line(color="#1a7f37", strokeDash=[4, 4])
            .encode(x="v:Q", y="v:Q")
        )
        return (points + diagonal).properties(
            title=f"{feature}: {ref} vs {cand}", width=320, height=320
        )


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.4g}"


def compare_frames(
    reference: Any,
    candidate: Any,
    *,
    keys: Sequence[str],
    features: Sequence[str] | None = None,
    tolerance: float = 1e-9,
    min_match_rate: float = 0.99,
    labels: tuple[str, str] = ("training", "serving"),
) -> SkewReport:
    """Compare two frames of features keyed by ``keys`` (entity columns, and time if any).

    Rows are matched on ``keys``; a key present on one side only counts as a mismatch.
    ``features`` defaults to the columns the two frames share besides the keys.
    """
    ref = _eager(reference, "reference")
    cand = _eager(candidate, "candidate")
    keys = list(keys)
    for name, frame in (("reference", ref), ("candidate", cand)):
        missing = [k for k in keys if k not in frame.columns]
        if missing:
            raise EntityFrameError(f"skew.compare_frames: {name} lacks key column(s) {missing}")
        dupes = frame.height - frame.select(keys).n_unique()
        if dupes:
            raise EntityFrameError(
                f"skew.compare_frames: {name} has {dupes} duplicate rows for keys {keys}"
            )
    if features is None:
        features = [c for c in ref.columns if c in cand.columns and c not in keys]
    features = list(features)
    for f in features:
        if f not in ref.columns or f not in cand.columns:
            raise EntityFrameError(f"skew.compare_frames: feature {f!r} is not in both frames")
    if not 0 <= min_match_rate <= 1:
        raise DefinitionError(f"min_match_rate must be within [0, 1], got {min_match_rate!r}")

    joined = ref.select(*keys, *features).join(
        cand.select(*keys, *features), on=keys, how="full", coalesce=True, suffix="__candidate"
    )
    rows, pairs = [], []
    for f in features:
        a, b = joined[f], joined[f"{f}__candidate"]
        numeric = a.dtype.is_numeric() and b.dtype.is_numeric()
        if numeric:
            a, b = a.cast(pl.Float64), b.cast(pl.Float64)
            diff = (a - b).abs()
            both_null = a.is_null() & b.is_null()
            match = both_null | (diff <= tolerance + tolerance * b.abs()).fill_null(False)
        else:
            a, b = a.cast(pl.String), b.cast(pl.String)
            diff = pl.Series([None] * len(a), dtype=pl.Float64)
            match = (a == b).fill_null(False) | (a.is_null() & b.is_null())
        ks = None
        if numeric:
            x = np.sort(a.drop_nulls().drop_nans().to_numpy())
            y = np.sort(b.drop_nulls().drop_nans().to_numpy())
            if x.size and y.size:
                from fskit._drift_stats import ks_2samp_sorted

                ks = ks_2samp_sorted(x, y).statistic
        ref_mean = a.mean() if numeric else None
        cand_mean = b.mean() if numeric else None
        rate = float(match.mean()) if len(match) else 1.0  # type: ignore[arg-type]
        rows.append(
            {
                "feature": f,
                "n": len(match),
                "match_rate": rate,
                "mean_abs_diff": diff.mean() if numeric else None,
                "max_abs_diff": diff.max() if numeric else None,
                "reference_mean": ref_mean,
                "candidate_mean": cand_mean,
                "shift": None if ref_mean is None or cand_mean is None else cand_mean - ref_mean,
                "ks_distance": ks,
                "flagged": rate < min_match_rate,
            }
        )
        pairs.append(
            joined.select(keys).with_columns(
                pl.lit(f).alias("feature"),
                (a if numeric else pl.Series([None] * len(a), dtype=pl.Float64)).alias("reference"),
                (b if numeric else pl.Series([None] * len(b), dtype=pl.Float64)).alias("candidate"),
                diff.alias("abs_diff"),
                match.alias("match"),
            )
        )
    schema = {
        "feature": pl.String,
        "n": pl.Int64,
        "match_rate": pl.Float64,
        "mean_abs_diff": pl.Float64,
        "max_abs_diff": pl.Float64,
        "reference_mean": pl.Float64,
        "candidate_mean": pl.Float64,
        "shift": pl.Float64,
        "ks_distance": pl.Float64,
        "flagged": pl.Boolean,
    }
    table = pl.DataFrame(rows, schema=schema)
    all_pairs = pl.concat(pairs, how="vertical") if pairs else pl.DataFrame()
    return SkewReport(table, all_pairs, labels)


def default_entity_rows(
    store: FeatureStore, features: Sequence[str], *, limit: int = DEFAULT_ENTITIES
) -> pl.DataFrame:
    """The first ``limit`` distinct entities (join keys) in the offline rows of ``features``.

    The keys come from the view of the first feature (its source, then rows pushed to it), in
    row order, without nulls: a fixed sample, the same at every call until the data changes.
    Every feature must come from views keyed the same way, and none may be on-demand (its
    request fields cannot be guessed); otherwise pass ``entity_rows`` to :func:`compare`.

    >>> import tempfile
    >>> from datetime import datetime
    >>> import fskit as fk
    >>> store = fk.FeatureStore(tempfile.mkdtemp())
    >>> user = fk.Entity("user", join_keys=["user_id"])
    >>> stats = pl.DataFrame({
    ...     "user_id": [7, 3, 7, None, 5],
    ...     "event_timestamp": [datetime(2026, 1, d) for d in range(1, 6)],
    ...     "purchases": [1, 2, 3, 4, 5],
    ... })
    >>> _ = store.apply([user, fk.FeatureView(name="user_stats", entities=[user], source=stats)])
    >>> default_entity_rows(store, ["user_stats:purchases"], limit=2)["user_id"].to_list()
    [7, 3]
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise DefinitionError(
            f"skew.default_entity_rows: limit must be a positive int, got {limit!r}"
        )
    resolved = resolve_features(store.registry, list(features))
    on_demand = sorted({str(r.ref) for r in resolved if isinstance(r.view, OnDemandFeatureView)})
    if on_demand:
        raise EntityFrameError(
            f"skew.compare: on-demand features {on_demand} need request fields that cannot be "
            "sampled; pass entity_rows= with the join keys and those fields"
        )
    keys = sorted({tuple(r.view.join_keys) for r in resolved})
    if len(keys) != 1 or not keys[0]:
        raise EntityFrameError(
            f"skew.compare: features {list(features)} come from views keyed by "
            f"{keys if any(keys) else 'nothing'}; pick features of one entity, or pass "
            "entity_rows= with every key"
        )
    view = resolved[0].view
    join_keys = list(view.join_keys)
    return (
        scan_view(view, store.repo_path)
        .select(join_keys)
        .drop_nulls()
        .unique(maintain_order=True)
        .head(limit)
        .collect()
    )


def compare(
    store: FeatureStore,
    entity_rows: Any = None,
    *,
    features: Sequence[str],
    at: datetime | None = None,
    tolerance: float = 1e-9,
    min_match_rate: float = 0.99,
) -> SkewReport:
    """Offline point-in-time values vs online-served values, same entities, same time.

    Parameters
    ----------
    store
        The feature store, materialized online.
    entity_rows
        The entities to compare: their join keys (and any request fields on-demand features
        need), as a polars frame (pandas accepted). ``None`` (the default) compares the first
        :data:`DEFAULT_ENTITIES` distinct entities of the features' view:
        ``default_entity_rows(store, features)`` (see :func:`default_entity_rows`; it needs
        features of one entity and no on-demand ones).
    features
        ``"view:feature"`` refs.
    at
        Both the training row's timestamp and the online read's ``now`` (default: now).
    tolerance, min_match_rate
        Numbers within ``tolerance`` match; a feature matching on fewer than
        ``min_match_rate`` of the entities is flagged.
    """
    if entity_rows is None:
        entity_rows = default_entity_rows(store, features)
    rows = _eager(entity_rows, "entity_rows")
    when = datetime.now(UTC) if at is None else at
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if "event_timestamp" in rows.columns:
        rows = rows.drop("event_timestamp")
    resolved = resolve_features(store.registry, features)
    keys = list(dict.fromkeys(k for r in resolved for k in r.view.join_keys))
    entity_df = rows.with_columns(pl.lit(when).alias("event_timestamp"))
    offline = store.get_historical_features(entity_df, features)
    online = store.get_online_features(features, rows, now=when)
    assert isinstance(online, pl.DataFrame)
    names = [r.column for r in resolved]
    index = pl.int_range(0, rows.height, eager=True).alias("__row")
    report = compare_frames(
        offline.select(*names).with_columns(index),
        online.select(*names).with_columns(index),
        keys=["__row"],
        tolerance=tolerance,
        min_match_rate=min_match_rate,
        labels=_SIDES,
    )
    # name each pair by its entity's keys rather than by its row number
    entity_keys = rows.select(keys).with_columns(index)
    pairs = report.pairs.join(entity_keys, on="__row", how="left").drop("__row")
    return SkewReport(report.features, pairs.select(*keys, pl.exclude(keys)), report.labels)


def _eager(frame: Any, what: str) -> pl.DataFrame:
    out = _as_polars(frame, "skew", what)
    return out.collect() if isinstance(out, pl.LazyFrame) else out
