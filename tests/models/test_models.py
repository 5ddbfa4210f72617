"""The model registry, loading with the skew guard, categorical encoding and batch scoring.

Real files and real xgboost on a tiny world: users with a numerical feature ``x`` and a string
feature ``color``; the label depends on both, so the categorical mapping matters.
"""

from __future__ import annotations

import json
import pickletools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import fskit as fk
from fskit import drift
from fskit.errors import DefinitionError, FskitError
from fskit.models import (
    LoadedModel,
    ModelInputError,
    ModelLoadError,
    ModelNotFoundError,
    ModelRegistry,
    ModelVersion,
    encode_features,
    predict_batch,
)
from fskit.training import train

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FEATURES = ["profile:x", "profile:color", "activity:visits"]
N_USERS = 400


def _world(n_rows: int = 4000, seed: int = 0):
    rng = np.random.default_rng(seed)
    users = pl.DataFrame(
        {
            "user_id": np.arange(N_USERS, dtype=np.int64),
            "event_timestamp": [T0] * N_USERS,
            "x": rng.normal(size=N_USERS),
            "color": rng.choice(["red", "green", "blue"], N_USERS),
        }
    )
    activity = pl.DataFrame(
        {
            "user_id": np.arange(N_USERS, dtype=np.int64),
            "event_timestamp": [T0] * N_USERS,
            "visits": rng.integers(0, 20, N_USERS),
        }
    )
    user_id = rng.integers(0, N_USERS, n_rows)
    x = users["x"].to_numpy()[user_id]
    red = (users["color"].to_numpy() == "red")[user_id]
    p = 1 / (1 + np.exp(-(2 * x + 2.5 * red - 1.5)))
    rows = pl.DataFrame(
        {
            "user_id": user_id,
            "event_timestamp": [T0 + timedelta(hours=1 + int(i)) for i in range(n_rows)],
            "amount": rng.gamma(2.0, 20.0, n_rows),
            "label": (rng.random(n_rows) < p).astype(np.int64),
        }
    )
    return users, activity, rows


def _definitions(users, activity, *, ttl=None, version=1):
    user = fk.Entity("user", join_keys=["user_id"])
    profile = fk.FeatureView(name="profile", entities=[user], source=users, ttl=ttl)
    act = fk.FeatureView(name="activity", entities=[user], source=activity, version=version)
    return user, profile, act


@pytest.fixture
def world(tmp_path):
    users, activity, rows = _world()
    store = fk.FeatureStore(tmp_path / "repo")
    user, profile, act = _definitions(users, activity)
    store.apply([user, profile, act])
    training_set = store.get_historical_features(rows, FEATURES)
    result = train(
        store,
        training_set,
        label="label",
        features=FEATURES,
        extra_columns=["amount"],
        num_boost_round=40,
    )
    return store, rows, training_set, result, (users, activity)


# ------------------------------------------------------------------------------- registering


def test_register_writes_only_xgboost_files_and_json_metadata(world):
    store, _, _, result, _ = world
    mv = result.register("churn")
    assert mv.path == store.repo_path / "models" / "churn" / "v1"
    assert sorted(p.name for p in mv.path.iterdir()) == ["metadata.json", "model.ubj"]
    root = store.repo_path / "models"
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == [
        ".lock",
        "churn",
        "churn/v1",
        "churn/v1/metadata.json",
        "churn/v1/model.ubj",
    ]
    data = (mv.path / "model.ubj").read_bytes()
    assert data[:1] == b"{" and b"learner" in data[:64]  # UBJSON object, XGBoost's format
    assert not data.startswith(b"\x80")  # no pickle protocol header
    with pytest.raises(ValueError, match="opcode b'{' unknown"):  # not a pickle stream
        list(pickletools.genops(data))
    meta = json.loads((mv.path / "metadata.json").read_text())  # human-readable JSON

    assert meta["format"] == "fskit-model/1"
    assert meta["feature_refs"] == ["profile@v1:x", "profile@v1:color", "activity@v1:visits"]
    assert meta["feature_columns"] == ["x", "color", "visits", "amount"]
    assert set(meta["feature_views"]) == {"profile@v1", "activity@v1"}
    assert meta["training_data"]["sha256"] == result.fingerprint
    assert meta["training_data"]["rows"] == result.n_rows
    assert set(meta["library_versions"]) >= {"xgboost", "polars", "python", "fskit"}
    assert meta["metrics"]["auc"] == pytest.approx(result.metrics["auc"])
    assert meta["window"]["cutoff"] == result.window["cutoff"].isoformat()
    assert meta["categories"] == {"color": ["blue", "green", "red"]}


