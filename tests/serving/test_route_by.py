"""Canary routing sticky on chosen join keys: ``deploy(..., route_by="user_id")``.

A world with two entities (user and merchant): without ``route_by`` the split hashes both
keys, so one user meets both versions across merchants; with it every row of a user goes to
one version. Real repo, real models, the predictor every server runs.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

import fskit as fk
from fskit.serving import DeploymentError, Predictor, deploy, history, promote, rollback, status
from fskit.training import train

NOW = datetime.now(UTC).replace(microsecond=0)
USERS, MERCHANTS = 40, 30


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("route_by")
    rng = np.random.default_rng(3)
    users = pl.DataFrame(
        {
            "user_id": np.arange(USERS, dtype=np.int64),
            "event_timestamp": [NOW - timedelta(days=1)] * USERS,
            "spend": rng.gamma(2.0, 10.0, USERS),
        }
    )
    merchants = pl.DataFrame(
        {
            "merchant_id": np.arange(MERCHANTS, dtype=np.int64),
            "event_timestamp": [NOW - timedelta(days=1)] * MERCHANTS,
            "risk": rng.random(MERCHANTS),
        }
    )
    store = fk.FeatureStore(root / "repo")
    user = fk.Entity("user", join_keys=["user_id"])
    merchant = fk.Entity("merchant", join_keys=["merchant_id"])
    store.apply(
        [
            user,
            merchant,
            fk.FeatureView(name="users", entities=[user], source=users),
            fk.FeatureView(name="merchants", entities=[merchant], source=merchants),
        ]
    )
    store.materialize(None, NOW)
    n = 2000
    rows = pl.DataFrame(
        {
            "user_id": rng.integers(0, USERS, n),
            "merchant_id": rng.integers(0, MERCHANTS, n),
            "event_timestamp": [NOW - timedelta(minutes=int(m)) for m in rng.integers(1, 600, n)],
        }
    )
    features = ["users:spend", "merchants:risk"]
    training = store.get_historical_features(rows, features)
    label = (training["risk"].to_numpy() + rng.normal(0, 0.3, n) > 0.5).astype(np.int64)
    training = training.with_columns(pl.Series("label", label))
    for rounds in (5, 9):
        train(store, training, label="label", features=features, num_boost_round=rounds,
              early_stopping_rounds=None).register("pay")  # fmt: skip
    deploy(store, "pay", 1)
    return store


def _versions_by_user(store) -> dict[int, set[int]]:
    predictor = Predictor(store, "pay", log=None)
    entities = [{"user_id": u, "merchant_id": m} for u in range(USERS) for m in range(MERCHANTS)]
    answers = predictor.predict(entities).body["predictions"]
    seen: dict[int, set[int]] = {}
    for entity, answer in zip(entities, answers, strict=True):
        seen.setdefault(entity["user_id"], set()).add(answer["version"])
    return seen


def test_route_by_keeps_each_user_on_one_version(store):
    deploy(store, "pay", 2, share=0.5)
    mixed = _versions_by_user(store)
    assert any(len(v) == 2 for v in mixed.values())  # all keys hashed: users meet both
    rollback(store, "pay")

    state = deploy(store, "pay", 2, share=0.5, route_by="user_id")
    assert state.route_by == ("user_id",) and "(by user_id)" in str(state)
    sticky = _versions_by_user(store)
    assert all(len(v) == 1 for v in sticky.values())
    on_canary = sum(v == {2} for v in sticky.values())
    assert 0.25 * USERS < on_canary < 0.75 * USERS  # about the share, by user
    assert history(store, "pay")["route_by"].to_list()[-1] == ["user_id"]

    # promote ends the split: route_by goes with the canary
    assert promote(store, "pay").route_by == ()
    rollback(store, "pay")
    assert status(store, "pay").stable == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"route_by": "country"}, r"\['country'\] not join key\(s\) of 'pay' v2; its join keys"),
        ({"route_by": []}, "route_by must be a join key name"),
        ({"route_by": ["user_id", 3]}, "route_by must be a join key name"),
        ({"route_by": "user_id", "as_stable": True}, "drop route_by="),
    ],
)
def test_bad_route_by_is_refused_before_anything_is_written(store, options, message):
    events = history(store, "pay").height
    with pytest.raises(DeploymentError, match=message):
        deploy(store, "pay", 2, **options)
    assert history(store, "pay").height == events
    assert status(store, "pay").canary is None


def test_route_by_on_a_first_deployment_is_refused(store, tmp_path):
    fresh = tmp_path / "copy"
    import shutil

    shutil.copytree(store.repo_path, fresh, ignore=shutil.ignore_patterns("serving"))
    with pytest.raises(DeploymentError, match="no stable version yet"):
        deploy(fresh, "pay", 1, route_by="user_id")
    assert status(fresh, "pay").stable is None


def test_the_deploy_endpoint_takes_route_by_and_checks_its_type(store, servers):
    server = servers(store, "pay")

    def post(body):
        request = urllib.request.Request(
            server.url + "/deployment/deploy", data=json.dumps(body).encode(), method="POST"
        )
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status_, body = post({"version": 2, "route_by": 7})
    assert status_ == 422 and "route_by must be" in body["error"]
    status_, body = post({"version": 2, "route_by": "shop"})
    assert status_ == 409 and "not join key" in body["error"]
    status_, body = post({"version": 2, "share": 0.5, "route_by": ["user_id"]})
    assert status_ == 200 and body["route_by"] == ["user_id"]
    assert server.deployment()["route_by"] == ["user_id"]
    rollback(store, "pay")
    server.stop()
