"""Errors follow one hierarchy and teach: object, field, bad value, fix — before any work."""

from __future__ import annotations

import builtins
import re
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

import fskit as fk
import fskit.errors as errors

T = datetime(2026, 1, 1)
USER = fk.Entity("user", join_keys=["user_id"])
STATS = pl.DataFrame(
    {
        "user_id": [1, 2],
        "event_timestamp": [T, T],
        "created": [T, T],
        "day": ["2026-01-01", "2026-01-02"],
        "purchases": [3, 4],
        "payload": pl.Series([{"a": 1}, {"a": 2}]),
    }
)
LABELS = pl.DataFrame({"user_id": [1, 2], "event_timestamp": [T, T + timedelta(days=1)]})


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


# ----------------------------------------------------------------------------- hierarchy


def _drawn_tree() -> list[tuple[str, str, str]]:
    """(class, parent, note) for every line of the tree drawn in fskit.errors' docstring."""
    lines = errors.__doc__.splitlines()
    root = next(line for line in lines if line.strip() == "FskitError")
    indent = len(root) - len(root.lstrip())
    rows, stack = [], ["FskitError"]
    for line in lines:
        m = re.match(r"^((?:│   |    )*)[├└]── (\w+)\s*(.*)$", line[indent:])
        if not m:
            continue
        depth = len(m.group(1)) // 4
        stack[depth + 1 :] = [m.group(2)]
        rows.append((m.group(2), stack[depth], m.group(3)))
    return rows


def test_the_hierarchy_is_the_one_drawn_in_the_docstring():
    tree = _drawn_tree()
    assert sorted(name for name, _, _ in tree) == sorted(set(errors.__all__) - {"FskitError"})
    for name, parent, note in tree:
        cls = getattr(errors, name)
        assert cls.__bases__[0] is getattr(errors, parent), name
        for builtin in re.findall(r"also an? (\w+)", note):
            assert issubclass(cls, getattr(builtins, builtin)), (name, builtin)


def test_every_error_is_an_fskit_error_and_the_common_ones_are_exported():
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.FskitError), name
    for name in ("DefinitionError", "SchemaError", "RegistryError", "VersionConflictError"):
        assert getattr(fk, name) is getattr(errors, name)
    assert issubclass(fk.SchemaError, ValueError) and issubclass(fk.FeatureRefError, KeyError)
    assert issubclass(errors.MissingDependencyError, ImportError)
    assert issubclass(errors.StoreUnavailableError, errors.OnlineStoreError)


def test_feature_ref_errors_read_plainly_although_they_are_key_errors():
    error = fk.FeatureRefError("unknown feature view 'x'")
    assert str(error) == "unknown feature view 'x'"  # KeyError would add quotes
    assert str(fk.FeatureRefError()) == ""


# ------------------------------------------------------------------ bad definitions at apply


@pytest.fixture
def store(tmp_path) -> fk.FeatureStore:
    store = fk.FeatureStore(tmp_path / "repo")
    store.apply([USER])
    return store


def _view(source=STATS, **overrides):
    return fk.FeatureView(
        **{
            "name": "stats",
            "entities": [USER],
            "source": source,
            "schema": [fk.Field("purchases", pl.Int64)],
            **overrides,
        }
    )


