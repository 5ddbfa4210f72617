"""Training: XGBoost on a point-in-time training set, validated on a later period.

:func:`train` takes a training set built by ``store.get_historical_features`` (entity rows,
label, feature columns), resolves the feature refs to the exact view versions they come from,
and splits the rows by time with a :class:`TimeSplit`: the model learns on the past and is
validated (and early-stopped) on the later period, as it will be used. There is no random
split: with time-dependent features a random split leaks the future into training and
flatters every metric.

The result, a :class:`TrainResult`, holds the booster (cut at the best round), validation and
training metrics (AUC, PR-AUC as average precision, log loss), the gain importance of every
input with the negligible ones listed as candidates to drop, the learning curve, altair charts
of both, and everything the model registry stores with the model (``result.register(name)``).

Inputs are encoded by :func:`fskit.models.encode_features`, the function serving uses too:
numbers as float32, nulls as NaN (XGBoost's missing value), strings as their index in a
category list fixed on the training period (XGBoost's native categorical splits), so that
serving encodes exactly as training did.

Example
-------
>>> import tempfile
>>> import fskit as fk
>>> from fskit import datasets
>>> from fskit.training import TimeSplit, train
>>> store = fk.FeatureStore(tempfile.mkdtemp())
>>> _ = store.apply(datasets.fraud_definitions())
>>> features = ["user_stats:avg_purchase_value", "merchant_profile:category"]
>>> rows = datasets.fraud_entity_rows().head(20_000)
>>> training_set = store.get_historical_features(rows, features)
>>> result = train(store, training_set, label="is_fraud", features=features,
...                extra_columns=["amount"], num_boost_round=20)
>>> result.feature_refs
('user_stats@v1:avg_purchase_value', 'merchant_profile@v1:category')
>>> result.metrics["auc"] > 0.8
True
"""

from __future__ import annotations

import hashlib
import html
import io
import math
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from fskit._utils.html import table
from fskit.definitions import _as_polars
from fskit.errors import DefinitionError, EntityFrameError, FeatureRefError
from fskit.models import (
    MODEL_VERSION,
    SCORE,
    encode_features,
    model_views,
    predict_matrix,
    view_logic,
)

if TYPE_CHECKING:
    import altair as alt
    import xgboost as xgb

    from fskit.definitions import FeatureService
    from fskit.drift import ReferenceProfile
    from fskit.models import ModelVersion
    from fskit.offline import FeatureLike
    from fskit.store import FeatureStore

__all__ = [
    "DEFAULT_PARAMS",
    "TimeSplit",
    "TrainResult",
    "average_precision",
    "binary_metrics",
    "log_loss",
    "roc_auc",
    "train",
]


def _default_nthread() -> int:
    """2 threads, or 1 on a machine with 2 cores or fewer.

    XGBoost's OpenMP threads spin while they wait: on a 2-core machine that also runs a
    notebook kernel, a model server or a test, 2 threads made training 2-20x slower (measured
    on the fraud sample: 1.5 s with 1 thread, 3-24 s with 2), while results do not change.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        cores = os.cpu_count() or 1
    return 2 if cores > 2 else 1


#: XGBoost parameters :func:`train` starts from; ``params=`` overrides any of them.
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "eval_metric": ["logloss"],
    "tree_method": "hist",
    "eta": 0.1,
    "max_depth": 6,
    "min_child_weight": 1.0,
    "max_cat_to_onehot": 4,
    "seed": 0,
    "nthread": _default_nthread(),
}

#: A feature whose share of the total gain is below this is listed as a candidate to drop.
NEGLIGIBLE_SHARE = 0.01

REFERENCE_VALUES = 1000  # order statistics kept per numerical feature in the drift reference
_CURVE_POINTS = 200  # at most this many rounds per line in curve_chart
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Progress = Callable[[int, int, dict[str, float]], Any]
"""``progress(round, total_rounds, {"train_logloss": ..., "valid_logloss": ...})`` per round.

