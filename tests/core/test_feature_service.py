"""FeatureService: a named set of feature refs, pinned to view versions at apply.

A tiny in-memory world: one user entity and a ``user_stats`` view whose v2 reads a different
source (values times ten), so a ref that follows the latest version and one pinned to v1
give different columns.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import fskit as fk
from fskit.errors import DefinitionError, RegistryError
from fskit.training import train

T = datetime(2026, 1, 1)
DAY = timedelta(days=1)
USER = fk.Entity("user", join_keys=["user_id"])
PINNED = ["user_stats@v1:purchases", "user_stats@v1:avg_purchase_value"]

LABELS = pl.DataFrame(
    {
        "user_id": [1, 1, 2, 3],
        "event_timestamp": [T + DAY, T + 3 * DAY, T + 2 * DAY, T + DAY],
        "label": [0, 1, 0, 1],
    }
)


def _stats(scale: int = 1) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": [1, 1, 2],
            "event_timestamp": [T, T + 2 * DAY, T + DAY],
            "purchases": [3 * scale, 5 * scale, 7 * scale],
            "avg_purchase_value": [10.0 * scale, 12.5 * scale, 8.0 * scale],
        }
    )


def _view(version: int = 1) -> fk.FeatureView:
    return fk.FeatureView(
        name="user_stats",
        entities=[USER],
        source=_stats(10 ** (version - 1)),
        ttl=3 * DAY,
        version=version,
    )


def _service(**overrides) -> fk.FeatureService:
    kwargs = {
        "name": "fraud",
        "features": ["user_stats:purchases", "user_stats:avg_purchase_value"],
        "owner": "risk-team",
    }
    return fk.FeatureService(**{**kwargs, **overrides})


@pytest.fixture
def store(tmp_path) -> fk.FeatureStore:
    store = fk.FeatureStore(tmp_path / "repo")
    store.apply([USER, _view(), _service()])
    return store


def _registry_bytes(store: fk.FeatureStore) -> bytes:
    return (store.repo_path / "registry.json").read_bytes()


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


# ------------------------------------------------------------------------------- definition


def test_a_service_is_a_validated_value():
    service = _service()
    assert service.features == (
        fk.FeatureRef("user_stats", "purchases"),
        fk.FeatureRef("user_stats", "avg_purchase_value"),
    )
    assert service == _service() and hash(service) == hash(_service())
    assert not service.pinned
    assert repr(service) == (
        "FeatureService('fraud', features=['user_stats:purchases', "
        "'user_stats:avg_purchase_value'])"
    )
    assert "risk-team" in service._repr_html_() and "user_stats:purchases" in service._repr_html_()
    # a whole view with a known schema means all its features at its version
    declared = fk.FeatureView(
        name="v", entities=[USER], source=_stats(), schema=[fk.Field("purchases", pl.Int64)]
    )
    assert fk.FeatureService(name="s", features=[declared]).feature_refs == ("v@v1:purchases",)
    # ... and without one it is expanded at apply
    assert fk.FeatureService(name="s", features=_view(2)).feature_refs == ("user_stats@v2:*",)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "fraud model"}, r"FeatureService: name must be an identifier.*'fraud model'"),
        ({"features": []}, r"FeatureService 'fraud': features is empty"),
        (
            {"features": ["user_stats:purchases", "user_stats:purchases"]},
            r"FeatureService 'fraud': features lists \['user_stats:purchases'\] more than once",
        ),
        ({"features": ["user_stats"]}, r"FeatureService 'fraud': feature reference 'user_stats'"),
        ({"features": [3]}, r"FeatureService 'fraud': a feature reference must be a string"),
        ({"tags": {"a": 1}}, r"FeatureService 'fraud': tags must be a dict of str to str"),
    ],
)
def test_invalid_services_are_refused_at_construction(kwargs, message):
    with pytest.raises(DefinitionError, match=message):
        _service(**kwargs)


def test_an_unapplied_service_cannot_be_stored():
    with pytest.raises(DefinitionError, match="not pinned.*FeatureStore.apply pins"):
        _service().to_config()


# ---------------------------------------------------------------------------------- registry


def test_apply_pins_and_persists_and_plan_diffs(tmp_path):
    store = fk.FeatureStore(tmp_path / "repo")
    plan = store.plan([USER, _view(), _service()])
    assert [str(c) for c in plan.changes][-1] == "+ feature_service fraud: 2 features"
    assert not (store.repo_path / "registry.json").exists()  # plan writes nothing
    store.apply([USER, _view(), _service()])
    applied = store.get_feature_service("fraud")
    assert applied.pinned and applied.feature_refs == tuple(PINNED)
    assert store.list_feature_services() == [applied]
    config = json.loads((store.repo_path / "registry.json").read_text())
    assert config["feature_services"]["fraud"]["features"] == PINNED

    # the same again: unchanged; the applied (pinned) object too
    assert [c.action for c in store.plan([_service()]).changes] == ["unchanged"]
    assert [c.action for c in store.plan([applied]).changes] == ["unchanged"]
    # not versioned: new metadata or a new feature list is an update
    changed = store.plan([_service(features=["user_stats:purchases"], description="v2 model")])
    (change,) = changed.changes
    assert (change.kind, change.name, change.action) == ("feature_service", "fraud", "update")
    assert change.details == (
        f"features: {PINNED!r} -> ['user_stats@v1:purchases']",
        "description: '' -> 'v2 model'",
    )
    store.apply([_service(features=["user_stats:purchases"])])
    assert store.get_feature_service("fraud").feature_refs == ("user_stats@v1:purchases",)

    # removal
    plan = store.plan([], objects_to_delete=[_service()])
    assert [str(c) for c in plan.changes] == ["- feature_service fraud"]
    store.apply([], objects_to_delete=[_service()])
    assert store.list_feature_services() == []
    with pytest.raises(RegistryError, match=r"no feature service 'fraud' in .*known: \[\]"):
        store.get_feature_service("fraud")


def test_another_process_sees_the_service(store, tmp_path):
    # a new store on the same directory, in this process ...
    again = fk.FeatureStore(store.repo_path)
    assert again.get_feature_service("fraud") == store.get_feature_service("fraud")
    assert [c.action for c in again.plan([USER, _view(), _service()]).changes] == ["unchanged"] * 3
    # ... and in another one, which reads the same training set through the service
    LABELS.write_parquet(tmp_path / "labels.parquet")
    code = (
        "import sys, fskit as fk, polars as pl\n"
        "store = fk.FeatureStore(sys.argv[1])\n"
        "service = store.get_feature_service('fraud')\n"
        "print(repr(service))\n"
        "store.get_historical_features(pl.read_parquet(sys.argv[2]), service)"
        ".write_parquet(sys.argv[3])\n"
    )
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(store.repo_path),
            str(tmp_path / "labels.parquet"),
            str(tmp_path / "child.parquet"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"FeatureService('fraud', features={PINNED!r})"
    assert_frame_equal(
        pl.read_parquet(tmp_path / "child.parquet"),
        store.get_historical_features(LABELS, PINNED),
    )


def test_unknown_suggests(store):
    with pytest.raises(RegistryError, match=r"no feature service 'frad'.*did you mean 'fraud'"):
        store.get_feature_service("frad")


# ----------------------------------------------------------------------------------- pinning


def test_a_service_keeps_its_view_version_after_a_new_one(store):
    store.apply([_view(2)])
    latest = store.get_historical_features(LABELS, ["user_stats:purchases"])
    pinned = store.get_historical_features(LABELS, PINNED)
    assert latest["purchases"].to_list() != pinned["purchases"].to_list()  # v2 is 10x

    applied = store.get_feature_service("fraud")
    assert_frame_equal(store.get_historical_features(LABELS, applied), pinned)
    # the object given to apply (refs not pinned) means the applied, pinned refs too
    assert_frame_equal(store.get_historical_features(LABELS, _service()), pinned)
    assert_frame_equal(
        store.get_historical_features(LABELS, _service(), full_feature_names=True),
        store.get_historical_features(LABELS, PINNED, full_feature_names=True),
    )
    assert store.resolve_features(_service()) == PINNED
    # a service can sit in a list next to other refs
    mixed = store.get_historical_features(
        LABELS, [applied, "user_stats@v2:purchases"], full_feature_names=True
    )
    assert mixed.columns[-3:] == [
        "user_stats_v1__purchases",
        "user_stats_v1__avg_purchase_value",
        "user_stats_v2__purchases",
    ]

    # applying the service again re-pins it: shown as an update
    (change,) = store.plan([_service()]).changes
    assert change.action == "update" and "user_stats@v2:purchases" in change.details[0]
    store.apply([_service()])
    assert_frame_equal(
        store.get_historical_features(LABELS, _service()),
        store.get_historical_features(
            LABELS, ["user_stats@v2:purchases", "user_stats@v2:avg_purchase_value"]
        ),
    )
    # the object fetched before the re-pin no longer matches the applied service: said so
    with pytest.raises(RegistryError, match=r"applied service pins \['user_stats@v2"):
        store.get_historical_features(LABELS, applied)


def test_whole_views_and_pinned_refs_in_a_service(store):
    store.apply([_view(2)])
    service = fk.FeatureService(name="whole", features=[_view(1), "user_stats@v2:purchases"])
    store.apply([service])
    assert store.get_feature_service("whole").feature_refs == (*PINNED, "user_stats@v2:purchases")
    assert_frame_equal(
        store.get_historical_features(LABELS, service, full_feature_names=True),
        store.get_historical_features(
            LABELS, [*PINNED, "user_stats@v2:purchases"], full_feature_names=True
        ),
    )


def test_an_unapplied_service_is_refused_at_retrieval(store):
    with pytest.raises(RegistryError, match=r"FeatureService 'churn' is not applied.*apply it"):
        store.get_historical_features(LABELS, _service(name="churn"))


# ---------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (["user_stat:purchases"], r"no feature view 'user_stat' is applied.*did you mean"),
        (["user_stats:purchase"], r"'user_stats@v1' has no feature 'purchase'.*did you mean"),
        (["user_stats@v3:purchases"], r"has no version 3; applied versions: \[1\]"),
        (
            ["user_stats:purchases", "user_stats@v1:purchases"],
            r"lists 'user_stats@v1:purchases' twice \(as 'user_stats:purchases' and",
        ),
    ],
)
def test_a_service_naming_unknown_features_is_refused_and_nothing_written(store, features, message):
    before = _snapshot(store.repo_path)
    other = fk.FeatureView(name="other", entities=[USER], source=_stats())
    with pytest.raises(RegistryError, match=rf"FeatureService 'fraud'.*{message}"):
        store.apply([other, _service(features=features)])
    assert _snapshot(store.repo_path) == before  # no registry change, no parquet for 'other'
    with pytest.raises(RegistryError, match=message):
        store.plan([_service(features=features)])


def test_deleting_a_view_version_a_service_uses_is_refused(store):
    store.apply([_view(2)])
    before = _registry_bytes(store)
    with pytest.raises(
        RegistryError,
        match=r"cannot delete FeatureView \['user_stats@v1'\]: FeatureService 'fraud' uses "
        r".*objects_to_delete=\[service\]",
    ):
        store.apply([], objects_to_delete=[_view(1)])
    assert _registry_bytes(store) == before
    # re-pinned to v2 in the same batch, or deleted with it: allowed
    store.apply([_service(features=["user_stats@v2:purchases"])], objects_to_delete=[_view(1)])
    assert store.registry.versions("user_stats") == [2]
    store.apply([], objects_to_delete=[_view(2), _service()])
    assert store.list_feature_services() == [] and store.list_feature_views() == []


def test_deleting_an_unknown_service_is_refused(store):
    before = _registry_bytes(store)
    with pytest.raises(RegistryError, match=r"cannot delete FeatureService 'churn': it is not"):
        store.apply([], objects_to_delete=[_service(name="churn")])
    assert _registry_bytes(store) == before


# -------------------------------------------------------------------------------- online read


def test_online_read_with_a_service_equals_the_explicit_refs(store):
    store.apply([_view(2)])
    store.materialize(None, T + 3 * DAY)
    rows = [{"user_id": 1}, {"user_id": 2}, {"user_id": 3}]
    now = datetime(2026, 1, 4, tzinfo=UTC)
    explicit = store.get_online_features(PINNED, rows, now=now)
    assert explicit["purchases"].to_list() == [5, 7, None]  # v1's values, not v2's
    for features in (_service(), store.get_feature_service("fraud")):
        assert_frame_equal(store.get_online_features(features, rows, now=now), explicit)
        assert_frame_equal(store.get_online_features(features, rows, now=now), explicit)  # cached


# -------------------------------------------------------------------------------- training


def test_training_with_a_service_records_its_pinned_refs(tmp_path):
    rng = np.random.default_rng(0)
    n_users, n_rows = 200, 1500
    users = pl.DataFrame(
        {
            "user_id": np.arange(n_users),
            "event_timestamp": [T] * n_users,
            "x": rng.normal(size=n_users),
            "y": rng.normal(size=n_users),
        }
    )
    user_id = rng.integers(0, n_users, n_rows)
    x = users["x"].to_numpy()[user_id]
    rows = pl.DataFrame(
        {
            "user_id": user_id,
            "event_timestamp": [T + timedelta(hours=1 + i) for i in range(n_rows)],
            "label": (rng.random(n_rows) < 1 / (1 + np.exp(-2 * x))).astype(np.int64),
        }
    )
    store = fk.FeatureStore(tmp_path / "repo")
    profile = fk.FeatureView(name="profile", entities=[USER], source=users)
    service = fk.FeatureService(name="churn", features=["profile:x", "profile:y"])
    store.apply([USER, profile, service])
    store.apply([replace(profile, version=2, ttl=400 * DAY)])  # the service stays on v1

    explicit = ["profile@v1:x", "profile@v1:y"]
    training_set = store.get_historical_features(rows, service)
    assert_frame_equal(training_set, store.get_historical_features(rows, explicit))
    kwargs = {"label": "label", "num_boost_round": 10}
    by_service = train(store, training_set, features=service, **kwargs)
    by_list = train(store, training_set, features=explicit, **kwargs)
    assert by_service.feature_refs == by_list.feature_refs == tuple(explicit)
    assert by_service.feature_columns == by_list.feature_columns == ("x", "y")
    assert by_service.metrics == by_list.metrics
