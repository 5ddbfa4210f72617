"""The registry: plan/apply, versions, persistence, other processes, sources and paths."""

from __future__ import annotations

import json
import runpy
import shutil
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import fskit as fk

T = datetime(2026, 1, 1)
DAY = timedelta(days=1)
USER = fk.Entity("user", join_keys=["user_id"])


def _stats(scale: int = 1) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": [1, 1, 2],
            "event_timestamp": [T, T + 2 * DAY, T + DAY],
            "created": [T + timedelta(hours=1), T + 2 * DAY, T + DAY],
            "purchases": [3 * scale, 5 * scale, 7 * scale],
            "avg_purchase_value": [10.0, 12.5, 8.0],
        }
    )


LABELS = pl.DataFrame(
    {
        "user_id": [1, 1, 2, 3],
        "event_timestamp": [T + DAY, T + 3 * DAY, T + 5 * DAY, T + DAY],
        "label": [0, 1, 0, 1],
    }
)


def _user_stats(source, **overrides) -> fk.FeatureView:
    kwargs = {
        "name": "user_stats",
        "entities": [USER],
        "source": source,
        "ttl": 2 * DAY,
        "schema": [fk.Field("purchases", pl.Int64), fk.Field("avg_purchase_value", pl.Float64)],
    }
    return fk.FeatureView(**{**kwargs, **overrides})


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and directory under ``root``."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def data(tmp_path) -> Path:
    """Parquet files outside the repo: stats.parquet and a same-schema copy, other.parquet."""
    folder = tmp_path / "data"
    folder.mkdir()
    frame = _stats().with_columns(ts2=pl.col("event_timestamp"))
    frame.write_parquet(folder / "stats.parquet")
    frame.write_parquet(folder / "other.parquet")
    return folder


@pytest.fixture
def store(tmp_path) -> fk.FeatureStore:
    return fk.FeatureStore(tmp_path / "repo")


# ------------------------------------------------------------------------ plan and apply


def test_the_repo_directory_is_created_if_missing(tmp_path, monkeypatch):
    store = fk.FeatureStore(tmp_path / "a" / "b" / "repo")
    assert store.repo_path.is_dir() and list(store.repo_path.iterdir()) == []
    monkeypatch.chdir(tmp_path)
    relative = fk.FeatureStore("feature_repo")
    assert relative.repo_path == tmp_path / "feature_repo" and relative.repo_path.is_dir()
    assert relative.list_feature_views() == [] and relative.list_entities() == []


def test_plan_shows_a_diff_and_writes_nothing(store, data):
    view = _user_stats(fk.ParquetSource(data / "stats.parquet"))
    before = _snapshot(store.repo_path)
    plan = store.plan([USER, view])
    assert _snapshot(store.repo_path) == before
    assert [(c.kind, c.name) for c in plan.added] == [
        ("entity", "user"),
        ("feature_view", "user_stats@v1"),
    ]
    assert plan.has_changes and not plan.refused and not plan.removed
    text = str(plan)
    assert text.startswith("Plan: 2 to add, 0 to update, 0 to remove, 0 refused")
    assert "+ entity user: join_keys ['user_id']" in text
    assert "+ feature_view user_stats@v1: 2 features" in text
    assert repr(plan) == text
    assert "user_stats@v1" in plan._repr_html_() and "<table>" in plan._repr_html_()
    assert store.list_feature_views() == []


def test_apply_persists_a_human_readable_registry(store, data):
    view = _user_stats(
        fk.ParquetSource(data / "stats.parquet", created_timestamp_field="created"),
        description="purchases so far",
        owner="risk-team",
        freshness_sla=timedelta(hours=6),
    )
    store.apply([USER, view])
    text = (store.repo_path / "registry.json").read_text()
    assert '\n  "entities": {' in text  # indented for people and diffs
    config = json.loads(text)
    assert config["format"] == "fskit-registry/1"
    assert config["entities"]["user"]["join_keys"] == ["user_id"]
    stored = config["feature_views"]["user_stats@v1"]
    assert stored["source"] == {
        "type": "parquet",
        "timestamp_field": "event_timestamp",
        "created_timestamp_field": "created",
        "path": str(data / "stats.parquet"),
    }
    assert [(f["name"], f["dtype"]) for f in stored["schema"]] == [
        ("purchases", "Int64"),
        ("avg_purchase_value", "Float64"),
    ]
    assert stored["ttl_seconds"] == 2 * 86400 and stored["freshness_sla_seconds"] == 6 * 3600
    assert (stored["owner"], stored["description"]) == ("risk-team", "purchases so far")

    reopened = fk.FeatureStore(store.repo_path)
    assert reopened.get_feature_view("user_stats") == view
    assert reopened.get_entity("user") == USER
    again = reopened.plan([USER, view])
    assert not again.has_changes
    assert [c.action for c in again.changes] == ["unchanged", "unchanged"]