Rounds count from 1. Returning ``True`` stops training after this round (a Cancel button).
"""


# ------------------------------------------------------------------------------------ split


@dataclass(frozen=True, kw_only=True)
class TimeSplit:
    """Train on the past, validate on the later period.

    Rows stamped before the cutoff train the model; rows at or after it validate it, so every
    validation row is later than every training row. The cutoff is ``cutoff`` when given
    (naive means UTC), else the timestamp below which ``1 - validation_fraction`` of the rows
    fall.

    Examples
    --------
    >>> TimeSplit(validation_fraction=0.25)
    TimeSplit(timestamp_column='event_timestamp', validation_fraction=0.25, cutoff=None)
    >>> TimeSplit(validation_fraction=1.5)
    Traceback (most recent call last):
    ...
    fskit.errors.DefinitionError: TimeSplit: validation_fraction must be a number strictly between 0 and 1, got 1.5; 0.2 validates on the latest 20% of rows
    """

    timestamp_column: str = "event_timestamp"
    validation_fraction: float = 0.2
    cutoff: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.timestamp_column, str) or not self.timestamp_column:
            raise DefinitionError(
                f"TimeSplit: timestamp_column must be a column name, got {self.timestamp_column!r}"
            )
        f = self.validation_fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f < 1:
            raise DefinitionError(
                "TimeSplit: validation_fraction must be a number strictly between 0 and 1, "
                f"got {f!r}; 0.2 validates on the latest 20% of rows"
            )
        if self.cutoff is not None and not isinstance(self.cutoff, datetime):
            raise DefinitionError(
                f"TimeSplit: cutoff must be a datetime or None, got {self.cutoff!r}"
            )

    def timestamps_us(self, frame: pl.DataFrame) -> np.ndarray:
        """The timestamp column as UTC microseconds since the epoch (checked: no nulls)."""
        from fskit.offline import _utc

        name = self.timestamp_column
        if name not in frame.columns:
            raise EntityFrameError(
                f"TimeSplit: the training set has no timestamp column {name!r} "
                f"(columns: {frame.columns}); pass TimeSplit(timestamp_column=...)"
            )
        dtype = frame.schema[name]
        if not isinstance(dtype, (pl.Datetime, pl.Date)):
            raise EntityFrameError(
                f"TimeSplit: column {name!r} must be a Datetime or Date, got {dtype}"
            )
        series = frame.select(_utc(pl.col(name), dtype).dt.epoch("us")).to_series()
        if series.null_count():
            raise EntityFrameError(
                f"TimeSplit: column {name!r} has {series.null_count()} null timestamps; "
                "drop those rows first"
            )
        return series.to_numpy()

    def cutoff_us(self, timestamps_us: np.ndarray) -> int:
        """The cutoff in UTC microseconds: rows at or after it validate."""
        if self.cutoff is not None:
            cutoff = self.cutoff if self.cutoff.tzinfo else self.cutoff.replace(tzinfo=UTC)
            return _to_us(cutoff)
        ordered = np.sort(timestamps_us)
        index = min(max(int(len(ordered) * (1 - self.validation_fraction)), 1), len(ordered) - 1)
        return int(ordered[index])

    def split(self, frame: pl.DataFrame) -> tuple[np.ndarray, int]:
        """A boolean mask of the validation rows and the cutoff (UTC microseconds).

        >>> from datetime import datetime
        >>> frame = pl.DataFrame({"event_timestamp": [datetime(2026, 1, d) for d in range(1, 11)]})
        >>> valid, cutoff = TimeSplit(validation_fraction=0.3).split(frame)
        >>> valid.tolist()
        [False, False, False, False, False, False, False, True, True, True]
        """
        ts = self.timestamps_us(frame)
        if len(ts) < 2:
            raise EntityFrameError(
                f"TimeSplit: the training set has {len(ts)} rows; a split needs at least 2"
            )
        cutoff = self.cutoff_us(ts)
        valid = ts >= cutoff
        n_valid = int(valid.sum())
        if n_valid == 0 or n_valid == len(ts):
            side = "validation" if n_valid == 0 else "training"
            raise EntityFrameError(
                f"TimeSplit: no {side} rows with cutoff {_from_us(cutoff).isoformat()} "
                f"(timestamps run from {_from_us(int(ts.min())).isoformat()} to "
                f"{_from_us(int(ts.max())).isoformat()}); choose a cutoff inside that range"
            )
        return valid, cutoff


def _to_us(value: datetime) -> int:
    delta = value.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(value))


# ---------------------------------------------------------------------------------- metrics


def _binary(y: Any) -> np.ndarray:
    return np.asarray(y, dtype=np.float64)


def roc_auc(y_true: Any, scores: Any) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); NaN without both classes.

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    y = _binary(y_true) > 0.5
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)  # rank of the last of each tie group (1-based)
    ranks = (upper - (counts - 1) / 2.0)[inverse]
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_precision(y_true: Any, scores: Any) -> float:
    """PR-AUC as average precision: sum over thresholds of (recall gain) x precision.

    Equal scores form one threshold, as in scikit-learn's ``average_precision_score``.

    >>> average_precision([0, 1, 1, 0], [0.1, 0.9, 0.4, 0.5])
    0.8333333333333333
    """
    y = _binary(y_true) > 0.5
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(y.sum())
    if n_pos == 0:
        return math.nan
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each threshold
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def log_loss(y_true: Any, scores: Any, *, eps: float = 1e-15) -> float:
    """Mean negative log-likelihood of the labels under the predicted probabilities.

    >>> round(log_loss([0, 1], [0.2, 0.9]), 6)
    0.164252
    """
    y = _binary(y_true)
    p = np.clip(np.asarray(scores, dtype=np.float64), eps, 1 - eps)
    if len(y) == 0:
        return math.nan
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def binary_metrics(y_true: Any, scores: Any) -> dict[str, float]:
    """``{"auc", "pr_auc", "logloss", "positive_rate", "rows"}`` of one sample."""
    y = _binary(y_true)
    return {
        "auc": roc_auc(y, scores),
        "pr_auc": average_precision(y, scores),
        "logloss": log_loss(y, scores),
        "positive_rate": float(y.mean()) if len(y) else math.nan,
        "rows": len(y),
    }


# ------------------------------------------------------------------------------------ result


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class TrainResult:
    """What :func:`train` produced: the booster, its scores, and what the registry stores.

    ``metrics`` has ``auc``, ``pr_auc``, ``logloss`` on the validation period and the same with
    a ``train_`` prefix on the training period, plus row counts and positive rates.
    ``importance`` has one row per input (feature, ref, gain, share, negligible), by gain;
    ``curve`` the log loss per round (round, train_logloss, valid_logloss);
    ``feature_columns`` are the model's inputs in order: one per ``feature_refs``, then the
    ``extra_columns``; ``window`` the training and validation periods (UTC).
    """

    booster: xgb.Booster
    metrics: dict[str, Any]
    importance: pl.DataFrame
    curve: pl.DataFrame
    feature_refs: tuple[str, ...]
    feature_columns: tuple[str, ...]
    label: str
    window: dict[str, datetime]
    drop_candidates: list[str]
    extra_columns: tuple[str, ...] = ()
    categories: dict[str, list[str]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    best_round: int = 0
    rounds: int = 0
    fingerprint: str = ""
    n_rows: int = 0
    reference: dict[str, Any] = field(default_factory=dict)
    view_logic: dict[str, dict[str, Any]] = field(default_factory=dict)
    feature_dtypes: dict[str, str] = field(default_factory=dict)
    library_versions: dict[str, str] = field(default_factory=dict)
    full_feature_names: bool = False
    seconds: float = 0.0
    store: FeatureStore | None = None

    def predict(self, features: pl.DataFrame | Mapping[str, Sequence[Any]]) -> np.ndarray:
        """Scores with the same encoding as serving (see :meth:`fskit.models.LoadedModel.predict`)."""
        x = encode_features(features, self.feature_columns, self.categories, owner="TrainResult")
        return predict_matrix(self.booster, x)

    def register(self, name: str) -> ModelVersion:
        """Store this model as the next version of ``name`` in the store's model registry."""
        from fskit.models import ModelRegistry

        if self.store is None:
            raise DefinitionError("TrainResult.register: this result has no feature store")
        return ModelRegistry(self.store).register(self, name)

    def reference_profile(self) -> ReferenceProfile:
        """The drift reference (inputs and score over the validation period)."""
        from fskit.drift import ReferenceProfile

        return ReferenceProfile.from_dict(self.reference)

    # -- charts ----------------------------------------------------------------------------
    def importance_chart(self) -> alt.Chart:
        """Bars of each input's share of the total gain; negligible ones in grey."""
        import altair as alt

        n = self.importance.height
        return (
            alt.Chart(self.importance, title=f"Feature importance (gain), {self.label!r}")
            .mark_bar()
            .encode(
                x=alt.X("share:Q", title="share of total gain", axis=alt.Axis(format="%")),
                y=alt.Y("feature:N", sort="-x", title=None),
                color=alt.Color(
                    "negligible:N",
                    title=f"< {NEGLIGIBLE_SHARE:.0%} (drop?)",
                    scale=alt.Scale(domain=[False, True], range=["#4c78a8", "#bab0ac"]),
                ),
                tooltip=[
                    "feature:N",
                    "ref:N",
                    alt.Tooltip("gain:Q", format=",.2f"),
                    alt.Tooltip("share:Q", format=".2%"),
                ],
            )
            .properties(width=360, height=max(60, 18 * n))
        )

    def curve_chart(self) -> alt.LayerChart:
        """Training and validation log loss per round, with the best round marked."""
        import altair as alt

        curve = self.curve
        if curve.height > _CURVE_POINTS:  # keep the chart light; keep the best round
            step = math.ceil(curve.height / _CURVE_POINTS)
            keep = (pl.col("round") % step == 0) | (pl.col("round") == self.best_round)
            curve = curve.filter(keep | (pl.col("round") == 1))
        long = curve.unpivot(
            index="round",
            on=["train_logloss", "valid_logloss"],
            variable_name="sample",
            value_name="logloss",
        ).with_columns(pl.col("sample").str.replace("_logloss", ""))
        lines = (
            alt.Chart(long)
            .mark_line()
            .encode(
                x=alt.X("round:Q", title="boosting round"),
                y=alt.Y("logloss:Q", title="log loss", scale=alt.Scale(zero=False)),
                color=alt.Color("sample:N", title=None),
                tooltip=["round:Q", "sample:N", alt.Tooltip("logloss:Q", format=".5f")],
            )
        )
        best = (
            alt.Chart(pl.DataFrame({"round": [self.best_round], "label": ["best round"]}))
            .mark_rule(strokeDash=[4, 3], color="#777")
            .encode(x="round:Q", tooltip=["label:N", "round:Q"])
        )
        return alt.layer(lines, best).properties(
            title=f"Validation curve (best round {self.best_round} of {self.rounds})",
            width=420,
            height=220,
        )

    # -- display ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        m = self.metrics
        return (
            f"TrainResult(label={self.label!r}, inputs={len(self.feature_columns)}, "
            f"best_round={self.best_round}/{self.rounds}, valid auc={m['auc']:.4f} "
            f"pr_auc={m['pr_auc']:.4f} logloss={m['logloss']:.4f}, "
            f"drop_candidates={self.drop_candidates})"
        )

    def _repr_html_(self) -> str:
        m = self.metrics
        metrics = [
            [name, f"{m[name]:.4f}", f"{m['train_' + name]:.4f}"]
            for name in ("auc", "pr_auc", "logloss")
        ]
        metrics.append(["rows", f"{m['valid_rows']:,}", f"{m['train_rows']:,}"])
        metrics.append(
            ["positive rate", f"{m['valid_positive_rate']:.2%}", f"{m['train_positive_rate']:.2%}"]
        )
        imp = [
            [r["feature"], r["ref"] or "(extra column)", f"{r['share']:.1%}", r["negligible"]]
            for r in self.importance.iter_rows(named=True)
        ]
        w = self.window
        period = (
            f"train {w['train_start']:%Y-%m-%d %H:%M} → {w['train_end']:%Y-%m-%d %H:%M}, "
            f"validate {w['valid_start']:%Y-%m-%d %H:%M} → {w['valid_end']:%Y-%m-%d %H:%M} UTC"
        )
        drop = ", ".join(self.drop_candidates) or "none"
        return (
            f"<b>TrainResult</b> label <code>{html.escape(self.label)}</code>, best round "
            f"{self.best_round} of {self.rounds}, {self.seconds:.1f} s<br>{html.escape(period)}"
            + table(["metric", "validation", "training"], metrics)
            + table(["input", "feature ref", "share of gain", "negligible"], imp)
            + f"candidates to drop: {html.escape(drop)}"
        )


