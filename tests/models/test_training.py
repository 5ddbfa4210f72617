"""fk.train on the fraud sample data and on tiny frames: split, metrics, learning, progress.

Real xgboost throughout. The fraud model is trained once per module (a few seconds).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
import scipy.stats

import fskit as fk
from fskit import datasets
from fskit.errors import DefinitionError, EntityFrameError, FeatureRefError
from fskit.training import (
    TimeSplit,
    TrainResult,
    average_precision,
    log_loss,
    roc_auc,
    train,
)

FEATURES = [
    "user_stats:total_purchases",
    "user_stats:avg_purchase_value",
    "user_stats:purchases_7d",
    "user_stats:amount_7d",
    "user_stats:max_amount_30d",
    "user_profile:age",
    "user_profile:country",
    "merchant_profile:category",
]


@pytest.fixture(scope="module")
def fraud(tmp_path_factory):
    """The fraud store, its training set, and one trained model with progress recorded."""
    store = fk.FeatureStore(tmp_path_factory.mktemp("fraud_repo"))
    store.apply(datasets.fraud_definitions())
    training_set = store.get_historical_features(
        datasets.fraud_entity_rows(), FEATURES, as_known_at=True
    )
    calls = []
    result = train(
        store,
        training_set,
        label="is_fraud",
        features=FEATURES,
        extra_columns=["amount"],
        progress=lambda *args: calls.append(args),
    )
    return store, training_set, result, calls


def _valid_rows(result: TrainResult, training_set: pl.DataFrame) -> pl.DataFrame:
    return training_set.filter(pl.col("event_timestamp") >= result.window["cutoff"])


# ------------------------------------------------------------------------------------ split


def test_every_validation_row_is_later_than_every_training_row(fraud):
    _, training_set, result, _ = fraud
    valid, cutoff_us = TimeSplit().split(training_set)
    ts = training_set["event_timestamp"]
    train_ts, valid_ts = ts.filter(pl.Series(~valid)), ts.filter(pl.Series(valid))
    assert train_ts.max() < valid_ts.min()
    assert valid.mean() == pytest.approx(0.2, abs=0.01)
    # train() used exactly this split
    w = result.window
    assert (w["train_start"], w["train_end"]) == (train_ts.min(), train_ts.max())
    assert (w["valid_start"], w["valid_end"]) == (valid_ts.min(), valid_ts.max())
    assert w["train_end"] < w["cutoff"] <= w["valid_start"]
    assert result.metrics["valid_rows"] == int(valid.sum())
    assert result.metrics["train_rows"] == training_set.height - int(valid.sum())


def test_split_sends_ties_at_the_cutoff_to_validation_and_honours_an_explicit_cutoff():
    day = [datetime(2026, 1, d, tzinfo=UTC) for d in (1, 2, 3, 3, 3, 3, 4, 5, 6, 7)]
    frame = pl.DataFrame({"event_timestamp": day})
    valid, _ = TimeSplit(validation_fraction=0.6).split(frame)  # cutoff lands inside the ties
    assert valid.tolist() == [False, False] + [True] * 8
    naive = TimeSplit(cutoff=datetime(2026, 1, 5)).split(frame)[0]  # naive means UTC
    assert naive.tolist() == [False] * 7 + [True] * 3
    with pytest.raises(EntityFrameError, match="no validation rows"):
        TimeSplit(cutoff=datetime(2027, 1, 1)).split(frame)
    with pytest.raises(EntityFrameError, match="no training rows"):
        TimeSplit(cutoff=datetime(2025, 1, 1)).split(frame)
    with pytest.raises(DefinitionError, match="validation_fraction"):
        TimeSplit(validation_fraction=0)


def test_training_data_never_includes_the_validation_period(fraud):
    """Retraining on only the training period gives the very same booster: no later row used."""
    store, training_set, result, _ = fraud
    cutoff = result.window["cutoff"]
    early = training_set.filter(pl.col("event_timestamp") < cutoff)
    valid = _valid_rows(result, training_set)
    # same split, but the validation rows' features scrambled: the model must not change
    scrambled = valid.with_columns(pl.col("amount", "avg_purchase_value").shuffle(seed=1))
    again = train(
        store,
        pl.concat([early, scrambled]),
        label="is_fraud",
        features=FEATURES,
        extra_columns=["amount"],
        split=TimeSplit(cutoff=cutoff),
        num_boost_round=5,
        early_stopping_rounds=None,
    )
    first = train(
        store,
        training_set,
        label="is_fraud",
        features=FEATURES,
        extra_columns=["amount"],
        split=TimeSplit(cutoff=cutoff),
        num_boost_round=5,
        early_stopping_rounds=None,
    )
    np.testing.assert_array_equal(first.predict(valid), again.predict(valid))


# ---------------------------------------------------------------------------------- metrics


def test_metrics_equal_an_independent_computation(fraud):
    _, training_set, result, _ = fraud
    valid = _valid_rows(result, training_set)
    y = valid["is_fraud"].cast(pl.Float64).to_numpy()
    p = result.predict(valid)

    ranks = scipy.stats.rankdata(p)  # Mann-Whitney U from average ranks
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    auc = (ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    assert result.metrics["auc"] == pytest.approx(auc, abs=1e-12)

    # average precision: mean over positives of the precision at their score (ties included)
    order = np.sort(p)
    at_or_above = len(p) - np.searchsorted(order, p[y == 1], side="left")
    pos_sorted = np.sort(p[y == 1])
    pos_at_or_above = len(pos_sorted) - np.searchsorted(pos_sorted, p[y == 1], side="left")
    ap = np.mean(pos_at_or_above / at_or_above)
    assert result.metrics["pr_auc"] == pytest.approx(ap, abs=1e-12)

    logloss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert result.metrics["logloss"] == pytest.approx(logloss, abs=1e-12)
    # ... and XGBoost's own evaluation of the best round agrees (float32 inside)
    best = result.curve.filter(pl.col("round") == result.best_round)
    assert result.metrics["logloss"] == pytest.approx(best["valid_logloss"].item(), abs=1e-5)

    early = training_set.filter(pl.col("event_timestamp") < result.window["cutoff"])
    y_train = early["is_fraud"].to_numpy()
    auc_train = roc_auc(y_train, result.predict(early))
    assert result.metrics["train_auc"] == pytest.approx(auc_train, abs=1e-12)
    assert result.metrics["train_auc"] > result.metrics["auc"]  # the usual gap, not a leak


def test_metric_functions_on_ties_and_edge_cases():
    y = [0, 1, 0, 1, 1, 0]
    s = [0.2, 0.2, 0.5, 0.9, 0.5, 0.1]
    pos = [a for a, label in zip(s, y, strict=True) if label]
    neg = [b for b, label in zip(s, y, strict=True) if not label]
    brute = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg])
    assert roc_auc(y, s) == pytest.approx(brute) == pytest.approx(7 / 9)
    # thresholds 0.9 (1/1), 0.5 (2/3), 0.2 (3/5): recall steps of 1/3 each
    assert average_precision(y, s) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert np.isnan(roc_auc([1, 1], [0.1, 0.2]))
    assert np.isnan(average_precision([0, 0], [0.1, 0.2]))
    assert log_loss([1, 0], [1.0, 0.0]) == pytest.approx(1e-15, abs=1e-12)  # clipped, finite


# --------------------------------------------------------------------------------- learning


def test_the_model_learns_the_fraud_signal(fraud):
    _, training_set, result, _ = fraud
    m = result.metrics
    # measured on the shipped sample: valid AUC 0.93, PR-AUC 0.53 at a 1.7% base rate
    assert m["auc"] > 0.88
    assert m["pr_auc"] > 10 * m["valid_positive_rate"]
    assert m["logloss"] < log_loss(*_constant_baseline(training_set, result))
    assert result.feature_refs == tuple(f.replace(":", "@v1:") for f in FEATURES)  # versioned refs
    assert result.feature_columns == (
        "total_purchases",
        "avg_purchase_value",
        "purchases_7d",
        "amount_7d",
        "max_amount_30d",
        "age",
        "country",
        "category",
        "amount",
    )
    top = result.importance["feature"].head(3).to_list()
    assert "amount" in top  # fraud bursts spend far above the card holder's habit
    assert result.importance["share"].sum() == pytest.approx(1.0)


def _constant_baseline(training_set, result):
    """Labels of the validation period and the training period's base rate for every row."""
    valid = _valid_rows(result, training_set)
    rate = result.metrics["train_positive_rate"]
    return valid["is_fraud"].to_numpy(), np.full(valid.height, rate)