def test_metadata_changes_are_applied_as_an_update(store, data):
    source = fk.ParquetSource(data / "stats.parquet")
    store.apply([USER, _user_stats(source)])
    changed = _user_stats(
        source,
        description="new words",
        owner="ana",
        tags={"tier": "gold"},
        online=False,
        freshness_sla=timedelta(minutes=30),
        schema=[
            fk.Field("purchases", pl.Int64, description="count"),
            fk.Field("avg_purchase_value", pl.Float64),
        ],
    )
    plan = store.plan([changed])
    (change,) = plan.changes
    assert (change.action, change.name) == ("update", "user_stats@v1")
    details = "; ".join(change.details)
    for words in ("description: '' -> 'new words'", "owner: '' -> 'ana'", "online: True -> False"):
        assert words in details
    assert "freshness_sla: none -> 30m" in details and "tier" in details and "count" in details
    assert str(plan).splitlines()[1].startswith("  ~ feature_view user_stats@v1: ")

    store.apply([changed])
    reopened = fk.FeatureStore(store.repo_path).get_feature_view("user_stats")
    assert reopened == changed
    assert fk.FeatureStore(store.repo_path).registry.versions("user_stats") == [1]


PERSON = fk.Entity("person", join_keys=["user_id"])
LOGIC_CHANGES = {  # name: (overrides given the data folder, words of the plan's detail)
    "ttl": (lambda d: {"ttl": 3 * DAY}, "ttl: 2d -> 3d"),
    "no ttl": (lambda d: {"ttl": None}, "ttl: 2d -> none"),
    "schema": (lambda d: {"schema": [fk.Field("purchases", pl.Int64)]}, "schema:"),
    "source path": (lambda d: {"source": fk.ParquetSource(d / "other.parquet")}, "other.parquet"),
    "source kind": (lambda d: {"source": _stats()}, "'type': 'parquet'"),
    "timestamp_field": (
        lambda d: {"source": fk.ParquetSource(d / "stats.parquet", timestamp_field="ts2")},
        "'timestamp_field': 'ts2'",
    ),
    "created_timestamp_field": (
        lambda d: {
            "source": fk.ParquetSource(d / "stats.parquet", created_timestamp_field="created")
        },
        "'created_timestamp_field': 'created'",
    ),
    "entities": (lambda d: {"entities": [PERSON]}, "entities: ['user'] -> ['person']"),
}


@pytest.mark.parametrize("change", LOGIC_CHANGES)
def test_a_logic_change_under_an_applied_version_is_refused(store, data, change):
    make_overrides, detail = LOGIC_CHANGES[change]
    overrides = make_overrides(data)
    source = fk.ParquetSource(data / "stats.parquet")
    extra = [overrides["entities"][0]] if "entities" in overrides else []
    store.apply([USER, _user_stats(source)])
    before = _snapshot(store.repo_path)

    changed = _user_stats(overrides.pop("source", source), **overrides)
    plan = store.plan([*extra, changed])
    (refused,) = plan.refused
    assert refused.name == "user_stats@v1"
    assert detail in "; ".join(refused.details)
    assert "set version=2" in str(plan)
    with pytest.raises(fk.VersionConflictError, match=r"nothing was written[\s\S]*version=2"):
        store.apply([*extra, changed])
    assert _snapshot(store.repo_path) == before

    store.apply([*extra, replace(changed, version=2)])
    assert store.registry.versions("user_stats") == [1, 2]
    assert store.get_feature_view("user_stats", 1) == _user_stats(source)