# ------------------------------------------------------------------------------------- train


def train(
    store: FeatureStore,
    training_set: Any,
    *,
    label: str,
    features: Sequence[FeatureLike] | FeatureService,
    extra_columns: Sequence[str] = (),
    params: Mapping[str, Any] | None = None,
    split: TimeSplit | None = None,
    num_boost_round: int = 300,
    early_stopping_rounds: int | None = 20,
    progress: Progress | None = None,
    negligible_share: float = NEGLIGIBLE_SHARE,
) -> TrainResult:
    """Train an XGBoost binary classifier on a point-in-time training set.

    Parameters
    ----------
    store
        The feature store the training set came from: ``features`` are resolved against it
        to the exact view versions (``"user_stats@v1:x"``) the model records.
    training_set
        ``store.get_historical_features(entity_rows, features)`` (polars; pandas accepted):
        the label, the timestamp and one column per feature, named as that call named them
        (``"x"``, or ``"user_stats__x"`` with ``full_feature_names=True``).
    label
        The 0/1 (or boolean) target column.
    features
        Feature refs, as given to ``get_historical_features``. Pin versions
        (``"user_stats@v1:x"``) when the training set was built from an older version. An
        applied :class:`~fskit.FeatureService` stands for its pinned refs, which the model
        records (``result.feature_refs``).
    extra_columns
        Plain columns of the training set used as model inputs too, e.g. request-time fields
        (``"amount"``); serving must pass them with the request.
    params
        XGBoost parameters over :data:`DEFAULT_PARAMS` (``objective`` must stay
        ``"binary:logistic"``; ``seed`` defaults to 0, ``nthread`` to 2, or 1 on a machine
        with 2 cores or fewer, see :data:`DEFAULT_PARAMS`).
    split
        How to split by time (default ``TimeSplit()``: validate on the latest 20% of rows).
    num_boost_round, early_stopping_rounds
        At most this many rounds; stop when the validation log loss has not improved for
        ``early_stopping_rounds`` (``None``: never stop early). The booster keeps the best
        round's trees.
    progress
        ``progress(round, num_boost_round, {"train_logloss": ..., "valid_logloss": ...})``
        after every round; return ``True`` to stop.
    negligible_share
        Inputs below this share of the total gain are ``drop_candidates``.
    """
    import xgboost as xgb

    started = time.perf_counter()
    frame = _as_polars(training_set, "train", "training_set")
    if isinstance(frame, pl.LazyFrame):
        frame = frame.collect()
    split = TimeSplit() if split is None else split
    if not isinstance(split, TimeSplit):
        raise DefinitionError(f"train: split must be a TimeSplit, got {type(split).__name__}")
    _check_int("num_boost_round", num_boost_round)
    if early_stopping_rounds is not None:
        _check_int("early_stopping_rounds", early_stopping_rounds)
    if not isinstance(negligible_share, (int, float)) or not 0 <= negligible_share < 1:
        raise DefinitionError(
            f"train: negligible_share must be a share in [0, 1), got {negligible_share!r}"
        )
    if progress is not None and not callable(progress):
        raise DefinitionError(f"train: progress must be callable, got {progress!r}")
    full_params = _params(params)

    refs, columns, full_names, view_logic = _resolve(store, features, frame)
    extras = _extra_columns(extra_columns, frame, columns, label, split.timestamp_column)
    inputs = (*columns, *extras)
    y = _labels(frame, label)
    valid, cutoff = split.split(frame)
    train_rows = frame.filter(pl.Series(~valid))
    valid_rows = frame.filter(pl.Series(valid))
    y_train, y_valid = y[~valid], y[valid]
    if y_train.min() == y_train.max():
        raise EntityFrameError(
            f"train: every label in the training period is {y_train[0]:g} "
            f"({len(y_train)} rows before {_from_us(cutoff).isoformat()}); a classifier needs "
            "both classes: use more data or an earlier validation cutoff"
        )

    categories, types = _input_types(train_rows, inputs)
    x_train = encode_features(train_rows, inputs, categories, owner="train")
    x_valid = encode_features(valid_rows, inputs, categories, owner="train")
    names = list(inputs) if _xgb_names_ok(inputs) else None
    nthread = int(full_params["nthread"])
    kwargs = {
        "feature_names": names,
        "feature_types": types,
        "enable_categorical": "c" in types,
        "nthread": nthread,
    }
    dtrain = xgb.DMatrix(x_train, label=y_train, **kwargs)
    dvalid = xgb.DMatrix(x_valid, label=y_valid, **kwargs)

    history: dict[str, dict[str, list[float]]] = {}
    callbacks = [] if progress is None else [_progress_callback(progress, num_boost_round)]
    booster = xgb.train(
        full_params,
        dtrain,
        num_boost_round=num_boost_round,
        evals=[(dtrain, "train"), (dvalid, "valid")],
        early_stopping_rounds=early_stopping_rounds,
        evals_result=history,
        callbacks=callbacks,
        verbose_eval=False,
    )
    rounds = len(history["valid"]["logloss"])
    best_round = int(getattr(booster, "best_iteration", rounds - 1)) + 1
    if booster.num_boosted_rounds() > best_round:
        booster = booster[:best_round]
    booster.set_param({"nthread": nthread})
    curve = pl.DataFrame(
        {
            "round": np.arange(1, rounds + 1, dtype=np.int64),
            "train_logloss": history["train"]["logloss"],
            "valid_logloss": history["valid"]["logloss"],
        },
        schema={"round": pl.Int64, "train_logloss": pl.Float64, "valid_logloss": pl.Float64},
    )

    p_train = predict_matrix(booster, x_train)
    p_valid = predict_matrix(booster, x_valid)
    m_valid = binary_metrics(y_valid, p_valid)
    m_train = binary_metrics(y_train, p_train)
    metrics: dict[str, Any] = {
        "auc": m_valid["auc"],
        "pr_auc": m_valid["pr_auc"],
        "logloss": m_valid["logloss"],
        "train_auc": m_train["auc"],
        "train_pr_auc": m_train["pr_auc"],
        "train_logloss": m_train["logloss"],
        "valid_rows": m_valid["rows"],
        "train_rows": m_train["rows"],
        "valid_positive_rate": m_valid["positive_rate"],
        "train_positive_rate": m_train["positive_rate"],
        "best_round": best_round,
        "rounds": rounds,
    }

    importance = _importance(booster, inputs, refs, names, negligible_share)
    drop = importance.filter(pl.col("negligible"))["feature"].to_list()
    ts_valid = split.timestamps_us(valid_rows)
    ts_train = split.timestamps_us(train_rows)
    window = {
        "train_start": _from_us(int(ts_train.min())),
        "train_end": _from_us(int(ts_train.max())),
        "valid_start": _from_us(int(ts_valid.min())),
        "valid_end": _from_us(int(ts_valid.max())),
        "cutoff": _from_us(cutoff),
    }
    reference = _reference(valid_rows, inputs, p_valid)
    fingerprint = _fingerprint(frame.select(split.timestamp_column, label, *inputs))
    dtypes = {c: _dtype_str(frame.schema[c]) for c in inputs}
    stored_params = {
        **full_params,
        "num_boost_round": num_boost_round,
        "early_stopping_rounds": early_stopping_rounds,
        "validation_fraction": None if split.cutoff else split.validation_fraction,
        "timestamp_column": split.timestamp_column,
    }
    return TrainResult(
        booster=booster,
        metrics=metrics,
        importance=importance,
        curve=curve,
        feature_refs=tuple(refs),
        feature_columns=tuple(inputs),
        label=label,
        window=window,
        drop_candidates=drop,
        extra_columns=tuple(extras),
        categories=categories,
        params=stored_params,
        best_round=best_round,
        rounds=rounds,
        fingerprint=fingerprint,
        n_rows=frame.height,
        reference=reference,
        view_logic=view_logic,
        feature_dtypes=dtypes,
        library_versions=_library_versions(),
        full_feature_names=full_names,
        seconds=time.perf_counter() - started,
        store=store,
    )


