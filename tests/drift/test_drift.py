"""fskit.drift: K-S equal to scipy, decisions at the nominal error rate, quality checks."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from scipy import stats

from fskit import _drift_stats, drift
from fskit.drift import DriftConfig, ReferenceProfile
from fskit.errors import DefinitionError, FskitError, SchemaError


def _row(report: drift.DriftReport, feature: str) -> dict:
    return report.features.row(by_predicate=pl.col("feature") == feature, named=True)


# --------------------------------------------------------------------------------------------
# K-S equal to scipy
# --------------------------------------------------------------------------------------------

SIZES = [
    (1, 1),
    (3, 7),
    (50, 50),
    (200, 150),
    (999, 1000),
    (4000, 3999),
    (10_000, 10_000),  # largest exact case
    (10_001, 2_000),  # asymptotic from here on
    (30_000, 30_000),
    (70_000, 45_000),  # several merge blocks
]


@pytest.mark.parametrize(("n", "m"), SIZES)
@pytest.mark.parametrize("data", ["continuous", "ties", "shifted"])
def test_ks_statistic_and_p_value_equal_scipy(n: int, m: int, data: str) -> None:
    rng = np.random.default_rng(n * 7919 + m)
    if data == "continuous":
        a, b = rng.normal(size=n), rng.normal(size=m)
    elif data == "ties":
        a, b = rng.integers(0, 15, n).astype(float), rng.integers(0, 16, m).astype(float)
    else:
        a, b = rng.normal(size=n), rng.normal(0.05, 1.0, size=m)
    report = drift.compare(pl.DataFrame({"x": a}), pl.DataFrame({"x": b}))
    row = _row(report, "x")
    expected = stats.ks_2samp(a, b)
    assert row["test"] == "ks"
    assert row["statistic"] == expected.statistic  # bit for bit
    assert row["p_value"] == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert row["n_ref"] == n and row["n_cur"] == m


def test_ks_2samp_sorted_matches_scipy_on_many_random_arrays() -> None:
    rng = np.random.default_rng(0)
    sizes = [tuple(int(k) for k in rng.integers(10_001, 40_000, 2)) for _ in range(25)]
    sizes += [(300_000, 1_000), (2_000, 250_000), (140_000, 8_000)]  # the sparse kernel
    for n, m in sizes:
        decimals = int(rng.integers(1, 4))  # rounding makes ties inside and across samples
        a = np.sort(np.round(rng.normal(size=n), decimals))
        b = np.sort(np.round(rng.normal(rng.uniform(0, 0.05), 1.0, size=m), decimals))
        ours = _drift_stats.ks_2samp_sorted(a, b)
        theirs = stats.ks_2samp(a, b)
        assert ours.statistic == theirs.statistic
        assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300)
        assert ours.wasserstein == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9)


def _brute_force_ks(a: list[float], b: list[float]) -> float:
    points = sorted(set(a) | set(b))
    return max(
        abs(sum(x <= p for x in a) / len(a) - sum(y <= p for y in b) / len(b)) for p in points
    )


values = st.lists(st.integers(-6, 6).map(float) | st.floats(-5, 5), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(a=values, b=values, block=st.sampled_from([2, 3, 5, _drift_stats.BLOCK]))
def test_ks_statistic_is_the_largest_ecdf_gap(a: list[float], b: list[float], block: int) -> None:
    ref, cur = np.sort(np.array(a)), np.sort(np.array(b))
    default = _drift_stats.BLOCK
    _drift_stats.BLOCK = block  # small blocks: the merge runs over many blocks
    try:
        merged = _drift_stats._ks_merge(ref, cur)
    finally:
        _drift_stats.BLOCK = default
    sparse = _drift_stats._ks_sparse(ref, cur)  # the kernel for very unequal sizes
    expected_d = _brute_force_ks(a, b)
    expected_w = stats.wasserstein_distance(a, b)
    for d, location, w1 in (merged, sparse):
        assert d == pytest.approx(expected_d, rel=1e-12, abs=1e-15)
        gap = abs(_drift_stats.ecdf_at(ref, location) - _drift_stats.ecdf_at(cur, location))
        assert gap == pytest.approx(d, abs=1e-12)  # the location is where the gap is reached
        assert w1 == pytest.approx(expected_w, rel=1e-9, abs=1e-12)


# --------------------------------------------------------------------------------------------
# Decisions: false alarms near the nominal rate, real shifts found
# --------------------------------------------------------------------------------------------


def _many_features(n_features: int, n: int, shift: float, seed: int = 0) -> tuple:
    ref, cur = {}, {}
    for i in range(n_features):
        rng = np.random.default_rng(seed + i)  # one fixed seed per feature
        ref[f"f{i}"] = rng.normal(size=n)
        cur[f"f{i}"] = rng.normal(shift, 1.0, size=n)
    return pl.DataFrame(ref), pl.DataFrame(cur)


def test_false_alarm_rate_of_the_ks_test_is_near_5_percent() -> None:
    ref, cur = _many_features(200, 300, shift=0.0)  # 200 seeds, same distribution
    report = drift.compare(ref, cur)
    assert set(report.features["method"]) == {"ks"}  # 300 values: the p-value decides
    alarms = report.features["drifted"].sum()
    # Binomial(200, 0.05): mean 10, sd 3.1 -> 3..19 holds with probability > 0.99.
    assert 3 <= alarms <= 19, alarms
    # Under the null the p-values are (nearly) uniform.
    assert 0.4 < report.features["p_value"].mean() < 0.6
    assert not report.dataset_drift


def test_false_alarm_rate_of_the_chi_square_test_is_near_5_percent() -> None:
    cats = np.array(["a", "b", "c", "d"])
    ref, cur = {}, {}
    for i in range(200):
        rng = np.random.default_rng(10_000 + i)
        ref[f"c{i}"] = cats[rng.choice(4, 400, p=[0.4, 0.3, 0.2, 0.1])]
        cur[f"c{i}"] = cats[rng.choice(4, 400, p=[0.4, 0.3, 0.2, 0.1])]
    report = drift.compare(pl.DataFrame(ref), pl.DataFrame(cur))
    assert set(report.features["method"]) == {"chi2"}
    assert 3 <= report.features["drifted"].sum() <= 19


def test_shifted_features_are_flagged_and_unshifted_ones_are_not() -> None:
    small_ref, small_cur = _many_features(20, 300, shift=0.5, seed=500)
    assert drift.compare(small_ref, small_cur).features["drifted"].all()  # K-S rule

    # Large samples: the distance rule; a 0.3-sigma shift drifts, no shift never does.
    ref, cur = _many_features(10, 20_000, shift=0.0, seed=900)
    _, shifted = _many_features(10, 20_000, shift=0.3, seed=950)
    cur = cur.with_columns(shifted.rename(lambda c: c + "_s"))
    ref = ref.with_columns(ref.rename(lambda c: c + "_s"))
    report = drift.compare(ref, cur)
    assert set(report.features["method"]) == {"wasserstein"}
    by_name = dict(zip(report.features["feature"], report.features["drifted"], strict=True))
    assert all(by_name[f"f{i}_s"] for i in range(10))
    assert not any(by_name[f"f{i}"] for i in range(10))
    assert report.drift_share == 0.5 and report.dataset_drift  # 10 of 20 >= 50%
    assert report.drifted_features[0].endswith("_s")


def test_config_thresholds_and_forced_methods_change_the_decision() -> None:
    ref, cur = _many_features(1, 20_000, shift=0.05, seed=3)
    auto = _row(drift.compare(ref, cur), "f0")
    assert auto["method"] == "wasserstein" and not auto["drifted"]
    forced = _row(drift.compare(ref, cur, config=DriftConfig(numerical_method="ks")), "f0")
    assert forced["method"] == "ks" and forced["drifted"]  # every test rejects at this n
    strict = drift.compare(ref, cur, config=DriftConfig(wasserstein_threshold=0.01))
    assert _row(strict, "f0")["drifted"]
    psi = _row(drift.compare(ref, cur, config=DriftConfig(numerical_method="psi")), "f0")
    assert psi["method"] == "psi" and psi["drift_score"] == psi["psi"]
    tiny = drift.compare(ref, cur, config=DriftConfig(small_sample_size=100_000))
    assert _row(tiny, "f0")["method"] == "ks"


# --------------------------------------------------------------------------------------------
# The other statistics
# --------------------------------------------------------------------------------------------


def test_wasserstein_psi_and_chi_square_match_their_definitions() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=3000), rng.normal(0.2, 1.5, size=2000)
    row = _row(drift.compare(pl.DataFrame({"x": a}), pl.DataFrame({"x": b})), "x")
    expected_w = stats.wasserstein_distance(a, b) / np.std(a)
    assert row["wasserstein_norm"] == pytest.approx(expected_w, rel=1e-9)
    edges = np.quantile(np.sort(a), np.arange(1, 10) / 10, method="inverted_cdf")
    ra = np.diff([0, *((a[:, None] <= edges).sum(axis=0)), len(a)]) / len(a)  # (q_i, q_i+1]
    rb = np.diff([0, *((b[:, None] <= edges).sum(axis=0)), len(b)]) / len(b)
    assert ra == pytest.approx([0.1] * 10)
    assert row["psi"] == pytest.approx(np.sum((rb - ra) * np.log(rb / ra)), rel=1e-12)

    ref = pl.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + ["c"] * 20})
    cur = pl.DataFrame({"c": ["a"] * 30 + ["b"] * 30 + ["c"] * 25 + ["d"] * 5})
    row = _row(drift.compare(ref, cur), "c")
    table = np.array([[50, 30, 20, 0], [30, 30, 25, 5]])
    expected = stats.chi2_contingency(table, correction=False)
    assert row["statistic"] == pytest.approx(expected.statistic, rel=1e-12)
    assert row["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)


def test_identical_data_does_not_drift() -> None:
    frame = pl.DataFrame({"x": np.arange(5000.0), "c": ["a", "b"] * 2500})
    report = drift.compare(frame, frame)
    assert report.features["statistic"].to_list() == [0.0, 0.0]
    assert report.features["psi"].to_list() == [0.0, 0.0]
    assert report.drifted_features == [] and report.issues.is_empty()


# --------------------------------------------------------------------------------------------
# Quality
# --------------------------------------------------------------------------------------------


def test_new_categories_are_reported() -> None:
    ref = pl.DataFrame({"country": ["fr", "de", "es"] * 100})
    cur = pl.DataFrame({"country": ["fr", "de", "it", "pt", "it"] * 60})
    row = _row(drift.compare(ref, cur), "country")
    assert row["new_categories"] == ["it", "pt"]  # most frequent first
    assert row["n_new_categories"] == 2
    assert row["new_category_share"] == pytest.approx(0.6)
    assert "new_categories" in row["issues"]
    assert row["drifted"]


def test_nulls_and_nans_are_counted_not_tested() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=400)
    b = rng.normal(size=400)
    ref = pl.DataFrame({"x": a})
    cur_values = [None] * 40 + [float("nan")] * 20 + b.tolist()
    cur = pl.DataFrame({"x": cur_values}, schema={"x": pl.Float64})
    row = _row(drift.compare(ref, cur), "x")
    assert row["n_cur"] == 400
    assert row["null_rate_cur"] == pytest.approx(40 / 460)
    assert row["nan_rate_cur"] == pytest.approx(20 / 460)
    assert row["null_rate_ref"] == 0.0
    expected = stats.ks_2samp(a, b)
    assert row["statistic"] == expected.statistic
    assert row["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert "null_rate" in row["issues"]  # 13% more missing values than the reference

    cats = drift.compare(
        pl.DataFrame({"c": ["a", "b", None, "a"]}), pl.DataFrame({"c": [None, None, "a", "b"]})
    )
    assert _row(cats, "c")["null_rate_cur"] == 0.5 and _row(cats, "c")["n_cur"] == 2


def test_all_null_and_constant_columns_do_not_crash() -> None:
    ref = pl.DataFrame(
        {"empty": [1.0, 2.0, 3.0, 4.0], "flat": [1.0, 2.0, 3.0, 4.0], "same": [7.0] * 4}
    )
    cur = pl.DataFrame(
        {"empty": [None] * 4, "flat": [5.0] * 4, "same": [7.0] * 4},
        schema={"empty": pl.Float64, "flat": pl.Float64, "same": pl.Float64},
    )
    report = drift.compare(ref, cur)
    empty, flat, same = (_row(report, f) for f in ("empty", "flat", "same"))
    assert empty["drifted"] is None and empty["method"] is None  # nothing to test
    assert set(empty["issues"]) >= {"empty", "null_rate"}
    assert flat["constant"] and "constant" in flat["issues"]
    assert flat["out_of_range_share"] == 1.0 and "out_of_range" in flat["issues"]
    assert same["constant"] and "constant" not in same["issues"]  # constant in both
    assert same["statistic"] == 0.0 and not same["drifted"]
    assert report.n_tested == 2  # the empty one has no verdict
    all_null = drift.compare(pl.DataFrame({"x": [None, None]}), pl.DataFrame({"x": [1.0, 2.0]}))
    assert _row(all_null, "x")["drifted"] is None


def test_out_of_range_share_and_margin() -> None:
    ref = pl.DataFrame({"x": np.linspace(0.0, 10.0, 101)})
    cur = pl.DataFrame({"x": [-1.0, 0.0, 5.0, 10.0, 10.5, 12.0, 3.0, 4.0, 6.0, 7.0]})
    assert _row(drift.compare(ref, cur), "x")["out_of_range_share"] == pytest.approx(0.3)
    wide = drift.compare(ref, cur, config=DriftConfig(range_margin=0.1))  # [-1, 11]
    assert _row(wide, "x")["out_of_range_share"] == pytest.approx(0.1)


def test_type_changes_and_missing_features_are_reported() -> None:
    ref = pl.DataFrame(
        {"age": [20, 30, 40, 50], "score": [0.1, 0.2, 0.3, 0.4], "gone": [1, 2, 3, 4]}
    )
    cur = pl.DataFrame({"age": [21.0, 31.0, 41.0, 51.0], "score": ["0.1", "0.2", "oops", "0.4"]})
    report = drift.compare(ref, cur)
    age, score, gone = (_row(report, f) for f in ("age", "score", "gone"))
    assert age["type_change"] and (age["dtype_ref"], age["dtype_cur"]) == ("Int64", "Float64")
    assert "type_change" in age["issues"] and age["drifted"] is not None
    assert score["dtype_cur"] == "String" and score["null_rate_cur"] == 0.25  # "oops"
    assert gone["issues"] == ["missing"] and gone["drifted"] is None and gone["n_cur"] == 0
    assert set(report.issues.filter(pl.col("feature") == "score")["issue"]) == {
        "type_change",
        "null_rate",
    }


def test_feature_selection_dtypes_and_inputs() -> None:
    ref = pl.DataFrame(
        {
            "ts": [datetime(2024, 1, 1)] * 3,
            "code": [1, 2, 3],
            "flag": [True, False, True],
            "tags": [["a"], ["b"], []],
        }
    )
    report = drift.compare(ref, ref.lazy(), categorical=["code"])
    assert report.features.select("feature", "kind").rows() == [
        ("code", "categorical"),
        ("flag", "categorical"),
    ]  # timestamps and lists are skipped unless named
    with pytest.raises(SchemaError, match="'tags' has dtype List"):
        drift.compare(ref, ref, features=["tags"])
    with pytest.raises(SchemaError, match="'nope' is not a column"):
        drift.compare(ref, ref, features=["nope"])
    with pytest.raises(FskitError, match="must be a polars DataFrame"):
        drift.compare({"a": [1]}, ref)
    pd = pytest.importorskip("pandas")
    report = drift.compare(pd.DataFrame({"x": [1.0, 2.0]}), pd.DataFrame({"x": [1.0, 3.0]}))
    assert report.features["feature"].to_list() == ["x"]


def test_config_is_validated() -> None:
    with pytest.raises(DefinitionError, match=r"ks_p_value must be a probability .* got 5"):
        DriftConfig(ks_p_value=5)
    with pytest.raises(DefinitionError, match="numerical_method must be one of"):
        DriftConfig(numerical_method="t-test")
    with pytest.raises(DefinitionError, match="drift_share"):
        DriftConfig(drift_share=0)
    with pytest.raises(DefinitionError, match="psi_bins"):
        DriftConfig(psi_bins=1)
    with pytest.raises(TypeError):
        DriftConfig(0.1)  # keyword-only
    with pytest.raises(DefinitionError, match="config must be a DriftConfig"):
        drift.compare(pl.DataFrame({"x": [1.0]}), pl.DataFrame({"x": [1.0]}), config={})


# --------------------------------------------------------------------------------------------
# Profiles, reports, over time, predictions
# --------------------------------------------------------------------------------------------


def test_reference_profile_round_trips_through_json() -> None:
    rng = np.random.default_rng(4)
    ref = pl.DataFrame(
        {"x": np.r_[rng.normal(size=500), [np.nan]], "c": ["a", "b", "c"] * 167}
    ).with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(None).otherwise(pl.col("x")).alias("x")
    )
    cur = pl.DataFrame({"x": rng.normal(0.3, 1.0, 300), "c": ["a", "b", "d"] * 100})
    stored = json.loads(json.dumps(drift.profile(ref).to_dict()))
    restored = ReferenceProfile.from_dict(stored)
    assert_frame_equal(drift.compare(restored, cur).features, drift.compare(ref, cur).features)

    sketch = drift.profile(ref, max_values=50)
    row = _row(drift.compare(sketch, cur), "x")
    assert row["n_ref"] == 50 and row["null_rate_ref"] == pytest.approx(1 / 501)
    with pytest.raises(DefinitionError, match="format"):
        ReferenceProfile.from_dict({"columns": {}})


def test_report_repr_html_and_issue_table() -> None:
    ref = pl.DataFrame({"x": np.arange(300.0), "c": ["a", "b", "c"] * 100})
    cur = pl.DataFrame({"x": np.arange(300.0) + 200, "c": ["a", "b", "z"] * 100})
    report = drift.compare(ref, cur)
    text = repr(report)
    assert "2/2 features drifted" in text and "DATASET DRIFT" in text and "new_categories" in text
    page = report._repr_html_()
    assert "<table>" in page and "DriftReport" in page
    assert report.issues.rows() == [("x", "out_of_range"), ("c", "new_categories")]
    assert report.quality.columns == list(drift.QUALITY_COLUMNS)


def test_over_time_flags_the_windows_after_a_shift() -> None:
    rng = np.random.default_rng(5)
    ref = pl.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(["a", "b"], 2000)})
    days = [datetime(2024, 3, 1) + timedelta(hours=i) for i in range(24 * 6)]
    x = rng.normal(size=len(days) * 10)
    x[24 * 3 * 10 :] += 1.0  # the last three days shift
    cur = pl.DataFrame(
        {"ts": np.repeat(np.array(days, dtype="datetime64[us]"), 10), "x": x, "c": "a"}
    )
    frame = drift.over_time(ref, cur, timestamp_column="ts")
    assert frame.columns[0] == "window_start" and frame.height == 6 * 2
    x_drift = frame.filter(pl.col("feature") == "x")["drifted"].to_list()
    assert x_drift == [False, False, False, True, True, True]
    assert frame.filter(pl.col("feature") == "c")["drifted"].all()  # only "a": drifted
    assert frame["window_start"].dt.hour().to_list() == [0] * 12
    with pytest.raises(SchemaError, match="Date or Datetime"):
        drift.over_time(ref, cur.with_columns(pl.col("x").alias("ts")), timestamp_column="ts")
    with pytest.raises(DefinitionError, match="polars duration"):
        drift.over_time(ref, cur, timestamp_column="ts", every="daily")


def test_prediction_drift_takes_any_sequence_of_scores() -> None:
    rng = np.random.default_rng(6)
    same = drift.prediction_drift(rng.beta(2, 5, 800), pl.Series("score", rng.beta(2, 5, 800)))
    shifted = drift.prediction_drift(rng.beta(2, 5, 800).tolist(), rng.beta(3, 4, 800))
    assert same.features["feature"].to_list() == ["prediction"]
    assert not same.features["drifted"][0] and shifted.features["drifted"][0]
    named = drift.prediction_drift(pl.Series("p", [0.1, 0.2]), [0.1, 0.3])
    assert named.features["feature"].to_list() == ["p"]


def _brute_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_quality_over_time_computes_auc_per_window() -> None:
    rng = np.random.default_rng(7)
    n = 3 * 200
    labels = rng.integers(0, 2, n)
    scores = np.round(labels * 0.3 + rng.uniform(size=n), 1)  # many ties
    day = np.repeat(np.array([date(2024, 1, d) for d in (1, 2, 3)], dtype="datetime64[D]"), 200)
    frame = pl.DataFrame({"day": day, "score": scores, "label": labels}).with_columns(
        pl.when(pl.int_range(pl.len()) >= 500).then(None).otherwise(pl.col("label")).alias("label")
    )  # labels of the last 100 rows have not arrived
    out = drift.quality_over_time(
        frame, timestamp_column="day", score_column="score", label_column="label"
    )
    assert out["n"].to_list() == [200, 200, 200]
    assert out["n_labeled"].to_list() == [200, 200, 100]
    for i in range(3):
        known = slice(i * 200, min(i * 200 + 200, 500))
        assert out["auc"][i] == pytest.approx(_brute_auc(scores[known], labels[known]), rel=1e-12)

    one_class = frame.with_columns(pl.lit(1).alias("label"))
    auc = drift.quality_over_time(
        one_class, timestamp_column="day", score_column="score", label_column="label"
    )["auc"]
    assert auc.null_count() == 3
    with pytest.raises(SchemaError, match="binary labels"):
        drift.quality_over_time(
            frame.with_columns(pl.lit(2).alias("label")),
            timestamp_column="day",
            score_column="score",
            label_column="label",
        )


def test_importing_fskit_drift_loads_neither_scipy_altair_nor_jupyter() -> None:
    code = (
        "import sys, fskit.drift, fskit.charts; "
        "print(sorted(m for m in ('scipy', 'altair', 'IPython', 'ipywidgets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