def test_the_bump_hint_names_the_next_free_version(store, data):
    source = fk.ParquetSource(data / "stats.parquet")
    store.apply([USER, _user_stats(source), _user_stats(source, version=2)])
    with pytest.raises(fk.VersionConflictError, match=r"user_stats@v1: ttl.*set version=3"):
        store.apply([_user_stats(source, ttl=DAY)])


def test_versions_coexist_and_refs_pick_the_right_one(store):
    v1 = _user_stats(_stats())
    v2 = _user_stats(_stats(scale=10), version=2, ttl=None)
    store.apply([USER, v1, v2])
    assert store.get_feature_view("user_stats").ref == "user_stats@v2"  # the latest
    assert store.get_feature_view("user_stats", 1) == store.registry.feature_views["user_stats@v1"]

    out = store.get_historical_features(
        LABELS,
        ["user_stats@v1:purchases", "user_stats:purchases", v1["avg_purchase_value"]],
        full_feature_names=True,
    )
    expected = LABELS.with_columns(
        user_stats_v1__purchases=pl.Series([3, 5, None, None]),
        user_stats__purchases=pl.Series([30, 50, 70, None]),  # v2 has no TTL
        user_stats_v1__avg_purchase_value=pl.Series([10.0, 12.5, None, None]),
    )
    assert_frame_equal(out, expected)

    pinned = store.get_historical_features(LABELS, ["user_stats@v2:avg_purchase_value"])
    assert_frame_equal(
        pinned, LABELS.with_columns(avg_purchase_value=pl.Series([10.0, 12.5, 8.0, None]))
    )
    whole = store.get_historical_features(LABELS, [store.get_feature_view("user_stats", 1)])
    assert whole.columns == [*LABELS.columns, "purchases", "avg_purchase_value"]
    exact = store.resolve_features(
        ["user_stats:purchases", v1["purchases"]], full_feature_names=True
    )
    assert exact == ["user_stats@v2:purchases", "user_stats@v1:purchases"]


def test_full_feature_names_resolve_name_clashes_between_views(store):
    other = fk.FeatureView(name="user_7d", entities=[USER], source=_stats(scale=2))
    store.apply([USER, _user_stats(_stats()), other])
    refs = ["user_stats:purchases", "user_7d:purchases"]
    with pytest.raises(
        fk.FeatureRefError, match=r"ambiguous.*'purchases'.*full_feature_names=True"
    ):
        store.get_historical_features(LABELS, refs)
    out = store.get_historical_features(LABELS, refs, full_feature_names=True)
    assert out.columns == [*LABELS.columns, "user_stats__purchases", "user_7d__purchases"]
    assert out["user_7d__purchases"].to_list() == [6, 10, 14, None]  # no TTL on user_7d


# -------------------------------------------------------------------------------- deleting


def test_objects_to_delete(store):
    store.apply([USER, _user_stats(_stats()), _user_stats(_stats(), version=2)])
    v1, v2 = store.get_feature_view("user_stats", 1), store.get_feature_view("user_stats", 2)

    plan = store.plan([], objects_to_delete=[v1])
    assert [(c.kind, c.name) for c in plan.removed] == [("feature_view", "user_stats@v1")]
    assert "- feature_view user_stats@v1" in str(plan)
    assert store.registry.versions("user_stats") == [1, 2]  # plan wrote nothing

    store.apply([], objects_to_delete=[v1])
    assert sorted(store.registry.feature_views) == ["user_stats@v2"]

    before = _snapshot(store.repo_path)
    with pytest.raises(fk.RegistryError, match=r"delete Entity 'user'.*\['user_stats@v2'\] still"):
        store.apply([], objects_to_delete=[USER])
    with pytest.raises(fk.RegistryError, match=r"cannot delete FeatureView 'user_stats@v1'.*not"):
        store.apply([], objects_to_delete=[v1])
    assert _snapshot(store.repo_path) == before

    store.apply([], objects_to_delete=[v2, USER])
    config = json.loads((store.repo_path / "registry.json").read_text())
    assert config["entities"] == {} and config["feature_views"] == {}
    with pytest.raises(fk.RegistryError, match=r"cannot delete Entity 'user': it is not applied"):
        store.plan([], objects_to_delete=[USER])


def test_an_entity_cannot_be_deleted_while_a_view_in_the_batch_uses_it(store):
    store.apply([USER])
    with pytest.raises(fk.RegistryError, match=r"Entity 'user'.*\['user_stats@v1'\] still use"):
        store.plan([_user_stats(_stats())], objects_to_delete=[USER])