# ---------------------------------------------------------------------------------- helpers


def _check_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DefinitionError(f"train: {name} must be an int >= 1, got {value!r}")


def _params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    if params is not None and not isinstance(params, Mapping):
        raise DefinitionError(f"train: params must be a dict of XGBoost parameters, got {params!r}")
    given = dict(params or {})
    if given.get("objective", "binary:logistic") != "binary:logistic":
        raise DefinitionError(
            f"train: objective must be 'binary:logistic' (the model serves probabilities), "
            f"got {given['objective']!r}"
        )
    merged = {**DEFAULT_PARAMS, **given}
    metrics = merged.get("eval_metric") or []
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    # early stopping watches the last metric: the validation log loss
    merged["eval_metric"] = [m for m in metrics if m != "logloss"] + ["logloss"]
    if merged.get("nthread") is None:
        merged["nthread"] = DEFAULT_PARAMS["nthread"]
    return merged


def _resolve(
    store: FeatureStore, features: Sequence[FeatureLike] | FeatureService, frame: pl.DataFrame
) -> tuple[list[str], list[str], bool, dict[str, dict[str, Any]]]:
    """Versioned refs, their training-set columns, the naming used, and each view's logic."""
    from fskit.offline import resolve_features

    full = resolve_features(store.registry, features, full_feature_names=True)
    try:
        short: list[Any] | None = resolve_features(store.registry, features)
    except FeatureRefError:  # the same feature name in two views: only full names work
        short = None
    if short is not None and all(r.column in frame.columns for r in short):
        chosen, full_names = short, False
    elif all(r.column in frame.columns for r in full):
        chosen, full_names = full, True
    else:
        candidates = full if short is None else short
        missing = [
            f"{r.view.ref}:{r.feature} (column {r.column!r})"
            for r in candidates
            if r.column not in frame.columns
        ]
        raise EntityFrameError(
            f"train: the training set lacks the columns of feature(s) {missing} "
            f"(columns: {frame.columns}); build it with "
            "store.get_historical_features(entity_rows, features) using the same features"
        )
    refs = [f"{r.view.ref}:{r.feature}" for r in chosen]
    views = model_views(store.registry, [r.view for r in chosen])
    logic = {ref: view_logic(store.registry, view) for ref, view in views.items()}
    return refs, [r.column for r in chosen], full_names, logic