ACCOUNT = fk.Entity("account", join_keys=["account_id"])
BAD_BATCHES = {
    "missing timestamp column": (
        lambda d: [_view(fk.DataFrameSource(STATS, timestamp_field="ts"))],
        fk.SchemaError,
        r"'stats@v1': timestamp_field 'ts' is not a column of the source; the source has \[",
    ),
    "timestamp of the wrong type": (
        lambda d: [_view(fk.DataFrameSource(STATS, timestamp_field="day"))],
        fk.SchemaError,
        r"'stats@v1': timestamp_field 'day' must be a Datetime or Date column, got String; "
        r"parse it first",
    ),
    "missing created timestamp column": (
        lambda d: [_view(fk.DataFrameSource(STATS, created_timestamp_field="made"))],
        fk.SchemaError,
        r"'stats@v1': created_timestamp_field 'made' is not a column",
    ),
    "schema field absent": (
        lambda d: [_view(schema=[fk.Field("clicks", pl.Int64)])],
        fk.SchemaError,
        r"'stats@v1': schema field 'clicks' is not a column of the source",
    ),
    "schema field of the wrong dtype": (
        lambda d: [_view(schema=[fk.Field("purchases", pl.Float64)])],
        fk.SchemaError,
        r"'stats@v1': schema field 'purchases' is declared Float64 but the source column is "
        r"Int64; fix the Field's dtype or cast the source",
    ),
    "join key absent": (
        lambda d: [ACCOUNT, _view(entities=[ACCOUNT])],
        fk.SchemaError,
        r"'stats@v1': join key 'account_id' is not a column of the source",
    ),
    "uninferable column": (
        lambda d: [_view(schema=None)],
        fk.SchemaError,
        r"'stats@v1': cannot infer the schema: column 'payload' has dtype Struct.*cast the column "
        r"or declare schema=\[...\] without it",
    ),
    "no feature columns": (
        lambda d: [_view(STATS.select("user_id", "event_timestamp"), schema=None)],
        fk.SchemaError,
        r"'stats@v1': the source has no feature columns",
    ),
    "unreadable path": (
        lambda d: [_view(fk.ParquetSource(d / "missing.parquet"))],
        fk.SchemaError,
        r"'stats@v1': cannot read source '.*missing.parquet'",
    ),
    "empty glob": (
        lambda d: [_view(fk.ParquetSource(d / "nothing" / "*.parquet"))],
        fk.SchemaError,
        r"'stats@v1': cannot read source '.*\*.parquet'",
    ),
    "entity not applied": (
        lambda d: [_view(entities=[ACCOUNT])],
        fk.RegistryError,
        r"'stats@v1' uses Entity 'account', which is not applied; apply it in the same batch",
    ),
    "duplicate entity": (
        lambda d: [USER, fk.Entity("user", join_keys=["user_id"], description="x")],
        fk.RegistryError,
        r"Entity 'user' appears twice in the batch",
    ),
    "duplicate view": (
        lambda d: [_view(), _view(description="again")],
        fk.RegistryError,
        r"FeatureView 'stats@v1' appears twice in the batch",
    ),
    "not a definition": (
        lambda d: [_view(), "stats"],
        fk.RegistryError,
        r"objects must hold Entity, FeatureView and FeatureService objects, got str: 'stats'",
    ),
}


@pytest.mark.parametrize("case", BAD_BATCHES)
def test_a_bad_batch_raises_one_clear_error_and_writes_nothing(store, tmp_path, case):
    build, kind, words = BAD_BATCHES[case]
    good = fk.FeatureView(name="fine", entities=[USER], source=STATS.drop("payload"))
    before = _snapshot(store.repo_path)
    for batch in ([*build(tmp_path)], [good, *build(tmp_path)]):
        with pytest.raises(kind, match=words) as caught:
            store.plan(batch)
        assert isinstance(caught.value, fk.FskitError)
        with pytest.raises(kind, match=words):
            store.apply(batch)
        assert _snapshot(store.repo_path) == before
    assert sorted(store.registry.feature_views) == []


# ------------------------------------------------------------- training sets fail up front


@pytest.fixture
def built(tmp_path) -> fk.FeatureStore:
    """Two applied views, then their data removed: any scan would now fail loudly."""
    data = tmp_path / "stats.parquet"
    STATS.drop("payload", "day").write_parquet(data)
    store = fk.FeatureStore(tmp_path / "repo")
    weekly = fk.FeatureView(name="user_weekly", entities=[USER], source=fk.ParquetSource(data))
    store.apply([USER, _view(fk.ParquetSource(data), name="user_stats"), weekly])
    data.unlink()
    return store