# -------------------------------------------------------------------------------- entities


def test_entity_join_keys_cannot_change(store):
    store.apply([USER, _user_stats(_stats())])
    before = _snapshot(store.repo_path)
    renamed = fk.Entity("user", join_keys=["customer_id"])
    (refused,) = store.plan([renamed]).refused
    assert refused.kind == "entity" and "['user_id'] -> ['customer_id']" in refused.details[0]
    with pytest.raises(fk.RegistryError, match=r"join keys cannot change: define a new entity"):
        store.apply([renamed])
    assert _snapshot(store.repo_path) == before

    described = fk.Entity("user", join_keys=["user_id"], description="card holder")
    (change,) = store.plan([described]).changes
    assert change.action == "update" and "card holder" in change.details[0]
    store.apply([described])
    assert fk.FeatureStore(store.repo_path).get_entity("user").description == "card holder"


def test_a_view_must_use_applied_entities_with_the_same_join_keys(store):
    with pytest.raises(fk.RegistryError, match=r"'user_stats@v1' uses Entity 'user'.*not applied"):
        store.plan([_user_stats(_stats())])
    store.apply([USER])
    other_keys = fk.Entity("user", join_keys=["uid"])
    view = _user_stats(_stats().rename({"user_id": "uid"}), entities=[other_keys])
    with pytest.raises(
        fk.RegistryError, match=r"join_keys \['uid'\].*registry's has \['user_id'\]"
    ):
        store.plan([view])
    store.apply([_user_stats(_stats())])  # the applied entity need not be in the batch


# --------------------------------------------------------------------------------- sources


def test_frames_are_snapshotted_into_the_repo(store):
    lazy = _stats().lazy().filter(pl.col("user_id") == 1)
    explicit = fk.DataFrameSource(_stats(scale=3), created_timestamp_field="created")
    store.apply(
        [
            USER,
            _user_stats(lazy),
            _user_stats(_stats(), version=2),
            _user_stats(explicit, version=3),
        ]
    )
    stored = store.get_feature_view("user_stats", 1).source
    assert isinstance(stored, fk.ParquetSource)
    assert Path(stored.path) == store.repo_path / "offline" / "user_stats" / "v1.parquet"
    assert_frame_equal(pl.read_parquet(stored.path), lazy.collect())
    registry = json.loads((store.repo_path / "registry.json").read_text())
    assert registry["feature_views"]["user_stats@v3"]["source"] == {
        "type": "parquet",
        "timestamp_field": "event_timestamp",
        "created_timestamp_field": "created",
        "path": "offline/user_stats/v3.parquet",
    }
    out = store.get_historical_features(LABELS, ["user_stats@v3:purchases"])
    assert out["purchases"].to_list() == [9, 15, None, None]
    out = store.get_historical_features(LABELS, ["user_stats@v2:purchases"])
    assert out["purchases"].to_list() == [3, 5, None, None]


def test_a_changed_frame_under_the_same_version_shows_in_the_plan(store):
    store.apply([USER, _user_stats(_stats())])
    assert not store.plan([_user_stats(_stats())]).has_changes
    (change,) = store.plan([_user_stats(_stats(scale=2))]).changes
    assert change.action == "update" and "data: 3 rows -> 3 rows" in change.details[0]


def test_csv_source_with_parsed_dates(store, tmp_path):
    csv = tmp_path / "stats.csv"
    csv.write_text(
        "user_id,event_timestamp,created,amount,first_seen\n"
        "1,2026-01-01T10:00:00,2026-01-01T11:00:00,1.5,2025-12-01\n"
        "1,2026-01-01T10:00:00,2026-01-01T12:00:00,9.5,2025-12-01\n"
        "2,2026-01-02T10:00:00,2026-01-02T10:30:00,2.5,2025-11-30\n"
    )
    view = fk.FeatureView(
        name="csv_stats",
        entities=[USER],
        source=fk.CSVSource(csv, created_timestamp_field="created"),
    )
    store.apply([USER, view])
    applied = store.get_feature_view("csv_stats")
    assert [(f.name, f.dtype) for f in applied.schema] == [
        ("amount", pl.Float64()),
        ("first_seen", pl.Date()),
    ]
    out = store.get_historical_features(LABELS, ["csv_stats:amount", "csv_stats:first_seen"])
    dec1, nov30 = datetime(2025, 12, 1).date(), datetime(2025, 11, 30).date()
    expected = LABELS.with_columns(
        amount=pl.Series([9.5, 9.5, 2.5, None]),  # the later correction wins the tie
        first_seen=pl.Series([dec1, dec1, nov30, None], dtype=pl.Date),
    )
    assert_frame_equal(out, expected)