def test_a_failed_register_leaves_no_version_behind(world, monkeypatch):
    store, _, _, result, _ = world

    def broken(path):
        with open(path, "wb") as fh:
            fh.write(b"{half")
        raise OSError("disk full")

    monkeypatch.setattr(result.booster, "save_model", broken)
    with pytest.raises(OSError, match="disk full"):
        result.register("churn")
    assert list((store.repo_path / "models" / "churn").iterdir()) == []
    assert ModelRegistry(store).versions("churn") == []
    monkeypatch.undo()
    assert result.register("churn").version == 1


def test_versions_list_get(world):
    store, _, _, result, _ = world
    registry = ModelRegistry(store)
    assert registry.versions("churn") == []
    first, second = result.register("churn"), registry.register(result, "churn")
    assert (first.version, second.version) == (1, 2)
    assert registry.versions("churn") == [1, 2]
    assert registry.get("churn").version == 2
    assert registry.get("churn", 1).created_at <= registry.get("churn", 2).created_at
    listing = registry.list()
    assert listing.select("name", "version", "n_features").rows() == [
        ("churn", 1, 4),
        ("churn", 2, 4),
    ]
    assert listing["auc"].to_list() == pytest.approx([result.metrics["auc"]] * 2)
    with pytest.raises(ModelNotFoundError, match=r"no model named 'fraud'.*\['churn'\]"):
        registry.get("fraud")
    with pytest.raises(ModelNotFoundError, match=r"no version 7; registered versions: \[1, 2\]"):
        registry.load("churn", 7)
    again = registry.get("churn", 1)
    assert isinstance(again, ModelVersion)
    assert again.feature_refs == result.feature_refs
    assert again.window == result.window
    assert "churn@v1" in repr(again) and "<table>" in again._repr_html_()


@pytest.mark.parametrize("name", ["../x", "..", "x/y", "Fraud", "", "1model", "a" * 65, "a b"])
def test_model_names_are_validated(world, name):
    store, _, _, result, _ = world
    with pytest.raises(DefinitionError, match="model name must match"):
        result.register(name)
    with pytest.raises(DefinitionError, match="model name must match"):
        ModelRegistry(store).load(name)
    assert not (store.repo_path / "x").exists()
    assert not (store.repo_path / "models" / "x").exists()


# -------------------------------------------------------------------------- loading, scoring


def test_register_load_predict_round_trips_the_same_scores(world):
    store, _, training_set, result, _ = world
    result.register("churn")
    loaded = ModelRegistry(store).load("churn")
    assert isinstance(loaded, LoadedModel)
    expected = result.predict(training_set)
    np.testing.assert_array_equal(loaded.predict(training_set), expected)
    # the booster alone, fed the same matrix, agrees too (no hidden state in the wrapper)
    x = encode_features(training_set, loaded.feature_columns, loaded.version.categories)
    np.testing.assert_allclose(loaded.booster.inplace_predict(x), expected, rtol=0, atol=1e-7)
    # a mapping (what an online read returns) gives the very same scores
    some = training_set.head(25)
    as_dict = some.select(loaded.feature_columns).to_dict(as_series=False)
    np.testing.assert_array_equal(loaded.predict(as_dict), expected[:25])
    one = {c: some[c][3] for c in loaded.feature_columns}  # one row as scalars
    np.testing.assert_array_equal(loaded.predict(one), expected[3:4])


def test_small_requests_walk_the_compiled_trees_and_agree_with_xgboost(world):
    """A few rows are scored by fskit._trees (the serving path), many by XGBoost."""
    store, _, training_set, result, _ = world
    result.register("churn")
    loaded = ModelRegistry(store).load("churn")
    assert loaded.trees is not None  # a categorical feature ("color") is compiled too
    rows = training_set.head(200).select(loaded.feature_columns)
    expected = loaded.predict(rows)  # 200 rows: XGBoost
    small = np.concatenate([loaded.predict(rows.slice(i, 5)) for i in range(0, 200, 5)])
    np.testing.assert_array_equal(small, expected)  # bitwise: see fskit._trees
    calls = []
    loaded._trees = type(
        "Spy", (), {"predict": lambda self, r: calls.append(r) or [0.5] * len(r)}
    )()
    assert loaded.predict(rows.head(1)).tolist() == [0.5] and len(calls) == 1
    loaded.predict(rows)  # a big batch never takes the Python walk
    assert len(calls) == 1


def test_predict_names_missing_columns_and_bad_types(world):
    store, _, training_set, result, _ = world
    result.register("churn")
    loaded = ModelRegistry(store).load("churn")
    with pytest.raises(ModelInputError, match=r"lack column\(s\) \['visits', 'amount'\]"):
        loaded.predict(training_set.drop("visits", "amount"))
    with pytest.raises(FskitError, match=r"lack column\(s\) \['amount'\]"):
        loaded.predict({"x": [1.0], "color": ["red"], "visits": [3]})
    with pytest.raises(ModelInputError, match="'color' is categorical"):
        loaded.predict({"x": [1.0], "color": [2], "visits": [3], "amount": [1.0]})
    with pytest.raises(ModelInputError, match="'x' is numerical"):
        loaded.predict(training_set.with_columns(pl.col("x").cast(pl.String)))
    nulls = loaded.predict({"x": [None], "color": [None], "visits": [None], "amount": [None]})
    assert nulls.shape == (1,) and 0 < nulls[0] < 1  # missing everywhere is still a score


