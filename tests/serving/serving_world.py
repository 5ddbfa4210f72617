"""A tiny real feature repo with two trained model versions (built by ``build_repo``).

The world: 200 card holders. ``user_stats`` (TTL 2 days) has daily snapshots; holders 180-189
stopped 5 days ago (their stats are expired online) and holders 190-199 have none (missing).
``user_profile`` has age and country (a categorical input). The request brings ``amount``.
Two versions are trained with different parameters, so their scores differ, and registered
under several model names so that tests which change a deployment do not disturb the others.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

import fskit as fk
from fskit.serving import deploy

N_USERS = 200
EXPIRED = range(180, 190)
NO_STATS = range(190, 200)
FEATURES = [
    "user_stats:purchases_7d",
    "user_stats:amount_7d",
    "user_stats:avg_amount",
    "user_profile:age",
    "user_profile:country",
]
MODELS = (
    "fraud",
    "canary",
    "shadow",
    "schema",
    "stream",
    "cli",
    "switch",
    "history",
    "cli_history",
)
#: registered (v1 and v2) but never deployed: the first ``serve`` or ``deploy`` decides
NEVER_DEPLOYED = ("fresh", "fresh_cli")
#: an on-demand feature: request field over an online feature, computed by the view's own code
RATIO = "amount_ratio:amount_ratio"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _world(data: Path, now: datetime) -> pl.DataFrame:
    rng = np.random.default_rng(7)
    data.mkdir(parents=True, exist_ok=True)
    countries = rng.choice(["GB", "DE", "FR"], N_USERS)
    pl.DataFrame(
        {
            "user_id": np.arange(N_USERS, dtype=np.int64),
            "event_timestamp": [now - timedelta(days=60)] * N_USERS,
            "age": rng.integers(18, 80, N_USERS),
            "country": countries,
        }
    ).write_parquet(data / "users.parquet")
    rows = []
    base = rng.lognormal(3, 0.5, N_USERS)
    for day in range(12, -1, -1):
        stamp = now - timedelta(days=day, hours=1)
        for user in range(N_USERS):
            if user in NO_STATS or (user in EXPIRED and day < 5):
                continue
            rows.append(
                (
                    user,
                    stamp,
                    int(rng.integers(0, 20)),
                    float(base[user] * rng.uniform(3, 9)),
                    float(base[user]),
                )
            )
    pl.DataFrame(
        rows,
        schema={
            "user_id": pl.Int64,
            "event_timestamp": pl.Datetime("us", "UTC"),
            "purchases_7d": pl.Int64,
            "amount_7d": pl.Float64,
            "avg_amount": pl.Float64,
        },
        orient="row",
    ).write_parquet(data / "user_stats.parquet")
    n = 3000
    user_id = rng.integers(0, 180, n)
    amount = base[user_id] * rng.lognormal(0, 0.8, n)
    risk = np.log(amount / base[user_id]) * 1.5 + (countries[user_id] == "FR") * 1.0 - 1.5
    label = rng.random(n) < 1 / (1 + np.exp(-risk))
    return pl.DataFrame(
        {
            "user_id": user_id.astype(np.int64),
            "event_timestamp": [
                now - timedelta(days=10) + timedelta(seconds=int(s))
                for s in rng.integers(0, 9 * 86400, n)
            ],
            "amount": amount,
            "is_fraud": label.astype(np.int64),
        }
    ).with_columns(pl.col("event_timestamp").cast(pl.Datetime("us", "UTC")))


def build_repo(root: Path) -> fk.FeatureStore:
    """Definitions, online store, two model versions per name in ``MODELS`` and ``NEVER_DEPLOYED``."""
    from fskit.training import train

    now = datetime.now(UTC).replace(microsecond=0)
    entity_rows = _world(root / "data", now)
    store = fk.FeatureStore(root / "repo")
    user = fk.Entity("user", join_keys=["user_id"])
    stats = fk.FeatureView(
        name="user_stats",
        entities=[user],
        source=fk.ParquetSource(root / "data" / "user_stats.parquet"),
        ttl=timedelta(days=2),
    )
    profile = fk.FeatureView(
        name="user_profile",
        entities=[user],
        source=fk.ParquetSource(root / "data" / "users.parquet"),
    )
    ratio = fk.OnDemandFeatureView(
        name="amount_ratio",
        sources=["user_stats:avg_amount"],
        request_schema=[fk.Field("amount", pl.Float64)],
        features={"amount_ratio": pl.col("amount") / pl.col("avg_amount")},
    )
    store.apply([user, stats, profile, ratio])
    store.materialize(None, now)
    training = store.get_historical_features(entity_rows, FEATURES)
    results = [
        train(store, training, label="is_fraud", features=FEATURES, extra_columns=["amount"],
              num_boost_round=25, early_stopping_rounds=None, params={"max_depth": 4}),
        train(store, training, label="is_fraud", features=FEATURES, extra_columns=["amount"],
              num_boost_round=8, early_stopping_rounds=None, params={"max_depth": 2, "eta": 0.5}),
    ]  # fmt: skip
    training = store.get_historical_features(entity_rows, [*FEATURES, RATIO])
    on_demand = train(store, training, label="is_fraud", features=[*FEATURES, RATIO],
                      num_boost_round=10, early_stopping_rounds=None)  # fmt: skip
    on_demand.register("ondemand")
    for name in MODELS:
        for result in results:
            result.register(name)
        deploy(store, name, 1)  # v1 stable; v2 is there to be a canary
    results[0].register("switch")  # v3: a canary that is not the version made stable
    for name in NEVER_DEPLOYED:
        for result in results:
            result.register(name)
    store.close()
    return store