def test_parquet_glob_over_several_files(store, tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    for day in range(3):
        pl.DataFrame(
            {"user_id": [1, 2], "event_timestamp": [T + day * DAY] * 2, "x": [day, 10 + day]}
        ).write_parquet(parts / f"day={day}.parquet")
    view = fk.FeatureView(
        name="daily", entities=[USER], source=fk.ParquetSource(parts / "*.parquet")
    )
    store.apply([USER, view])
    entity_df = pl.DataFrame({"user_id": [1, 2, 1], "event_timestamp": [T, T + DAY, T + 9 * DAY]})
    out = store.get_historical_features(entity_df, ["daily:x"])
    assert_frame_equal(out, entity_df.with_columns(x=pl.Series([0, 11, 2])))
    # the glob is scanned at query time: a file added after apply is seen, no re-apply
    pl.DataFrame({"user_id": [1], "event_timestamp": [T + 3 * DAY], "x": [3]}).write_parquet(
        parts / "day=3.parquet"
    )
    later = store.get_historical_features(entity_df, ["daily:x"])
    assert later["x"].to_list() == [0, 11, 3]


def test_schema_inference_keeps_every_supported_dtype(store):
    frame = pl.DataFrame(
        {
            "user_id": [1],
            "event_timestamp": [T],
            "flag": [True],
            "small": pl.Series([1], dtype=pl.Int8),
            "unsigned": pl.Series([1], dtype=pl.UInt32),
            "ratio": pl.Series([0.5], dtype=pl.Float32),
            "name": ["a"],
            "kind": pl.Series(["x"], dtype=pl.Categorical),
            "blob": [b"\x00"],
            "day": [T.date()],
            "at": pl.Series([T], dtype=pl.Datetime("ms", "Europe/Amsterdam")),
            "clock": [T.time()],
            "age": [timedelta(hours=1)],
            "scores": [[1.0, 2.0]],
            "stamps": pl.Series([[T]], dtype=pl.List(pl.Datetime("ns", "UTC"))),
        }
    )
    store.apply([USER, fk.FeatureView(name="wide", entities=[USER], source=frame)])
    view = fk.FeatureStore(store.repo_path).get_feature_view("wide")
    features = frame.drop("user_id", "event_timestamp")
    assert {f.name: f.dtype for f in view.schema} == dict(features.schema)
    out = store.get_historical_features(frame.select("user_id", "event_timestamp"), ["wide:name"])
    assert out["name"].to_list() == ["a"]


def test_paths_are_stored_absolute_or_relative_to_the_repo(tmp_path, monkeypatch):
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "repo" / "data").mkdir(parents=True)
    _stats().write_parquet(work / "data" / "outside.parquet")
    _stats(scale=3).write_parquet(work / "repo" / "data" / "inside.parquet")
    monkeypatch.chdir(work)
    store = fk.FeatureStore("repo")
    outside = _user_stats("data/outside.parquet", name="outside")
    inside = _user_stats(fk.ParquetSource("repo/data/inside.parquet"), name="inside")
    frame = _user_stats(_stats(scale=5), name="framed")
    store.apply([USER, outside, inside, frame])
    features = ["outside:purchases", "inside:purchases", "framed:purchases"]
    built_here = store.get_historical_features(LABELS, features, full_feature_names=True)
    assert built_here.select(pl.exclude(LABELS.columns)).to_dict(as_series=False) == {
        "outside__purchases": [3, 5, None, None],
        "inside__purchases": [9, 15, None, None],
        "framed__purchases": [15, 25, None, None],
    }

    stored = json.loads((work / "repo" / "registry.json").read_text())["feature_views"]
    assert stored["outside@v1"]["source"]["path"] == str(work / "data" / "outside.parquet")
    assert stored["inside@v1"]["source"]["path"] == "data/inside.parquet"
    assert stored["framed@v1"]["source"]["path"] == "offline/framed/v1.parquet"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert_frame_equal(
        fk.FeatureStore(work / "repo").get_historical_features(
            LABELS, features, full_feature_names=True
        ),
        built_here,
    )
    # the repo can move: what lives inside it moves with it
    shutil.copytree(work / "repo", tmp_path / "moved")
    shutil.rmtree(work / "repo")
    moved = fk.FeatureStore(tmp_path / "moved")
    assert moved.get_feature_view("inside").source.path == str(
        tmp_path / "moved" / "data" / "inside.parquet"
    )
    assert_frame_equal(
        moved.get_historical_features(LABELS, features, full_feature_names=True), built_here
    )
    # a view read back from the registry re-plans as unchanged from any working directory
    assert not moved.plan([USER, *moved.list_feature_views()]).has_changes