def test_early_stopping_keeps_the_best_round(fraud):
    _, _, result, _ = fraud
    curve = result.curve
    assert curve["round"].to_list() == list(range(1, result.rounds + 1))
    assert result.rounds < 300  # stopped early
    best = int(curve["valid_logloss"].arg_min()) + 1
    assert result.best_round == best
    assert result.rounds == best + 20  # early_stopping_rounds=20
    assert result.booster.num_boosted_rounds() == best


def test_progress_is_called_once_per_round(fraud):
    _, _, result, calls = fraud
    assert [c[0] for c in calls] == list(range(1, result.rounds + 1))
    assert {c[1] for c in calls} == {300}
    assert calls[-1][2] == {
        "train_logloss": pytest.approx(result.curve["train_logloss"][-1]),
        "valid_logloss": pytest.approx(result.curve["valid_logloss"][-1]),
    }


# ---------------------------------------------------------------------------- tiny data sets


def _tiny(n: int = 3000, seed: int = 0) -> tuple[fk.FeatureStore, pl.DataFrame]:
    return _tiny_store(n, seed, None)


def _tiny_store(n, seed, path):
    import tempfile

    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    users = pl.DataFrame(
        {
            "user_id": np.arange(n, dtype=np.int64),
            "event_timestamp": [t0] * n,
            "x": rng.normal(size=n),
            "color": rng.choice(["red", "green", "blue"], n),
        }
    )
    store = fk.FeatureStore(path or tempfile.mkdtemp())
    user = fk.Entity("user", join_keys=["user_id"])
    store.apply([user, fk.FeatureView(name="profile", entities=[user], source=users)])
    x = users["x"].to_numpy()
    red = (users["color"] == "red").to_numpy()
    p = 1 / (1 + np.exp(-(2 * x + 2 * red - 1)))
    rows = pl.DataFrame(
        {
            "user_id": np.arange(n, dtype=np.int64),
            "event_timestamp": [t0 + timedelta(minutes=int(i)) for i in range(n)],
            "label": (rng.random(n) < p).astype(np.int64),
            "noise": np.ones(n),
        }
    )
    return store, store.get_historical_features(rows, ["profile:x", "profile:color"])