BAD_REQUESTS = {
    "unknown view": (
        LABELS,
        ["user_stat:purchases"],
        fk.FeatureRefError,
        r"unknown feature view 'user_stat'.*did you mean 'user_stats'\?",
    ),
    "unknown feature": (
        LABELS,
        ["user_stats:purchase"],
        fk.FeatureRefError,
        r"feature view 'user_stats@v1' has no feature 'purchase'.*did you mean 'purchases'\?",
    ),
    "unknown version": (
        LABELS,
        ["user_stats@v3:purchases"],
        fk.FeatureRefError,
        r"'user_stats@v3:purchases': feature view 'user_stats' has no version 3; applied "
        r"versions: \[1\]",
    ),
    "malformed ref": (
        LABELS,
        ["user_stats.purchases"],
        fk.FeatureRefError,
        r"'user_stats.purchases' is malformed: expected 'view:feature'",
    ),
    "no features": (LABELS, [], fk.FeatureRefError, r"features is empty"),
    "asked twice": (
        LABELS,
        ["user_stats:purchases", "user_stats@v1:purchases"],
        fk.FeatureRefError,
        r"'user_stats@v1:purchases' is requested twice",
    ),
    "ambiguous names": (
        LABELS,
        ["user_stats:purchases", "user_weekly:purchases"],
        fk.FeatureRefError,
        r"ambiguous feature names.*'purchases'.*pass full_feature_names=True",
    ),
    "missing join key": (
        LABELS.rename({"user_id": "uid"}),
        ["user_stats:purchases"],
        fk.EntityFrameError,
        r"entity_df lacks join key 'user_id' needed by feature view 'user_stats@v1' "
        r"\(columns: \['uid', 'event_timestamp'\]\)",
    ),
    "missing timestamp column": (
        LABELS.rename({"event_timestamp": "ts"}),
        ["user_stats:purchases"],
        fk.EntityFrameError,
        r"entity_df has no timestamp column 'event_timestamp'.*pass event_timestamp_column=",
    ),
    "timestamp of the wrong type": (
        LABELS.with_columns(pl.col("event_timestamp").dt.to_string()),
        ["user_stats:purchases"],
        fk.EntityFrameError,
        r"column 'event_timestamp' must be Datetime or Date, got String; parse it first, e\.g\. "
        r"pl\.col\('event_timestamp'\)\.str\.to_datetime\(\)",
    ),
    "epoch numbers as timestamps": (
        LABELS.with_columns(pl.col("event_timestamp").dt.epoch("s")),
        ["user_stats:purchases"],
        fk.EntityFrameError,
        r"column 'event_timestamp' must be Datetime or Date, got Int64",
    ),
    "null timestamps": (
        LABELS.with_columns(pl.when(pl.col("user_id") == 1).then(pl.col("event_timestamp"))),
        ["user_stats:purchases"],
        fk.EntityFrameError,
        r"column 'event_timestamp' has 1 null timestamps",
    ),
    "column clash": (
        LABELS.with_columns(purchases=0),
        ["user_stats:purchases"],
        fk.EntityFrameError,
        r"already has columns named like the requested features \['purchases'\]; rename them "
        r"or pass full_feature_names=True",
    ),
    "reserved column": (
        LABELS.with_columns(__fskit_row=0),
        ["user_stats:purchases"],
        fk.EntityFrameError,
        r"uses the reserved column name '__fskit_row'",
    ),
    "not a frame": (
        [{"user_id": 1, "event_timestamp": T}],
        ["user_stats:purchases"],
        fk.EntityFrameError,
        r"entity_df must be a polars DataFrame or LazyFrame \(pandas accepted\), got list",
    ),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_get_historical_features_refuses_bad_requests_before_any_work(built, case):
    entity_df, features, kind, words = BAD_REQUESTS[case]
    with pytest.raises(kind, match=words) as caught:
        built.get_historical_features(entity_df, features)
    assert isinstance(caught.value, fk.FskitError)


def test_full_feature_names_lift_the_ambiguity(built, tmp_path):
    STATS.drop("payload", "day").write_parquet(tmp_path / "stats.parquet")
    refs = ["user_stats:purchases", "user_weekly:purchases"]
    out = built.get_historical_features(LABELS.lazy(), refs, full_feature_names=True)
    assert out.columns == [*LABELS.columns, "user_stats__purchases", "user_weekly__purchases"]
    assert out["user_weekly__purchases"].to_list() == [3, 4]
    by_date = LABELS.with_columns(pl.col("event_timestamp").dt.date())  # Date is a timestamp
    out = built.get_historical_features(by_date, refs, full_feature_names=True)
    assert out["event_timestamp"].dtype == pl.Date and out["user_stats__purchases"].len() == 2
    from_pandas = built.get_historical_features(LABELS.to_pandas(), refs, full_feature_names=True)
    assert from_pandas["user_stats__purchases"].to_list() == [3, 4]


def test_key_types_that_cannot_join_are_named(built, tmp_path):
    STATS.drop("payload", "day").write_parquet(tmp_path / "stats.parquet")
    entity_df = LABELS.with_columns(pl.col("user_id").cast(pl.String))
    with pytest.raises(
        fk.EntityFrameError,
        match=r"join key 'user_id' is String but feature view 'user_stats@v1' has it as Int64; "
        r"cast one of them",
    ):
        built.get_historical_features(entity_df, ["user_stats:purchases"])
    narrow = LABELS.with_columns(pl.col("user_id").cast(pl.Int16))  # integers of any width join
    assert built.get_historical_features(narrow, ["user_stats:purchases"]).height == 2


# ----------------------------------------------------------------------- registry lookups


def test_unknown_names_in_the_registry_suggest_the_close_one(built):
    with pytest.raises(fk.RegistryError, match=r"no feature view 'user_stat'.*'user_stats'\?"):
        built.get_feature_view("user_stat")
    with pytest.raises(fk.RegistryError, match=r"'user_stats' has no version 2; applied.*\[1\]"):
        built.get_feature_view("user_stats", 2)
    with pytest.raises(fk.RegistryError, match=r"no entity 'usr'.*did you mean 'user'\?"):
        built.get_entity("usr")


def test_a_broken_registry_file_is_reported_not_guessed(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "registry.json").write_text('{"format": "fskit-registry/1", "entities": {,}}')
    with pytest.raises(fk.RegistryError, match=r"registry.json is not valid JSON.*fix the file"):
        fk.FeatureStore(repo).list_feature_views()
    (repo / "registry.json").write_text('{"format": "feast/0"}')
    with pytest.raises(
        fk.RegistryError, match=r"unknown registry format 'feast/0', expected 'fskit-registry/1'"
    ):
        fk.FeatureStore(repo).list_entities()
    (repo / "registry.json").write_text(
        '{"format": "fskit-registry/1", "polars_version": "0.0.1", "entities": {}, '
        '"feature_views": {"score@v1": {"kind": "on_demand"}}}'
    )
    with pytest.raises(
        fk.RegistryError, match=r"written by polars 0\.0\.1.*install polars 0\.0\.1 or re-apply"
    ):
        fk.FeatureStore(repo).list_feature_views()
    before = _snapshot(repo)
    with pytest.raises(fk.RegistryError):
        fk.FeatureStore(repo).apply([USER])
    assert _snapshot(repo) == before


def test_errors_at_definition_time_are_definition_errors():
    with pytest.raises(fk.DefinitionError, match=r"FeatureView 'stats': ttl must be positive"):
        _view(ttl=timedelta(0))
    with pytest.raises(ValueError):  # also a ValueError, as Python users expect
        _view(ttl=timedelta(hours=-1))
    ok = _view(STATS.with_columns(pl.col("event_timestamp").dt.date()), ttl=timedelta(days=1))
    assert ok.ttl == timedelta(days=1) and date(2026, 1, 1) in ok.source.frame["event_timestamp"]