# ------------------------------------------------------------------- failed apply is atomic


def test_a_failure_in_the_second_view_of_a_batch_writes_nothing(store, data):
    good = _user_stats(_stats(), name="good")  # a frame: apply would write its Parquet
    bad = _user_stats(
        fk.ParquetSource(data / "stats.parquet"),
        name="bad",
        schema=[fk.Field("purchases", pl.Float64)],
    )
    before = _snapshot(store.repo_path)
    assert before == {}
    with pytest.raises(fk.SchemaError, match=r"'bad@v1'.*'purchases' is declared Float64"):
        store.apply([USER, good, bad])
    assert _snapshot(store.repo_path) == before  # fresh repo: not even a lock file

    store.apply([USER, _user_stats(_stats(), name="first")])
    before = _snapshot(store.repo_path)
    with pytest.raises(fk.SchemaError, match="'bad@v1'"):
        store.apply([USER, good, bad])
    assert _snapshot(store.repo_path) == before
    refused_logic = _user_stats(_stats(), name="first", ttl=None)
    with pytest.raises(fk.VersionConflictError):
        store.apply([good, refused_logic])  # a valid view next to a refused one: nothing
    assert _snapshot(store.repo_path) == before
    assert sorted(store.registry.feature_views) == ["first@v1"]


# --------------------------------------------------------------------- other processes


DEFINITIONS = """
from datetime import timedelta
import polars as pl
import fskit as fk

DATA = {data!r}
user = fk.Entity("user", join_keys=["user_id"], description="card holder")
merchant = fk.Entity("merchant", join_keys=["merchant_id"])
stats_v1 = fk.FeatureView(
    name="user_stats", entities=[user], ttl=timedelta(days=2),
    source=fk.ParquetSource(DATA + "/stats.parquet", created_timestamp_field="created"),
    schema=[fk.Field("purchases", pl.Int64), fk.Field("avg_purchase_value", pl.Float64)],
    owner="risk", freshness_sla=timedelta(hours=1), tags={{"tier": "gold"}},
)
stats_v2 = fk.FeatureView(
    name="user_stats", version=2, entities=[user], source=DATA + "/other.parquet",
)
csv = fk.FeatureView(name="csv_stats", entities=[user], source=DATA + "/stats.csv")
DEFINITIONS = [user, merchant, stats_v1, stats_v2, csv]
"""

CHILD = """
import json, runpy
import polars as pl
import fskit as fk

store = fk.FeatureStore({repo!r})
labels = pl.read_parquet({labels!r})
views = {{v.ref: v.to_config() for v in store.list_feature_views()}}
entities = {{e.name: e.to_config() for e in store.list_entities()}}
store.get_historical_features(labels, {features!r}, full_feature_names=True).write_parquet(
    {out!r}
)
plan = store.plan(runpy.run_path({definitions!r})["DEFINITIONS"])
print(json.dumps({{"views": views, "entities": entities, "plan": str(plan)}}))
"""