def test_constant_inputs_are_negligible_drop_candidates():
    store, frame = _tiny()
    result = train(
        store,
        frame,
        label="label",
        features=["profile:x", "profile:color"],
        extra_columns=["noise"],
        num_boost_round=30,
    )
    assert result.drop_candidates == ["noise"]
    row = result.importance.filter(pl.col("feature") == "noise").row(0, named=True)
    assert row == {"feature": "noise", "ref": None, "gain": 0.0, "share": 0.0, "negligible": True}
    assert set(result.importance["feature"]) == {"x", "color", "noise"}


def test_training_is_deterministic():
    store, frame = _tiny()
    kwargs = {"label": "label", "features": ["profile:x", "profile:color"], "num_boost_round": 15}
    a, b = train(store, frame, **kwargs), train(store, frame, **kwargs)
    np.testing.assert_array_equal(a.predict(frame), b.predict(frame))
    assert a.fingerprint == b.fingerprint
    c = train(store, frame.with_columns(pl.col("x") * 1.0001), **kwargs)
    assert c.fingerprint != a.fingerprint  # the fingerprint sees the data
    assert a.params["seed"] == 0 and a.params["nthread"] in (1, 2)
    d = train(store, frame, **kwargs, params={"nthread": 2 if a.params["nthread"] == 1 else 1})
    np.testing.assert_array_equal(a.predict(frame), d.predict(frame))  # threads change nothing


