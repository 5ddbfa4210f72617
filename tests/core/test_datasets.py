"""Tests of fskit.datasets: the generated fraud world and the shipped sample_data/."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from fskit.datasets import (
    DEFAULT_DAYS,
    DEFAULT_N_USERS,
    DEFAULT_START,
    TABLES,
    FraudData,
    make_fraud,
    read_sample_data,
    write_sample_data,
)

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "sample_data"
TS = pl.Datetime("us", "UTC")
VALID = (pl.col("amount") > 0) & ~pl.col("is_duplicate")


@pytest.fixture(scope="module")
def data() -> FraudData:
    """The default world: the one shipped in sample_data/."""
    return make_fraud()


@pytest.fixture(scope="module")
def valid(data: FraudData) -> pl.DataFrame:
    """Valid transactions (positive amount, not a duplicate) with a few derived columns."""
    by_user = {"partition_by": "user_id", "order_by": "event_timestamp"}
    return (
        data.transactions.filter(VALID)
        .sort("user_id", "event_timestamp")
        .with_columns(
            user_median=pl.col("amount").median().over("user_id"),
            hour=pl.col("event_timestamp").dt.hour(),
            nth_purchase=pl.int_range(pl.len()).over(**by_user),
            nth_in_category=pl.int_range(pl.len()).over(
                partition_by=["user_id", "merchant_category"], order_by="event_timestamp"
            ),
        )
    )


def corrections(user_stats: pl.DataFrame) -> pl.Expr:
    """Late corrections: rows created more than a day after their event timestamp."""
    return pl.col("created_timestamp") - pl.col("event_timestamp") > timedelta(days=1)


# --- determinism ----------------------------------------------------------------------------------


def test_same_seed_gives_identical_frames() -> None:
    first = make_fraud(n_users=80, days=10, seed=5)
    second = make_fraud(n_users=80, days=10, seed=5)
    for name in TABLES:
        assert_frame_equal(getattr(first, name), getattr(second, name), check_exact=True)


def test_same_seed_gives_identical_parquet_bytes(tmp_path: Path) -> None:
    first = write_sample_data(tmp_path / "a", n_users=80, days=10, seed=5)
    second = write_sample_data(tmp_path / "b", n_users=80, days=10, seed=5)
    assert list(first) == list(TABLES)
    for name in TABLES:
        assert first[name] == tmp_path / "a" / f"{name}.parquet"
        assert first[name].read_bytes() == second[name].read_bytes()


def test_different_seed_gives_different_data() -> None:
    first = make_fraud(n_users=80, days=10, seed=5)
    second = make_fraud(n_users=80, days=10, seed=6)
    for name in ("users", "transactions", "user_stats"):
        assert not getattr(first, name).equals(getattr(second, name)), name


def test_shipped_sample_data_matches_the_generator(data: FraudData) -> None:
    shipped = read_sample_data(SAMPLE_DATA)
    for name in TABLES:
        assert_frame_equal(getattr(shipped, name), getattr(data, name))
    total = sum((SAMPLE_DATA / f"{name}.parquet").stat().st_size for name in TABLES)
    assert 1_000_000 < total < 6_000_000
    readme = (SAMPLE_DATA / "README.md").read_text()
    assert "fskit sample-data --out sample_data" in readme


# --- shape and schema -----------------------------------------------------------------------------


def test_schemas(data: FraudData) -> None:
    assert data.users.schema == pl.Schema(
        {
            "user_id": pl.Int64,
            "age": pl.Int64,
            "country": pl.String,
            "signup_date": pl.Date,
            "event_timestamp": TS,
            "created_timestamp": TS,
        }
    )
    assert data.merchants.schema == pl.Schema(
        {
            "merchant_id": pl.Int64,
            "category": pl.String,
            "event_timestamp": TS,
            "created_timestamp": TS,
        }
    )
    assert data.transactions.schema == pl.Schema(
        {
            "transaction_id": pl.Int64,
            "user_id": pl.Int64,
            "merchant_id": pl.Int64,
            "event_timestamp": TS,
            "amount": pl.Float64,
            "device": pl.String,
            "merchant_category": pl.String,
            "is_duplicate": pl.Boolean,
            "is_fraud": pl.Int64,
        }
    )
    assert data.user_stats.schema == pl.Schema(
        {
            "user_id": pl.Int64,
            "event_timestamp": TS,
            "created_timestamp": TS,
            "total_purchases": pl.Int64,
            "avg_purchase_value": pl.Float64,
            "purchases_7d": pl.Int64,
            "amount_7d": pl.Float64,
            "max_amount_30d": pl.Float64,
        }
    )
    assert data.users.height == DEFAULT_N_USERS
    assert data.users["user_id"].is_unique().all()
    assert data.merchants["merchant_id"].is_unique().all()
    nullable = {"avg_purchase_value", "max_amount_30d"}
    for name, df in data.tables().items():
        for column in set(df.columns) - nullable:
            assert df[column].null_count() == 0, (name, column)
    stats = data.user_stats
    assert (stats["avg_purchase_value"].is_null() == (stats["total_purchases"] == 0)).all()
    assert stats["max_amount_30d"].is_null().any() and stats["avg_purchase_value"].is_null().any()


def test_entity_columns(data: FraudData) -> None:
    users, merchants, tx = data.users, data.merchants, data.transactions
    assert users["country"].n_unique() == 8
    assert users["age"].min() >= 18 and users["age"].max() <= 100
    assert (users["signup_date"] == users["event_timestamp"].dt.date()).all()
    assert (users["event_timestamp"] == users["created_timestamp"]).all()
    assert 8 <= merchants["category"].n_unique() <= 12
    assert set(tx["device"].unique()) == {"mobile", "web", "pos"}
    # every transaction's category is its merchant's, and its user had signed up
    joined = tx.join(merchants, on="merchant_id", how="left").join(
        users.select("user_id", signup="event_timestamp"), on="user_id", how="left"
    )
    assert (joined["merchant_category"] == joined["category"]).all()
    assert (joined["event_timestamp"] >= joined["signup"]).all()


def test_transaction_ids_unique_and_timestamps_sorted_in_range(data: FraudData) -> None:
    tx = data.transactions
    assert tx["transaction_id"].is_unique().all()
    assert tx["event_timestamp"].is_sorted()
    assert tx["event_timestamp"].min() >= DEFAULT_START
    assert tx["event_timestamp"].max() < DEFAULT_START + timedelta(days=DEFAULT_DAYS)


def test_start_in_another_timezone_is_honoured() -> None:
    start = datetime(2026, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    data = make_fraud(n_users=50, days=5, seed=2, start=start)
    times = data.transactions["event_timestamp"]
    assert times.min() >= start and times.max() < start + timedelta(days=5)
    snapshots = data.user_stats["event_timestamp"].unique().sort().to_list()
    assert snapshots == [start + timedelta(days=k) for k in range(1, 6)]


def test_volume_is_one_to_three_purchases_per_user_day(data: FraudData) -> None:
    user_days = data.user_stats.filter(~corrections(data.user_stats)).height
    per_day = data.transactions.filter(VALID).height / user_days
    assert 1.0 <= per_day <= 3.0
    per_user = data.transactions.group_by("user_id").len()["len"]
    assert per_user.std() > 0.5 * per_user.mean()  # heterogeneous users


# --- flaws ----------------------------------------------------------------------------------------


def test_flaws_exist_at_the_stated_rates(data: FraudData) -> None:
    tx = data.transactions
    assert 0.015 <= tx["is_duplicate"].mean() <= 0.025
    originals = tx.filter(~pl.col("is_duplicate"))
    assert 0.01 <= (originals["amount"] <= 0).mean() <= 0.02
    assert (originals["amount"] == 0).sum() > 100
    assert (originals["amount"] < 0).sum() > 100
    assert 0.01 <= tx["is_fraud"].mean() <= 0.03
    assert set(tx["is_fraud"].unique()) == {0, 1}


def test_duplicates_copy_an_existing_transaction(data: FraudData) -> None:
    tx = data.transactions
    same = [c for c in tx.columns if c not in ("transaction_id", "is_duplicate")]
    originals = tx.filter(~pl.col("is_duplicate"))
    duplicates = tx.filter(pl.col("is_duplicate"))
    matched = duplicates.join(originals, on=same, how="semi", nulls_equal=True)
    assert matched.height == duplicates.height > 0
    assert not duplicates["transaction_id"].is_in(originals["transaction_id"].implode()).any()


# --- the fraud patterns are learnable -------------------------------------------------------------


def fraud_rate(df: pl.DataFrame, condition: pl.Expr) -> tuple[float, float]:
    """Fraud rate where `condition` holds, and where it does not."""
    inside = df.filter(condition)["is_fraud"].mean()
    outside = df.filter(~condition)["is_fraud"].mean()
    return inside, outside


def test_high_amounts_are_riskier(valid: pl.DataFrame) -> None:
    base = valid["is_fraud"].mean()
    inside, outside = fraud_rate(valid, pl.col("amount") > 3 * pl.col("user_median"))
    assert inside > 4 * base and outside < base


def test_night_is_riskier(valid: pl.DataFrame) -> None:
    base = valid["is_fraud"].mean()
    inside, outside = fraud_rate(valid, pl.col("hour") < 5)
    assert inside > 4 * base and outside < base


def test_bursts_are_riskier(valid: pl.DataFrame) -> None:
    base = valid["is_fraud"].mean()
    last_hour = valid.rolling("event_timestamp", period="1h", group_by="user_id").agg(
        n_last_hour=pl.len()
    )
    with_counts = valid.with_columns(last_hour["n_last_hour"])
    inside, outside = fraud_rate(with_counts, pl.col("n_last_hour") >= 3)
    assert inside > 4 * base and outside < base


def test_new_categories_are_riskier(valid: pl.DataFrame) -> None:
    settled = valid.filter(pl.col("nth_purchase") >= 10)
    base = settled["is_fraud"].mean()
    inside, outside = fraud_rate(settled, pl.col("nth_in_category") == 0)
    assert inside > 4 * base and outside < base


# --- user_stats ---------------------------------------------------------------------------------


def test_user_stats_has_one_row_per_user_and_day_with_a_processing_delay(data: FraudData) -> None:
    stats = data.user_stats.filter(~corrections(data.user_stats))
    assert stats.select("user_id", "event_timestamp").is_unique().all()
    first_day = data.users.select(
        "user_id",
        first=((pl.col("event_timestamp") - DEFAULT_START).dt.total_seconds() // 86_400).clip(0),
    )
    rows = stats.group_by("user_id").agg(n=pl.len(), first=pl.col("event_timestamp").min())
    expected = first_day.join(rows, on="user_id", how="left")
    assert (expected["n"] == DEFAULT_DAYS - expected["first"]).all()
    first_snapshot = expected.select(
        pl.col("first_right") == DEFAULT_START + pl.duration(days=pl.col("first") + 1)
    )
    assert first_snapshot.to_series().all()
    offsets = (stats["event_timestamp"] - DEFAULT_START).dt.total_seconds()
    assert (offsets % 86_400 == 0).all()
    assert offsets.min() == 86_400 and offsets.max() == DEFAULT_DAYS * 86_400
    delay = (stats["created_timestamp"] - stats["event_timestamp"]).dt.total_seconds()
    assert delay.min() >= 3_600 and delay.max() <= 3 * 3_600


def test_user_stats_matches_a_brute_force_recomputation(data: FraudData) -> None:
    stats = data.user_stats.filter(~corrections(data.user_stats))
    valid = data.transactions.filter(VALID)
    rng = np.random.default_rng(123)
    sample = stats[rng.choice(stats.height, 40, replace=False)]
    # also the very last day of a busy user, where the 30-day window is full
    busiest = valid.group_by("user_id").len().sort("len", "user_id").tail(1)["user_id"].item()
    last = stats.filter(user_id=busiest).sort("event_timestamp").tail(1)
    checked = 0
    for row in pl.concat([sample, last]).iter_rows(named=True):
        end = row["event_timestamp"]
        mine = valid.filter(pl.col("user_id") == row["user_id"], pl.col("event_timestamp") < end)
        week = mine.filter(pl.col("event_timestamp") >= end - timedelta(days=7))["amount"]
        month = mine.filter(pl.col("event_timestamp") >= end - timedelta(days=30))["amount"]
        assert row["total_purchases"] == mine.height
        assert row["avg_purchase_value"] == (
            pytest.approx(mine["amount"].mean()) if mine.height else None
        )
        assert row["purchases_7d"] == week.len()
        assert row["amount_7d"] == pytest.approx(week.sum())
        assert row["max_amount_30d"] == (month.max() if month.len() else None)
        checked += row["total_purchases"] > 0
    assert checked > 20


def test_user_stats_has_late_corrections(data: FraudData) -> None:
    stats = data.user_stats
    late = stats.filter(corrections(stats))
    on_time = stats.filter(~corrections(stats))
    assert 0.005 <= late.height / on_time.height <= 0.015
    assert late.select("user_id", "event_timestamp").is_unique().all()
    pairs = late.join(on_time, on=["user_id", "event_timestamp"], suffix="_first")
    assert pairs.height == late.height
    assert (
        pairs["created_timestamp"] - pairs["created_timestamp_first"] >= timedelta(days=1)
    ).all()
    assert (pairs["total_purchases"] == pairs["total_purchases_first"] + 1).all()
    assert (pairs["amount_7d"] > pairs["amount_7d_first"]).all()


# --- errors and helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_users": 0}, r"`n_users` must be an integer >= 1, got 0"),
        ({"days": -1}, r"`days` must be an integer >= 1, got -1"),
        ({"start": datetime(2026, 1, 1)}, r"`start` must be a timezone-aware datetime"),
    ],
)
def test_bad_arguments_are_explained(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_fraud(**kwargs)


def test_read_sample_data_says_how_to_generate_missing_tables(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="fskit sample-data --out"):
        read_sample_data(tmp_path)


def test_repr_is_short(data: FraudData) -> None:
    text = repr(data)
    assert text.startswith("FraudData(users=1_000 rows, merchants=200 rows, transactions=")
    assert len(text) < 120