def _extra_columns(
    extra: Sequence[str], frame: pl.DataFrame, columns: list[str], label: str, ts: str
) -> list[str]:
    if isinstance(extra, str):
        extra = [extra]
    extras = list(extra)
    for name in extras:
        if not isinstance(name, str) or name not in frame.columns:
            raise EntityFrameError(
                f"train: extra column {name!r} is not a column of the training set "
                f"(columns: {frame.columns})"
            )
    inputs = [*columns, *extras]
    if len(set(inputs)) != len(inputs):
        dupes = sorted({c for c in inputs if inputs.count(c) > 1})
        raise DefinitionError(f"train: input column(s) {dupes} given twice")
    for name, role in ((label, "label"), (ts, "timestamp")):
        if name in inputs:
            raise DefinitionError(f"train: the {role} column {name!r} cannot be a model input")
    for reserved in (SCORE, MODEL_VERSION):
        if reserved in inputs:
            raise DefinitionError(
                f"train: a model input may not be named {reserved!r} (predictions use that "
                "name); rename the column"
            )
    return extras


def _labels(frame: pl.DataFrame, label: str) -> np.ndarray:
    if not isinstance(label, str) or label not in frame.columns:
        raise EntityFrameError(
            f"train: label {label!r} is not a column of the training set (columns: {frame.columns})"
        )
    series = frame.get_column(label)
    if series.null_count():
        raise EntityFrameError(
            f"train: label {label!r} has {series.null_count()} nulls; drop those rows first"
        )
    if not (series.dtype == pl.Boolean or series.dtype.is_numeric()):
        raise EntityFrameError(f"train: label {label!r} must be 0/1 or boolean, got {series.dtype}")
    y = series.cast(pl.Float64).to_numpy()
    bad = np.setdiff1d(np.unique(y), [0.0, 1.0])
    if bad.size:
        raise EntityFrameError(
            f"train: label {label!r} must hold only 0 and 1 (or booleans), also found "
            f"{bad[:5].tolist()}"
        )
    return y


