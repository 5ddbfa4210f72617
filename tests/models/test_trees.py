"""The compiled trees against XGBoost itself: same leaves, same margins, same probabilities.

Each example trains a real XGBoost model on random data (numerical and native categorical
features, missing values, random depth, rounds, learning rate and base score) and scores random
rows, including values on split thresholds, out-of-range and invalid categories and infinities.
"""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fskit._trees import CompiledTrees


def _train(seed: int, n_num: int, n_cat: int, depth: int, rounds: int, eta: float, base: float):
    rng = np.random.default_rng(seed)
    n = 300
    num = rng.normal(size=(n, n_num)).round(1)  # coarse values: many ties with thresholds
    cat = rng.integers(0, 6, size=(n, n_cat)).astype(np.float64)
    x = np.column_stack([num, cat]).astype(np.float32)
    x[rng.random(x.shape) < 0.15] = np.nan
    signal = np.nan_to_num(x[:, 0]) + (np.nan_to_num(x[:, -1]) % 2 if n_cat else 0)
    y = (signal + rng.normal(size=n) > 0.3).astype(int)
    types = ["q"] * n_num + ["c"] * n_cat
    dtrain = xgb.DMatrix(x, label=y, feature_types=types, enable_categorical=bool(n_cat))
    params = {
        "objective": "binary:logistic",
        "max_depth": depth,
        "eta": eta,
        "nthread": 1,
        "max_cat_to_onehot": 1 if seed % 2 else 8,  # partition and one-hot categorical splits
    }
    if base is not None:
        params["base_score"] = base
    booster = xgb.train(params, dtrain, num_boost_round=rounds)
    return booster, x, types


def _rows(booster, x: np.ndarray, types: list[str], seed: int) -> np.ndarray:
    """Rows to score: training rows, thresholds exactly, and awkward values."""
    rng = np.random.default_rng(seed + 1)
    rows = [x[rng.integers(0, len(x), 40)]]
    trees = CompiledTrees.from_booster(booster)[0]
    assert trees is not None
    thresholds = [t for t, left in zip(trees.threshold, trees.left, strict=True) if left != -1]
    edge = rng.choice(x[:40].copy().ravel(), size=(20, x.shape[1]))
    for j, kind in enumerate(types):
        if kind == "q" and thresholds:
            edge[:10, j] = rng.choice(np.asarray(thresholds, dtype=np.float32), 10)
            edge[10:12, j] = [np.inf, -np.inf]
        elif kind == "c":
            edge[:, j] = rng.choice([-1.0, 0.0, 2.0, 5.0, 7.0, 2.5, 1e9, np.nan], 20)
    rows.append(edge.astype(np.float32))
    return np.vstack(rows).astype(np.float32)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n_num=st.integers(1, 4),
    n_cat=st.integers(0, 2),
    depth=st.integers(1, 6),
    rounds=st.integers(1, 25),
    eta=st.sampled_from([0.05, 0.3, 1.0]),
    base=st.sampled_from([None, 0.2, 0.5, 0.93]),
)
def test_compiled_trees_score_as_xgboost(seed, n_num, n_cat, depth, rounds, eta, base):
    booster, x, types = _train(seed, n_num, n_cat, depth, rounds, eta, base)
    trees, reason = CompiledTrees.from_booster(booster)
    assert trees is not None, reason
    rows = _rows(booster, x, types, seed)
    # leaves: XGBoost's pred_leaf needs a DMatrix, which refuses infinities (inplace_predict,
    # the serving call, takes them: they are scored below)
    finite = rows[~np.isinf(rows).any(axis=1)]
    dmatrix = xgb.DMatrix(finite, feature_types=types, enable_categorical=bool(n_cat))
    expected_leaves = booster.predict(dmatrix, pred_leaf=True).astype(int).reshape(len(finite), -1)
    assert [trees.leaves(r) for r in finite.tolist()] == expected_leaves.tolist()
    # the margin is summed as XGBoost sums it: bitwise equal, by generated code and by walk
    as_lists = rows.tolist()
    margins = booster.inplace_predict(rows, predict_type="margin")
    assert trees.generated is not None
    np.testing.assert_array_equal(trees.margins(as_lists), margins)
    np.testing.assert_array_equal(trees.margins(as_lists, walk=True), margins)
    probabilities = booster.inplace_predict(rows)
    np.testing.assert_array_equal(trees.predict(as_lists), probabilities)


def test_without_the_c_library_probabilities_are_within_a_float32_step(monkeypatch):
    import fskit._trees as module

    booster, x, _ = _train(7, 3, 1, 6, 40, 0.3, None)
    trees, _ = CompiledTrees.from_booster(booster)
    monkeypatch.setattr(module, "_c_function", lambda name: None)
    rows = x[:300]
    probabilities = booster.inplace_predict(rows)
    np.testing.assert_allclose(trees.predict(rows.tolist()), probabilities, rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"objective": "reg:squarederror"}, "objective 'reg:squarederror'"),
        ({"objective": "binary:logistic", "booster": "dart"}, "booster 'dart'"),
        ({"objective": "multi:softprob", "num_class": 3}, "objective 'multi:softprob'"),
    ],
)
def test_models_it_cannot_score_are_left_to_xgboost(params, reason):
    x = np.arange(30, dtype=np.float32).reshape(-1, 1)
    y = np.arange(30) % 3 if "num_class" in params else np.arange(30) % 2
    booster = xgb.train({**params, "nthread": 1}, xgb.DMatrix(x, label=y), num_boost_round=2)
    trees, why = CompiledTrees.from_booster(booster)
    assert trees is None
    assert reason in why


def test_models_too_big_to_generate_are_walked_with_the_same_answers(monkeypatch):
    import fskit._trees as module

    booster, x, _ = _train(3, 2, 1, 4, 10, 0.3, None)
    generated, _ = CompiledTrees.from_booster(booster)
    assert generated.generated is not None  # generated now, before the limit drops
    monkeypatch.setattr(module, "MAX_GENERATED_NODES", len(generated.left) - 1)
    walked, _ = CompiledTrees.from_booster(booster)
    assert walked.generated is None
    rows = x[:50].tolist()
    assert walked.predict(rows) == generated.predict(rows)


def test_generated_source_holds_only_numbers_from_the_model():
    """A model file cannot put code into the generated function: only ints and finite floats
    are written into the source; anything else leaves the model to the walk."""
    booster, x, _ = _train(5, 2, 0, 3, 4, 0.3, None)
    trees, _ = CompiledTrees.from_booster(booster)
    leaf = trees.left.index(-1)
    trees.threshold[leaf] = "__import__('os').system('false')"  # type: ignore[call-overload]
    assert trees.generated is None  # refused, not compiled
    trees.threshold[leaf] = float("nan")
    trees._generated = False
    assert trees.generated is None
