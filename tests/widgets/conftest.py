"""A real feature repo from the shipped sample data, in a temp dir, shared by the widget tests.

The fraud definitions are applied and materialized (diskcache online store); one model,
``fraud``, is trained and registered twice (v1, v2, different parameters) through the core
API, for the panels that deploy and monitor. Tests that write (train panel registering,
canary moves) use their own model names so that they do not disturb each other.
"""

from __future__ import annotations

from datetime import UTC, datetime

import fskit.widgets  # noqa: F401  (enables the offline chart renderer, as in a notebook)
import polars as pl
import pytest

import fskit as fk
from fskit import datasets

# `--doctest-modules` (pyproject) would import this file a second time as a test module named
# "conftest", which clashes with tests/browser/conftest.py (neither folder is a package).
collect_ignore = ["conftest.py"]

FEATURES = [
    "user_stats:avg_purchase_value",
    "user_stats:purchases_7d",
    "user_stats:max_amount_30d",
    "user_profile:age",
    "merchant_profile:category",
]
#: The end of the sample data: the online store is materialized up to here.
END = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture(scope="session")
def entity_rows() -> pl.DataFrame:
    return datasets.fraud_entity_rows()


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> fk.FeatureStore:
    store = fk.FeatureStore(tmp_path_factory.mktemp("widgets") / "feature_repo")
    store.apply(datasets.fraud_definitions())
    store.materialize(None, END)
    return store


@pytest.fixture(scope="session")
def training_set(store: fk.FeatureStore, entity_rows: pl.DataFrame) -> pl.DataFrame:
    return store.get_historical_features(entity_rows, FEATURES)


@pytest.fixture(scope="session")
def features() -> list[str]:
    """The features the widget tests build training sets and models from."""
    return list(FEATURES)


@pytest.fixture(scope="session")
def materialized_until() -> datetime:
    """The end of the sample data: the online store is materialized up to here."""
    return END


def train_and_register(store, training_set, name: str, **params) -> fk.ModelVersion:
    result = fk.train(
        store,
        training_set,
        label="is_fraud",
        features=FEATURES,
        extra_columns=["amount"],
        num_boost_round=30,
        early_stopping_rounds=None,
        params=params,
    )
    return result.register(name)


@pytest.fixture(scope="session")
def fraud_model(store, training_set) -> str:
    """Model ``fraud`` with two versions (v2 shallower), neither deployed yet."""
    train_and_register(store, training_set, "fraud", max_depth=4)
    train_and_register(store, training_set, "fraud", max_depth=2, eta=0.3)
    return "fraud"