def test_categories_are_fixed_at_training_and_unknown_means_missing(world):
    store, _, training_set, result, _ = world
    result.register("churn")
    loaded = ModelRegistry(store).load("churn")
    assert loaded.version.categories == {"color": ["blue", "green", "red"]}
    base = {"x": [0.2] * 5, "visits": [4] * 5, "amount": [30.0] * 5}
    colors = ["red", "green", "blue", "purple", None]  # purple: never seen in training
    scores = loaded.predict({**base, "color": colors})
    assert scores[3] == scores[4]  # unknown category == missing
    assert scores[0] > scores[1] + 0.1  # red is the risky colour: the mapping matters
    # codes do not depend on the batch: each row alone scores as in the batch, in any order
    one = {k: v[:1] for k, v in base.items()}
    for i, color in enumerate(colors):
        assert loaded.predict({**one, "color": [color]})[0] == scores[i]
    reordered = loaded.predict({**base, "color": colors[::-1]})
    np.testing.assert_array_equal(reordered, scores[::-1])
    # an Enum / Categorical column with a different physical order maps the same way
    cat = pl.DataFrame({**base, "color": colors}).with_columns(
        pl.col("color").cast(pl.Enum(["purple", "red", "green", "blue"]))
    )
    np.testing.assert_array_equal(loaded.predict(cat), scores)
    codes = encode_features({"color": colors}, ["color"], loaded.version.categories)
    np.testing.assert_array_equal(codes[:, 0], [2, 1, 0, np.nan, np.nan])


def test_reference_statistics_support_drift_checks(world):
    store, _, training_set, result, _ = world
    mv = result.register("churn")
    profile = mv.reference_profile()
    assert profile.features == ("x", "color", "visits", "amount", "score")
    valid = training_set.filter(pl.col("event_timestamp") >= result.window["cutoff"])
    assert profile.n_rows == valid.height
    assert profile.columns["color"].kind == "categorical"
    current = valid.select("x", "color", "visits", "amount").with_columns(
        score=pl.Series(result.predict(valid))
    )
    report = drift.compare(profile, current)
    assert not report.dataset_drift
    shifted = drift.compare(profile, current.with_columns(pl.col("x") + 3))
    assert shifted.drifted_features == ["x"]


# ------------------------------------------------------------------------------ skew guard


def test_a_copied_feature_repo_still_loads_its_models(world, tmp_path):
    import shutil

    store, _, training_set, result, _ = world
    result.register("churn")
    copy = shutil.copytree(store.repo_path, tmp_path / "elsewhere")
    shutil.rmtree(store.repo_path)  # nothing may point back at the original
    loaded = ModelRegistry(fk.FeatureStore(copy)).load("churn")
    np.testing.assert_array_equal(loaded.predict(training_set), result.predict(training_set))


def test_load_fails_when_a_feature_view_version_is_gone(world):
    store, _, _, result, (users, activity) = world
    result.register("churn")
    user, profile, act = _definitions(users, activity)
    v2 = replace(act, version=2, ttl=timedelta(days=30))
    store.apply([v2], objects_to_delete=[act])
    with pytest.raises(ModelLoadError) as err:
        ModelRegistry(store).load("churn")
    message = str(err.value)
    assert "cannot load model 'churn@v1'" in message
    assert "'activity@v1' is no longer applied" in message
    assert "applied versions of 'activity': [2]" in message
    assert "['activity@v1:visits']" in message and "retrain on activity@v2" in message
    assert len(message.splitlines()) == 2  # one problem: only the changed view is named
    with pytest.raises(ModelLoadError, match="activity@v1"):
        predict_batch(store, "churn", world[1])
    # the metadata is still readable, and the guard can be skipped on purpose
    assert ModelRegistry(store).get("churn").version == 1
    assert ModelRegistry(store).load("churn", check_views=False).version.version == 1


def test_load_fails_when_a_feature_view_is_deleted(world):
    store, _, _, result, (users, activity) = world
    result.register("churn")
    _, _, act = _definitions(users, activity)
    store.apply([], objects_to_delete=[act])
    with pytest.raises(ModelLoadError, match="feature view 'activity' no longer exists"):
        ModelRegistry(store).load("churn")