def test_progress_returning_true_stops_training():
    store, frame = _tiny()
    seen = []

    def progress(round_, total, info):
        seen.append(round_)
        return round_ == 3

    result = train(
        store, frame, label="label", features=["profile:x"], progress=progress, num_boost_round=50
    )
    assert seen == [1, 2, 3]
    assert result.rounds == 3


def test_full_feature_names_training_sets_work():
    store, frame = _tiny()
    full = frame.rename({"x": "profile__x", "color": "profile__color"})
    result = train(
        store, full, label="label", features=["profile:x", "profile:color"], num_boost_round=5
    )
    assert result.feature_columns == ("profile__x", "profile__color")
    assert result.feature_refs == ("profile@v1:x", "profile@v1:color")
    assert result.full_feature_names


def test_clear_errors():
    store, frame = _tiny()
    kw = {"label": "label", "num_boost_round": 2}
    with pytest.raises(EntityFrameError, match=r"lacks the columns of feature\(s\)"):
        train(store, frame.drop("x"), features=["profile:x"], **kw)
    with pytest.raises(FeatureRefError, match="unknown feature view 'nope'"):
        train(store, frame, features=["nope:x"], **kw)
    with pytest.raises(EntityFrameError, match="only 0 and 1"):
        train(store, frame.with_columns(label=pl.col("label") * 2), features=["profile:x"], **kw)
    with pytest.raises(EntityFrameError, match="every label in the training period is 0"):
        zeros = frame.with_columns(label=pl.when(pl.col("user_id") > 2900).then(1).otherwise(0))
        train(store, zeros, features=["profile:x"], **kw)
    with pytest.raises(DefinitionError, match="objective must be 'binary:logistic'"):
        train(store, frame, features=["profile:x"], params={"objective": "reg:squarederror"}, **kw)
    with pytest.raises(DefinitionError, match="cannot be a model input"):
        train(store, frame, features=["profile:x"], extra_columns=["label"], **kw)
    with pytest.raises(EntityFrameError, match="extra column 'amount'"):
        train(store, frame, features=["profile:x"], extra_columns=["amount"], **kw)


def test_charts_are_light_altair_specs(fraud):
    _, _, result, _ = fraud
    imp = result.importance_chart().to_dict()
    assert imp["mark"]["type"] == "bar"
    curve = result.curve_chart().to_dict()
    datasets_ = {**imp.get("datasets", {}), **curve.get("datasets", {})}
    assert sum(len(rows) for rows in datasets_.values()) < 400
    assert "TrainResult" in repr(result) and "<table>" in result._repr_html_()


def test_long_curves_are_thinned_for_the_chart_but_keep_the_best_round():
    store, frame = _tiny()
    result = train(
        store,
        frame,
        label="label",
        features=["profile:x"],
        num_boost_round=450,
        early_stopping_rounds=400,
        params={"max_depth": 2, "eta": 0.3},
    )
    assert result.curve.height == result.best_round + 400 > 2 * 200
    spec = result.curve_chart().to_dict()
    data = {name: rows for name, rows in spec["datasets"].items()}
    lines = max(data.values(), key=len)
    assert len(lines) <= 2 * 230
    assert result.best_round in {row["round"] for row in lines}
