"""Sample data: a small, realistic card-fraud world for the tutorials and the tests.

:func:`make_fraud` generates four polars tables, deterministic per seed, and returns them in a
:class:`FraudData`:

- ``users`` and ``merchants``: entity tables, usable as feature-view sources;
- ``transactions``: raw card transactions with a fraud label, learnable fraud patterns and the
  flaws real pipelines meet (duplicate rows, zero and negative amounts);
- ``user_stats``: a daily per-user snapshot derived from the transactions (the source of the
  ``user_stats`` feature view), with processing delays and a few late corrections.

:func:`write_sample_data` writes the tables as Parquet (this is what ``fskit sample-data`` runs to
produce the shipped ``sample_data/`` directory) and :func:`read_sample_data` reads them back.
``sample_data/README.md`` documents every column.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_N_USERS",
    "DEFAULT_SEED",
    "DEFAULT_START",
    "TABLES",
    "FraudData",
    "find_sample_data",
    "fraud_definitions",
    "fraud_entity_rows",
    "make_fraud",
    "read_sample_data",
    "write_sample_data",
]

# The shipped sample_data/ is generated with these; make_fraud() defaults to them too.
DEFAULT_N_USERS = 1000
DEFAULT_DAYS = 60
DEFAULT_SEED = 0
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)

#: The tables of a :class:`FraudData`, in the order they are written.
TABLES = ("users", "merchants", "transactions", "user_stats")

_DAY = 86_400  # seconds
_HOUR = 3_600
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TS = pl.Datetime("us", "UTC")

# --- the world, as data -----------------------------------------------------------------------
# Countries and their share of users. All are within an hour of UTC, so the UTC hour of a
# transaction is (nearly) its local hour: "night" is 0-5h UTC.
_COUNTRIES = {
    "GB": 0.22,
    "DE": 0.20,
    "FR": 0.16,
    "ES": 0.12,
    "IT": 0.11,
    "NL": 0.08,
    "IE": 0.06,
    "PT": 0.05,
}

_DEVICES = ("mobile", "web", "pos")

# category: (popularity, amount multiplier, weight among fraud's "new" categories,
#            device mix of legitimate purchases as (mobile, web, pos))
_CATEGORIES = {
    "grocery": (0.22, 1.0, 0.02, (0.15, 0.05, 0.80)),
    "restaurants": (0.16, 0.8, 0.02, (0.25, 0.05, 0.70)),
    "fuel": (0.10, 1.3, 0.03, (0.10, 0.00, 0.90)),
    "clothing": (0.10, 2.0, 0.08, (0.35, 0.35, 0.30)),
    "online_services": (0.10, 0.6, 0.15, (0.50, 0.50, 0.00)),
    "entertainment": (0.09, 1.2, 0.05, (0.45, 0.35, 0.20)),
    "health": (0.07, 1.5, 0.02, (0.15, 0.15, 0.70)),
    "electronics": (0.07, 4.0, 0.25, (0.35, 0.45, 0.20)),
    "travel": (0.05, 6.0, 0.18, (0.35, 0.55, 0.10)),
    "gambling": (0.04, 1.5, 0.20, (0.60, 0.40, 0.00)),
}

# Relative weight of each hour of the day (UTC) for legitimate purchases: ~2.5 % fall in 0-5h.
_HOUR_WEIGHTS = (0.8, 0.5, 0.3, 0.25, 0.3, 0.6, 1.5, 3.0, 4.5, 5.0, 5.5, 6.5) + (
    7.5,
    7.0,
    6.0,
    6.0,
    6.5,
    7.5,
    8.0,
    7.5,
    6.5,
    5.0,
    3.5,
    2.0,
)

# Knobs of the generator.
_SETTINGS = {
    "pre_start_share": 0.75,  # users who signed up before `start`
    "pre_start_max_days": 730,  # ... up to this many days before
    "rate_shape": 1.5,  # legitimate purchases per user-day ~ Gamma(shape, mean / shape)
    "rate_mean": 2.0,
    "rate_clip": (0.1, 8.0),
    "scale_median": 28.0,  # each user's typical amount ~ LogNormal(log(median), sigma)
    "scale_sigma": 0.6,
    "amount_sigma": 0.45,  # per-purchase noise around the user's scale
    "home_categories": (3, 7),  # each user shops in 3-6 categories (integers' low, high)
    "explore_share": 0.04,  # legitimate purchases outside the user's categories
    "incident_rate": 0.0105,  # fraud incidents per active user-day
    "burst_extra_mean": 2.5,  # transactions per incident = 1 + Poisson(this)
    "night_share": 0.45,  # incidents starting at 0-5h
    "high_amount_share": 0.75,  # fraudulent amounts far above the user's scale ...
    "high_amount_median": 7.0,  # ... ~ scale * LogNormal(log(this), 0.5)
    "new_category_share": 0.70,  # fraudulent purchases in a category new to the user
    "fraud_device_p": (0.35, 0.60, 0.05),
    "refund_rate": 0.010,  # negative-amount rows, per generated transaction
    "error_rate": 0.005,  # zero-amount rows
    "duplicate_rate": 0.02,  # re-ingested copies
    "snapshot_delay_hours": (1, 3),  # user_stats created_timestamp - event_timestamp
    "correction_rate": 0.01,  # user_stats rows restated later
    "correction_delay_days": (2, 6),
}


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class FraudData:
    """The tables of a generated card-fraud world (see :func:`make_fraud`).

    Attributes
    ----------
    users : polars.DataFrame
        One row per card holder.
    merchants : polars.DataFrame
        One row per merchant.
    transactions : polars.DataFrame
        Raw card transactions, sorted by ``event_timestamp``, labelled with ``is_fraud``.
    user_stats : polars.DataFrame
        Daily per-user snapshots derived from ``transactions``, with late corrections.
    """

    users: pl.DataFrame
    merchants: pl.DataFrame
    transactions: pl.DataFrame
    user_stats: pl.DataFrame

    def tables(self) -> dict[str, pl.DataFrame]:
        """The tables by name, in the order of :data:`TABLES`.

        Examples
        --------
        >>> list(make_fraud(n_users=5, days=2).tables())
        ['users', 'merchants', 'transactions', 'user_stats']
        """
        return {name: getattr(self, name) for name in TABLES}

    def __repr__(self) -> str:
        shapes = ", ".join(f"{name}={df.height:_} rows" for name, df in self.tables().items())
        return f"FraudData({shapes})"


def make_fraud(
    n_users: int = DEFAULT_N_USERS,
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
    start: datetime = DEFAULT_START,
) -> FraudData:
    """Generate a card-fraud world: users, merchants, transactions and daily user stats.

    The same arguments always give the same tables. The defaults are the ones the shipped
    ``sample_data/`` was generated with (about 110 000 transactions, under a second).

    Each user has a signup time (three quarters before `start`), a purchase rate (1-3 a day
    on average, varying between users), a typical amount and a handful of usual merchant
    categories. Fraud arrives in incidents: a card is compromised and used one or more times
    within an hour. Fraudulent transactions tend to have

    - an amount far above the user's usual,
    - several transactions within an hour (a burst),
    - a merchant category new to the user (electronics, travel, gambling...),
    - a night-time hour (0-5h UTC; every country is within an hour of UTC),
    - a ``"web"`` device;

    none of these is a give-away on its own: legitimate purchases sometimes share them. The
    raw table has flaws to clean: duplicate rows (``is_duplicate``, ~2 %), refunds (negative
    amounts, ~1 %) and zero-amount authorisation errors (~0.5 %).

    Parameters
    ----------
    n_users : int
        Number of users (card holders), at least 1. Merchants scale with it (``n_users // 5``,
        at least one per category).
    days : int
        Length of the simulated period in days, at least 1.
    seed : int
        Seed of the random generator.
    start : datetime
        Timezone-aware start of the period; every transaction falls in
        ``[start, start + days)``. Day ``d`` of ``user_stats`` is ``[start + d, start + d + 1)``.

    Returns
    -------
    FraudData
        The ``users``, ``merchants``, ``transactions`` and ``user_stats`` tables.

    Raises
    ------
    ValueError
        If `n_users` or `days` is below 1, or `start` has no timezone.

    Examples
    --------
    >>> data = make_fraud(n_users=20, days=3, seed=1)
    >>> data
    FraudData(users=20 rows, merchants=10 rows, transactions=... rows, user_stats=... rows)
    >>> data.transactions.columns
    ['transaction_id', 'user_id', 'merchant_id', 'event_timestamp', 'amount', 'device',
     'merchant_category', 'is_duplicate', 'is_fraud']
    >>> data.transactions["event_timestamp"].is_sorted()
    True
    >>> data.user_stats.columns
    ['user_id', 'event_timestamp', 'created_timestamp', 'total_purchases', 'avg_purchase_value',
     'purchases_7d', 'amount_7d', 'max_amount_30d']
    """
    n_users, days, start = _check_arguments(n_users, days, start)
    rng = np.random.default_rng(seed)
    start_us = (start - _EPOCH) // timedelta(microseconds=1)

    world = _make_world(rng, n_users, days)
    users = world.pop("users")
    merchants = world.pop("merchants")
    transactions = _make_transactions(rng, world, days)

    users_df = pl.DataFrame(
        {
            "user_id": users["user_id"],
            "age": users["age"],
            "country": users["country"],
            "event_timestamp": _timestamps(start_us, users["signup_s"]),
        }
    ).select(
        "user_id",
        "age",
        "country",
        pl.col("event_timestamp").dt.date().alias("signup_date"),
        "event_timestamp",
        pl.col("event_timestamp").alias("created_timestamp"),
    )
    merchants_df = pl.DataFrame(
        {
            "merchant_id": merchants["merchant_id"],
            "category": merchants["category"],
            "event_timestamp": _timestamps(start_us, merchants["onboard_s"]),
        }
    ).with_columns(pl.col("event_timestamp").alias("created_timestamp"))
    transactions_df = pl.DataFrame(
        {
            "transaction_id": np.arange(1, len(transactions["t"]) + 1, dtype=np.int64),
            "user_id": users["user_id"][transactions["user"]],
            "merchant_id": merchants["merchant_id"][transactions["merchant"]],
            "event_timestamp": _timestamps(start_us, transactions["t"]),
            "amount": transactions["amount"],
            "device": np.array(_DEVICES)[transactions["device"]],
            "merchant_category": np.array(list(_CATEGORIES))[transactions["category"]],
            "is_duplicate": transactions["is_duplicate"],
            "is_fraud": transactions["is_fraud"].astype(np.int64),
        }
    )
    user_stats_df = _user_stats(rng, transactions_df, users_df, start, days)
    return FraudData(
        users=users_df,
        merchants=merchants_df,
        transactions=transactions_df,
        user_stats=user_stats_df,
    )


def write_sample_data(
    out_dir: str | Path,
    *,
    n_users: int = DEFAULT_N_USERS,
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
    start: datetime = DEFAULT_START,
) -> dict[str, Path]:
    """Generate the fraud world and write each table to ``out_dir/<table>.parquet``.

    This is what ``fskit sample-data --out sample_data`` runs. The same arguments write
    byte-identical files (with the same polars version).

    Parameters
    ----------
    out_dir : str or Path
        Directory to write to; created if missing. Existing files of the same name are replaced.
    n_users, days, seed, start
        Passed to :func:`make_fraud`.

    Returns
    -------
    dict[str, Path]
        The path written for each table, by table name.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     paths = write_sample_data(tmp, n_users=10, days=2)
    ...     [path.name for path in paths.values()]
    ['users.parquet', 'merchants.parquet', 'transactions.parquet', 'user_stats.parquet']
    """
    data = make_fraud(n_users=n_users, days=days, seed=seed, start=start)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, df in data.tables().items():
        path = out / f"{name}.parquet"
        df.write_parquet(path, compression="zstd", statistics=False)
        paths[name] = path
    return paths


def read_sample_data(directory: str | Path = "sample_data") -> FraudData:
    """Read the tables written by :func:`write_sample_data` back into a :class:`FraudData`.

    Parameters
    ----------
    directory : str or Path
        The directory holding ``users.parquet``, ``merchants.parquet``, ``transactions.parquet``
        and ``user_stats.parquet``.

    Returns
    -------
    FraudData

    Raises
    ------
    FileNotFoundError
        If a table is missing; the message says how to generate it.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = write_sample_data(tmp, n_users=10, days=2)
    ...     read_sample_data(tmp).users.height
    10
    """
    folder = Path(directory)
    frames = {}
    for name in TABLES:
        path = folder / f"{name}.parquet"
        if not path.is_file():
            raise FileNotFoundError(
                f"sample data table {name!r} not found at {str(path)!r}; generate it with "
                f"`fskit sample-data --out {folder}` or "
                f"`fskit.datasets.write_sample_data({str(folder)!r})`"
            )
        frames[name] = pl.read_parquet(path)
    return FraudData(**frames)


def find_sample_data(directory: str | Path | None = None) -> Path:
    """The shipped ``sample_data/`` folder: ``directory`` if given, else the first of
    ``./sample_data``, ``../sample_data`` and the one beside the fskit source tree."""
    if directory is not None:
        candidates = [Path(directory)]
    else:
        here = Path(__file__).resolve().parents[1] / "sample_data"
        candidates = [Path("sample_data"), Path("..") / "sample_data", here]
    for candidate in candidates:
        if (candidate / "transactions.parquet").is_file():
            return candidate.resolve()
    raise FileNotFoundError(
        f"no sample data in {[str(c) for c in candidates]}; generate it with "
        "`fskit sample-data --out sample_data`"
    )


def fraud_definitions(directory: str | Path | None = None) -> list:
    """The feature definitions of the fraud world, reading the sample data's Parquet files.

    Entities ``user`` and ``merchant``; feature views ``user_stats`` (daily snapshots with a
    processing delay and late corrections), ``user_profile`` and ``merchant_profile``.

    >>> [getattr(d, "ref", d.name) for d in fraud_definitions()]
    ['user', 'merchant', 'user_stats@v1', 'user_profile@v1', 'merchant_profile@v1']
    """
    from fskit.definitions import Entity, FeatureView, Field, ParquetSource

    data = find_sample_data(directory)
    user = Entity("user", join_keys=["user_id"], description="card holder")
    merchant = Entity("merchant", join_keys=["merchant_id"], description="card acceptor")
    user_stats = FeatureView(
        name="user_stats",
        entities=[user],
        source=ParquetSource(
            data / "user_stats.parquet",
            timestamp_field="event_timestamp",
            created_timestamp_field="created_timestamp",
        ),
        schema=[
            Field("total_purchases", pl.Int64, description="valid purchases to date"),
            Field("avg_purchase_value", pl.Float64, description="mean valid amount to date"),
            Field("purchases_7d", pl.Int64, description="valid purchases, last 7 days"),
            Field("amount_7d", pl.Float64, description="valid amount, last 7 days"),
            Field("max_amount_30d", pl.Float64, description="largest valid amount, 30 days"),
        ],
        ttl=timedelta(days=2),
        freshness_sla=timedelta(days=1),
        owner="risk-team",
        description="Daily purchase statistics per card holder (duplicates and invalid "
        "amounts excluded).",
    )
    user_profile = FeatureView(
        name="user_profile",
        entities=[user],
        source=ParquetSource(data / "users.parquet", created_timestamp_field="created_timestamp"),
        schema=[Field("age", pl.Int64), Field("country", pl.String)],
        ttl=None,
        owner="risk-team",
        description="Card holder profile, known from signup.",
    )
    merchant_profile = FeatureView(
        name="merchant_profile",
        entities=[merchant],
        source=ParquetSource(
            data / "merchants.parquet", created_timestamp_field="created_timestamp"
        ),
        schema=[Field("category", pl.String)],
        ttl=None,
        owner="risk-team",
        description="Merchant category.",
    )
    return [user, merchant, user_stats, user_profile, merchant_profile]


def fraud_entity_rows(directory: str | Path | None = None) -> pl.DataFrame:
    """Training rows: each real (non-duplicate) transaction with its ``is_fraud`` label."""
    path = find_sample_data(directory) / "transactions.parquet"
    return (
        pl.scan_parquet(path)
        .filter(~pl.col("is_duplicate"))
        .select("transaction_id", "user_id", "merchant_id", "event_timestamp", "amount", "is_fraud")
        .collect()
    )


# --- generation ---------------------------------------------------------------------------------


def _check_arguments(n_users: int, days: int, start: datetime) -> tuple[int, int, datetime]:
    for name, value in (("n_users", n_users), ("days", days)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}")
    if not isinstance(start, datetime) or start.tzinfo is None or start.utcoffset() is None:
        raise ValueError(
            f"`start` must be a timezone-aware datetime such as "
            f"datetime(2026, 1, 1, tzinfo=timezone.utc), got {start!r}"
        )
    return int(n_users), int(days), start.astimezone(UTC)


def _timestamps(start_us: int, seconds: np.ndarray) -> pl.Series:
    """Seconds after `start` as a Datetime("us", "UTC") series."""
    return pl.Series(start_us + seconds.astype(np.int64) * 1_000_000).cast(_TS)


def _choose_rows(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One index per row of `weights` (m x k, non-negative, no all-zero row), drawn by weight."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    return np.minimum((cum <= u[:, None]).sum(axis=1), weights.shape[1] - 1)


def _make_world(rng: np.random.Generator, n_users: int, days: int) -> dict:
    """Users, merchants and each user's hidden habits."""
    s = _SETTINGS
    cat_pop = np.array([c[0] for c in _CATEGORIES.values()])
    n_cats = len(cat_pop)

    # users
    pre = rng.random(n_users) < s["pre_start_share"]
    signup_s = np.where(
        pre,
        -rng.integers(_HOUR, s["pre_start_max_days"] * _DAY, n_users),
        rng.integers(0, max(1, int(days * _DAY * 0.9)), n_users),
    )
    users = {
        "user_id": np.arange(1, n_users + 1, dtype=np.int64),
        "age": np.clip(np.round(rng.normal(41, 14, n_users)), 18, 85).astype(np.int64),
        "country": rng.choice(list(_COUNTRIES), n_users, p=list(_COUNTRIES.values())),
        "signup_s": signup_s,
    }

    # merchants: at least one per category, then by popularity, grouped per category
    n_merchants = max(n_cats, n_users // 5)
    m_cat = np.concatenate(
        [np.arange(n_cats), rng.choice(n_cats, n_merchants - n_cats, p=cat_pop / cat_pop.sum())]
    )
    m_cat = rng.permutation(m_cat)
    merchants = {
        "merchant_id": np.arange(1, n_merchants + 1, dtype=np.int64),
        "category": np.array(list(_CATEGORIES))[m_cat],
        "onboard_s": -rng.integers(30 * _DAY, 1500 * _DAY, n_merchants),
    }
    by_cat = np.argsort(m_cat, kind="stable")
    cat_count = np.bincount(m_cat, minlength=n_cats)
    cat_first = np.concatenate([[0], np.cumsum(cat_count)[:-1]])

    # habits: rate, amount scale, usual categories (top-k of a Gumbel-perturbed popularity)
    rate = np.clip(
        rng.gamma(s["rate_shape"], s["rate_mean"] / s["rate_shape"], n_users), *s["rate_clip"]
    )
    scale = np.exp(rng.normal(np.log(s["scale_median"]), s["scale_sigma"], n_users))
    keys = np.log(cat_pop)[None, :] + rng.gumbel(size=(n_users, n_cats))
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    n_home = rng.integers(*s["home_categories"], n_users)
    home = rank < n_home[:, None]
    return {
        "users": users,
        "merchants": merchants,
        "active_s": np.maximum(signup_s, 0),
        "rate": rate,
        "scale": scale,
        "home": home,
        "merchants_by_cat": by_cat,
        "cat_count": cat_count,
        "cat_first": cat_first,
    }


def _pick_merchant(rng: np.random.Generator, world: dict, category: np.ndarray) -> np.ndarray:
    """A merchant (row index) of the given category, uniformly."""
    within = np.floor(rng.random(len(category)) * world["cat_count"][category]).astype(np.int64)
    return world["merchants_by_cat"][world["cat_first"][category] + within]


def _make_transactions(rng: np.random.Generator, world: dict, days: int) -> dict[str, np.ndarray]:
    """All transaction rows as column arrays, sorted by time; `t` is seconds after `start`."""
    s = _SETTINGS
    cat_pop = np.array([c[0] for c in _CATEGORIES.values()])
    cat_mult = np.array([c[1] for c in _CATEGORIES.values()])
    cat_risk = np.array([c[2] for c in _CATEGORIES.values()])
    cat_device = np.array([c[3] for c in _CATEGORIES.values()])
    hour_p = np.array(_HOUR_WEIGHTS) / sum(_HOUR_WEIGHTS)
    end_s = days * _DAY
    active_s, scale, home = world["active_s"], world["scale"], world["home"]
    n_users = len(active_s)

    # legitimate purchases: a Poisson count per user, spread over the days the user is active
    span_days = (end_s - active_s) / _DAY
    user = np.repeat(np.arange(n_users), rng.poisson(world["rate"] * span_days))
    first_day = active_s[user] // _DAY
    day = first_day + np.floor(rng.random(len(user)) * (days - first_day)).astype(np.int64)
    t = day * _DAY + rng.choice(24, len(user), p=hour_p) * _HOUR + rng.integers(0, _HOUR, len(user))
    keep = t >= active_s[user]
    user, t = user[keep], t[keep]
    n_legit = len(user)
    explore = rng.random(n_legit) < s["explore_share"]
    category = np.where(
        explore,
        rng.choice(len(cat_pop), n_legit, p=cat_pop / cat_pop.sum()),
        _choose_rows(rng, cat_pop[None, :] * home[user]),
    )
    amount = scale[user] * cat_mult[category] * np.exp(rng.normal(0, s["amount_sigma"], n_legit))
    device = _choose_rows(rng, cat_device[category])

    # fraud incidents: a compromised card used 1 + Poisson(...) times within an hour
    n_inc = rng.poisson(s["incident_rate"] * span_days.sum())
    inc_user = rng.choice(n_users, n_inc, p=span_days / span_days.sum())
    inc_t = active_s[inc_user] + np.floor(rng.random(n_inc) * (end_s - active_s[inc_user]))
    inc_t = inc_t.astype(np.int64)
    night = rng.random(n_inc) < s["night_share"]
    inc_t = np.where(night, inc_t // _DAY * _DAY + rng.integers(0, 5 * _HOUR, n_inc), inc_t)
    size = 1 + rng.poisson(s["burst_extra_mean"], n_inc)
    inc = np.repeat(np.arange(n_inc), size)
    position = np.arange(len(inc)) - np.repeat(np.cumsum(size) - size, size)
    f_t = inc_t[inc] + np.where(position == 0, 0, rng.integers(30, _HOUR, len(inc)))
    f_user = inc_user[inc]
    keep = (f_t >= active_s[f_user]) & (f_t < end_s)
    f_user, f_t = f_user[keep], f_t[keep]
    n_fraud = len(f_user)
    new_cat = rng.random(n_fraud) < s["new_category_share"]
    f_category = np.where(
        new_cat,
        _choose_rows(rng, cat_risk[None, :] * ~home[f_user]),
        _choose_rows(rng, cat_pop[None, :] * home[f_user]),
    )
    high = rng.random(n_fraud) < s["high_amount_share"]
    f_amount = scale[f_user] * np.where(
        high,
        np.exp(rng.normal(np.log(s["high_amount_median"]), 0.5, n_fraud)),
        cat_mult[f_category] * np.exp(rng.normal(0, s["amount_sigma"], n_fraud)),
    )
    f_device = rng.choice(len(_DEVICES), n_fraud, p=s["fraud_device_p"])

    cols = {
        "user": np.concatenate([user, f_user]),
        "t": np.concatenate([t, f_t]),
        "category": np.concatenate([category, f_category]),
        "amount": np.maximum(np.round(np.concatenate([amount, f_amount]), 2), 0.5),
        "device": np.concatenate([device, f_device]),
        "is_fraud": np.concatenate([np.zeros(n_legit, bool), np.ones(n_fraud, bool)]),
    }
    cols["merchant"] = _pick_merchant(rng, world, cols["category"])

    # flaws: refunds (negative, later) and zero-amount errors (just before a legitimate purchase)
    n_base = len(cols["t"])
    refund = rng.choice(
        n_legit, min(n_legit, rng.binomial(n_base, s["refund_rate"])), replace=False
    )
    share = np.where(rng.random(len(refund)) < 0.7, 1.0, rng.uniform(0.2, 0.9, len(refund)))
    refund_rows = _take(cols, refund)
    refund_rows["t"] = refund_rows["t"] + rng.integers(_HOUR, 5 * _DAY, len(refund))
    refund_rows["amount"] = -np.maximum(np.round(refund_rows["amount"] * share, 2), 0.5)
    error = rng.choice(n_legit, min(n_legit, rng.binomial(n_base, s["error_rate"])), replace=False)
    error_rows = _take(cols, error)
    error_rows["t"] = error_rows["t"] - rng.integers(5, 120, len(error))
    error_rows["amount"] = np.zeros(len(error))
    cols = _concat([cols, refund_rows, error_rows])
    inside = (cols["t"] >= 0) & (cols["t"] < end_s)
    cols = _take(cols, np.flatnonzero(inside))

    # duplicates: exact copies of real rows, flagged
    n_rows = len(cols["t"])
    dup = rng.choice(n_rows, min(n_rows, rng.binomial(n_rows, s["duplicate_rate"])), replace=False)
    cols["is_duplicate"] = np.zeros(n_rows, bool)
    dup_rows = _take(cols, np.sort(dup))
    dup_rows["is_duplicate"] = np.ones(len(dup), bool)
    cols = _concat([cols, dup_rows])
    return _take(cols, np.argsort(cols["t"], kind="stable"))


def _take(cols: dict[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[index] for name, values in cols.items()}


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def _cents_to_amount(cents: pl.Expr) -> pl.Expr:
    # round: polars divides by a literal as a multiplication by its inverse (7860 / 100 gives
    # 78.60000000000001); rounding gives back the float nearest to the decimal amount
    return (cents / 100).round(2)


def _user_stats(
    rng: np.random.Generator,
    transactions: pl.DataFrame,
    users: pl.DataFrame,
    start: datetime,
    days: int,
) -> pl.DataFrame:
    """Daily per-user snapshots of the valid transactions, with processing delays and corrections.

    The snapshot of day ``d`` is stamped at the end of that day (``start + d + 1 days``) and
    covers the transactions strictly before it. Amounts are summed in integer cents, so the
    sums are exact.
    """
    s = _SETTINGS
    day_of = (pl.col("event_timestamp") - pl.lit(start)).dt.total_microseconds() // (_DAY * 10**6)
    daily = (
        transactions.lazy()
        .filter((pl.col("amount") > 0) & ~pl.col("is_duplicate"))
        .group_by("user_id", day_of.alias("day"))
        .agg(
            n=pl.len().cast(pl.Int64),
            cents=(pl.col("amount") * 100).round().cast(pl.Int64).sum(),
            max_cents=(pl.col("amount") * 100).round().cast(pl.Int64).max(),
        )
    )
    grid = (
        users.lazy()
        .select("user_id", first=day_of.clip(lower_bound=0))
        .select("user_id", day=pl.int_ranges("first", days, dtype=pl.Int64))
        .explode("day")
    )
    by_user = {"partition_by": "user_id", "order_by": "day"}
    stats = (
        grid.join(daily, on=["user_id", "day"], how="left")
        .with_columns(pl.col("n", "cents", "max_cents").fill_null(0))
        .sort("user_id", "day")
        .select(
            "user_id",
            event_timestamp=pl.lit(start) + pl.duration(days=pl.col("day") + 1),
            total_purchases=pl.col("n").cum_sum().over(**by_user),
            total_cents=pl.col("cents").cum_sum().over(**by_user),
            purchases_7d=pl.col("n").rolling_sum(7, min_samples=1).over(**by_user),
            cents_7d=pl.col("cents").rolling_sum(7, min_samples=1).over(**by_user),
            max_cents_30d=pl.col("max_cents").rolling_max(30, min_samples=1).over(**by_user),
        )
        .collect()
    )

    # processing delay, then ~1 % restated days later: a late-arriving purchase was booked
    n = stats.height
    delay = rng.integers(
        s["snapshot_delay_hours"][0] * _HOUR, s["snapshot_delay_hours"][1] * _HOUR + 1, n
    )
    fix = np.flatnonzero(rng.random(n) < s["correction_rate"])
    fix_delay = rng.integers(*(d * _DAY for d in s["correction_delay_days"]), len(fix))
    mean_cents = stats["total_cents"].to_numpy()[fix] / np.maximum(
        stats["total_purchases"].to_numpy()[fix], 1
    )
    extra = np.round(
        np.where(mean_cents > 0, mean_cents, 2500) * np.exp(rng.normal(0, 0.3, len(fix)))
    )
    extra = np.maximum(extra, 50).astype(np.int64)
    late = stats[fix].with_columns(
        pl.col("total_purchases", "purchases_7d") + 1,
        pl.col("total_cents", "cents_7d") + pl.Series(extra),
        pl.max_horizontal("max_cents_30d", pl.Series(extra)).alias("max_cents_30d"),
    )
    delays = np.concatenate([delay, fix_delay])
    return (
        pl.concat([stats, late])
        .with_columns(
            created_timestamp=pl.col("event_timestamp") + pl.duration(seconds=pl.Series(delays)),
        )
        .select(
            "user_id",
            "event_timestamp",
            "created_timestamp",
            pl.col("total_purchases").cast(pl.Int64),
            avg_purchase_value=pl.when(pl.col("total_purchases") > 0).then(
                pl.col("total_cents") / (pl.col("total_purchases") * 100)
            ),
            purchases_7d=pl.col("purchases_7d").cast(pl.Int64),
            amount_7d=_cents_to_amount(pl.col("cents_7d")),
            max_amount_30d=pl.when(pl.col("max_cents_30d") > 0).then(
                _cents_to_amount(pl.col("max_cents_30d"))
            ),
        )
        .sort("event_timestamp", "user_id", "created_timestamp")
    )