def _input_types(
    train_rows: pl.DataFrame, inputs: Sequence[str]
) -> tuple[dict[str, list[str]], list[str]]:
    """Category lists (sorted, from the training period) and XGBoost feature types."""
    categories: dict[str, list[str]] = {}
    types = []
    for name in inputs:
        dtype = train_rows.schema[name]
        if isinstance(dtype, (pl.String, pl.Categorical, pl.Enum)):
            values = train_rows.get_column(name).cast(pl.String).drop_nulls().unique().sort()
            categories[name] = values.to_list()
            types.append("c")
        elif dtype.is_numeric() or dtype in (pl.Boolean, pl.Null):
            types.append("q")
        else:
            raise EntityFrameError(
                f"train: input {name!r} is {dtype}; model inputs must be numeric, boolean or "
                "strings (convert dates to numbers, e.g. an age in days)"
            )
    return categories, types


def _xgb_names_ok(names: Sequence[str]) -> bool:
    return all(not any(c in n for c in "[]<") and n for n in names)


def _progress_callback(progress: Progress, total: int) -> xgb.callback.TrainingCallback:
    import xgboost as xgb

    class _Progress(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            info = {
                "train_logloss": float(evals_log["train"]["logloss"][-1]),
                "valid_logloss": float(evals_log["valid"]["logloss"][-1]),
            }
            return progress(epoch + 1, total, info) is True

    return _Progress()


def _importance(
    booster: xgb.Booster,
    inputs: Sequence[str],
    refs: Sequence[str],
    names: list[str] | None,
    negligible_share: float,
) -> pl.DataFrame:
    keys = names if names is not None else [f"f{i}" for i in range(len(inputs))]
    scores = booster.get_score(importance_type="total_gain")
    gain = [float(scores.get(k, 0.0)) for k in keys]
    total = sum(gain)
    share = [g / total if total > 0 else 0.0 for g in gain]
    return pl.DataFrame(
        {
            "feature": list(inputs),
            "ref": [refs[i] if i < len(refs) else None for i in range(len(inputs))],
            "gain": gain,
            "share": share,
            "negligible": [s < negligible_share for s in share],
        },
        schema={
            "feature": pl.String,
            "ref": pl.String,
            "gain": pl.Float64,
            "share": pl.Float64,
            "negligible": pl.Boolean,
        },
    ).sort("gain", "feature", descending=[True, False])


def _reference(valid_rows: pl.DataFrame, inputs: Sequence[str], scores: np.ndarray) -> dict:
    """The drift reference: every input and the score over the validation period."""
    from fskit import drift

    frame = valid_rows.select(inputs).with_columns(pl.Series(SCORE, scores, dtype=pl.Float64))
    profile = drift.profile(frame, features=[*inputs, SCORE], max_values=REFERENCE_VALUES)
    return profile.to_dict()


def _fingerprint(frame: pl.DataFrame) -> str:
    """sha256 of the frame's Arrow IPC bytes (uncompressed, one chunk): same data, same hash."""
    buffer = io.BytesIO()
    frame.rechunk().write_ipc(buffer, compression="uncompressed")
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def _dtype_str(dtype: pl.DataType) -> str:
    from fskit._utils.dtypes import dtype_to_str

    try:
        return dtype_to_str(dtype)
    except TypeError:
        return str(dtype)


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import xgboost

    try:
        fskit_version = version("fskit")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        fskit_version = "0.0.0"
    return {
        "python": platform.python_version(),
        "fskit": fskit_version,
        "xgboost": xgboost.__version__,
        "polars": pl.__version__,
        "numpy": np.__version__,
    }