def test_another_process_sees_exactly_the_same_definitions(tmp_path, data):
    _stats().write_csv(data / "stats.csv")
    (tmp_path / "definitions.py").write_text(DEFINITIONS.format(data=str(data)))
    store = fk.FeatureStore(tmp_path / "repo")
    store.apply(runpy.run_path(str(tmp_path / "definitions.py"))["DEFINITIONS"])
    features = ["user_stats@v1:purchases", "user_stats:avg_purchase_value", "csv_stats:purchases"]
    parent = store.get_historical_features(LABELS, features, full_feature_names=True)
    LABELS.write_parquet(tmp_path / "labels.parquet")

    code = CHILD.format(
        definitions=str(tmp_path / "definitions.py"),
        repo=str(tmp_path / "repo"),
        labels=str(tmp_path / "labels.parquet"),
        features=features,
        out=str(tmp_path / "child.parquet"),
    )
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=60
    )
    assert run.returncode == 0, run.stderr
    child = json.loads(run.stdout)

    views = {v.ref: v.to_config() for v in store.list_feature_views()}
    assert sorted(views) == ["csv_stats@v1", "user_stats@v1", "user_stats@v2"]
    assert child["views"] == json.loads(json.dumps(views))
    entities = {e.name: e.to_config() for e in store.list_entities()}
    assert child["entities"] == entities and set(entities) == {"merchant", "user"}
    assert child["plan"].startswith("Plan: 0 to add, 0 to update, 0 to remove, 0 refused, 5")
    assert_frame_equal(pl.read_parquet(tmp_path / "child.parquet"), parent)
    assert parent["user_stats_v1__purchases"].to_list() == [3, 5, None, None]


WRITER = """
import os, sys, time
import fskit as fk
repo, source, prefix, count, go = sys.argv[1:]
user = fk.Entity("user", join_keys=["user_id"])
store = fk.FeatureStore(repo)
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
for i in range(int(count)):
    view = fk.FeatureView(name=f"{prefix}_{i}", entities=[user], source=fk.ParquetSource(source))
    store.apply([user, view])
"""


def test_concurrent_applies_from_two_processes_keep_both(tmp_path, data):
    repo, go, count = tmp_path / "repo", tmp_path / "go", 8
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(repo),
                str(data / "stats.parquet"),
                p,
                str(count),
                str(go),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in ("left", "right")
    ]
    try:
        for w in writers:
            assert w.stdout.readline().strip() == "ready"
        go.touch()
        for w in writers:
            _, err = w.communicate(timeout=60)
            assert w.returncode == 0, err
    finally:
        for w in writers:
            if w.poll() is None:
                w.kill()
    config = json.loads((repo / "registry.json").read_text())
    expected = sorted(f"{p}_{i}@v1" for p in ("left", "right") for i in range(count))
    assert sorted(config["feature_views"]) == expected
    assert sorted(fk.FeatureStore(repo).registry.feature_views) == expected
    assert [p.name for p in repo.iterdir() if p.name.startswith(".")] == []  # no temp files


# ----------------------------------------------------------------------- notebook display


def test_describe_lists_one_row_per_feature(store):
    store.apply(
        [
            USER,
            _user_stats(
                _stats(), owner="ana", description="stats", freshness_sla=timedelta(hours=1)
            ),
            _user_stats(
                _stats(),
                version=2,
                ttl=None,
                online=False,
                schema=[fk.Field("purchases", pl.Int64, description="how many")],
            ),
        ]
    )
    expected = pl.DataFrame(
        {
            "feature_view": ["user_stats"] * 3,
            "version": [1, 1, 2],
            "feature": ["purchases", "avg_purchase_value", "purchases"],
            "dtype": ["Int64", "Float64", "Int64"],
            "join_keys": ["user_id"] * 3,
            "ttl": ["2d", "2d", "none"],
            "freshness_sla": ["1h", "1h", "none"],
            "online": [True, True, False],
            "owner": ["ana", "ana", ""],
            "description": ["stats", "stats", "how many"],
        }
    )
    assert_frame_equal(store.describe(), expected)
    assert fk.FeatureStore(store.repo_path / "empty").describe().height == 0


def test_store_reprs_name_the_repo_and_its_views(store):
    store.apply([USER, _user_stats(_stats(), owner="ana & bob")])
    text = repr(store)
    assert str(store.repo_path) in text and "['user_stats@v1']" in text and "entities=1" in text
    page = store._repr_html_()
    for expected in ("user_stats@v1", "user_id", "2d", "ana &amp; bob"):
        assert expected in page, expected
    assert "feature_views=1" in repr(store.registry)
    view = store.get_feature_view("user_stats")
    assert "user_stats@v1" in repr(view) and "purchases" in view._repr_html_()