def test_load_fails_when_a_view_version_is_redefined_with_other_logic(world):
    store, _, _, result, (users, activity) = world
    result.register("churn")
    user, profile, act = _definitions(users, activity)
    store.apply([], objects_to_delete=[profile])
    _, redefined, _ = _definitions(users, activity, ttl=timedelta(days=1))  # same version 1
    store.apply([redefined])
    with pytest.raises(ModelLoadError) as err:
        ModelRegistry(store).load("churn")
    assert "feature view 'profile@v1' changed since training (ttl: none -> 1d)" in str(err.value)
    assert "retrain" in str(err.value)
    # restoring the original definition makes the model loadable again
    store.apply([], objects_to_delete=[redefined])
    store.apply([profile])
    assert ModelRegistry(store).load("churn").version.ref == "churn@v1"


# ---------------------------------------------------------------------------- batch scoring


def test_predict_batch_scores_from_offline_features_and_writes_parquet(world, tmp_path):
    store, rows, training_set, result, _ = world
    result.register("churn")
    out_path = tmp_path / "scores" / "churn.parquet"
    scored = predict_batch(store, "churn", rows, output=out_path)
    assert scored.columns == [*rows.columns, "score", "model_version"]
    assert_frame_equal(scored.drop("score", "model_version"), rows)
    np.testing.assert_array_equal(scored["score"].to_numpy(), result.predict(training_set))
    assert scored["model_version"].unique().to_list() == [1]
    assert_frame_equal(pl.read_parquet(out_path), scored)
    assert [p.name for p in out_path.parent.iterdir()] == ["churn.parquet"]  # no temp left
    # a loaded model works as well, and scoring "as of now" needs no timestamp column
    loaded = ModelRegistry(store).load("churn")
    now = predict_batch(store, loaded, rows.drop("event_timestamp"), as_of=T0 + timedelta(1000))
    assert now.height == rows.height and now["score"].is_not_null().all()
    with pytest.raises(ModelInputError, match=r"lacks column\(s\) \['amount'\]"):
        predict_batch(store, loaded, rows.drop("amount"))


def test_predict_batch_to_online_serves_precomputed_scores(world):
    store, rows, _, result, _ = world
    result.register("churn")
    scored = predict_batch(store, "churn", rows, to_online="churn_scores")
    view = store.get_feature_view("churn_scores")
    assert view.join_keys == ("user_id",) and view.feature_names == ("score", "model_version")
    latest = scored.sort("event_timestamp").group_by("user_id").last().sort("user_id")
    online = store.get_online_features(
        ["churn_scores:score", "churn_scores:model_version"],
        latest.select("user_id"),
        now=T0 + timedelta(days=365),
    )
    assert online["churn_scores__status"].unique().to_list() == ["PRESENT"]
    np.testing.assert_array_equal(online["score"].to_numpy(), latest["score"].to_numpy())
    assert online["model_version"].unique().to_list() == [1]

    # a second model version re-scores later rows; the newer event wins online
    result.register("churn")
    later = rows.with_columns(pl.col("event_timestamp") + timedelta(days=400))
    predict_batch(store, "churn", later.head(50), to_online="churn_scores")
    users = later.head(50)["user_id"].unique().sort()
    again = store.get_online_features(
        ["churn_scores:model_version"], {"user_id": users.to_list()}, now=T0 + timedelta(800)
    )
    assert again["model_version"].unique().to_list() == [2]


def test_on_demand_features_train_score_and_guard_their_source_views(tmp_path):
    users, activity, rows = _world(n_rows=2000)
    store = fk.FeatureStore(tmp_path / "repo")
    user, profile, act = _definitions(users, activity)
    per_visit = fk.OnDemandFeatureView(
        name="per_visit",
        sources=["activity:visits"],
        request_schema=[fk.Field("amount", pl.Float64)],
        features={"amount_per_visit": pl.col("amount") / (pl.col("visits") + 1)},
    )
    store.apply([user, profile, act, per_visit])
    features = ["profile:x", "per_visit:amount_per_visit"]
    training_set = store.get_historical_features(rows, features)
    result = train(store, training_set, label="label", features=features, num_boost_round=10)
    assert list(result.view_logic) == ["profile@v1", "per_visit@v1", "activity@v1"]
    result.register("churn")
    # batch scoring computes the on-demand feature from the request field, as training did
    scored = predict_batch(store, "churn", rows)
    np.testing.assert_array_equal(scored["score"].to_numpy(), result.predict(training_set))
    with pytest.raises(ModelInputError, match=r"request fields \['amount'\]"):
        predict_batch(store, "churn", rows.drop("amount"))
    # the on-demand view is unchanged, but the view it reads was redefined under v1
    store.apply([], objects_to_delete=[per_visit, act])
    store.apply([replace(act, ttl=timedelta(hours=1)), per_visit])
    with pytest.raises(ModelLoadError) as err:
        ModelRegistry(store).load("churn")
    assert "'activity@v1' changed since training (ttl: none -> 1h)" in str(err.value)
