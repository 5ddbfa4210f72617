"""Definitions are values: validated without I/O, round-tripped through the registry's JSON."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fskit as fk
from fskit._utils.dtypes import dtype_from_str, dtype_to_str
from fskit.definitions import Source, format_timedelta

USER = fk.Entity("user", join_keys=["user_id"])
FRAME = pl.DataFrame(
    {
        "user_id": [1, 2],
        "event_timestamp": [datetime(2026, 1, 1), datetime(2026, 1, 2)],
        "clicks": [3, 4],
        "spend": [1.5, 2.5],
    }
)


def _view(**overrides):
    kwargs = {
        "name": "user_stats",
        "entities": [USER],
        "source": fk.ParquetSource("/data/user_stats/*.parquet", timestamp_field="ts"),
        "schema": [fk.Field("clicks", pl.Int64), fk.Field("spend", pl.Float64)],
        "ttl": timedelta(days=2),
    }
    return fk.FeatureView(**{**kwargs, **overrides})


# ------------------------------------------------------------------------------- dtypes

UNITS = ["ns", "us", "ms"]
ZONES = [None, "UTC", "Europe/Amsterdam", "America/New_York", "Asia/Kolkata"]
SIMPLE = [
    pl.Boolean(),
    pl.Int8(),
    pl.Int16(),
    pl.Int32(),
    pl.Int64(),
    pl.UInt8(),
    pl.UInt16(),
    pl.UInt32(),
    pl.UInt64(),
    pl.Float32(),
    pl.Float64(),
    pl.String(),
    pl.Binary(),
    pl.Date(),
    pl.Time(),
    pl.Categorical(),
    pl.Null(),
]
leaf_dtypes = st.one_of(
    st.sampled_from(SIMPLE),
    st.builds(pl.Datetime, st.sampled_from(UNITS), st.sampled_from(ZONES)),
    st.builds(pl.Duration, st.sampled_from(UNITS)),
)
dtypes = st.recursive(leaf_dtypes, lambda inner: st.builds(pl.List, inner), max_leaves=4)


@settings(max_examples=150, deadline=None)
@given(dtypes)
def test_every_supported_dtype_survives_the_registry_string(dtype):
    text = dtype_to_str(dtype)
    assert text == str(dtype)  # written the way polars prints it: readable in registry.json
    back = dtype_from_str(text)
    assert back == dtype
    assert dtype_to_str(back) == text  # strict: Datetime('us') == Datetime('us', 'UTC') is lax

    field = fk.Field("x", dtype, description="d")
    config = json.loads(json.dumps(field.to_config()))
    assert fk.Field.from_config(config) == field
    assert dtype_to_str(fk.Field.from_config(config).dtype) == text


def test_dtype_classes_are_normalized_to_instances():
    assert fk.Field("x", pl.Int64).dtype == pl.Int64()
    assert isinstance(fk.Field("x", pl.Datetime).dtype, pl.Datetime)
    assert dtype_to_str(pl.Datetime) == "Datetime(time_unit='us', time_zone=None)"
    assert dtype_from_str("Utf8") == pl.String()


@pytest.mark.parametrize(
    "dtype",
    [pl.Decimal(10, 2), pl.Struct({"a": pl.Int64}), pl.Array(pl.Int64, 2), pl.Enum(["a"])],
    ids=str,
)
def test_unsupported_dtypes_are_refused_naming_the_field(dtype):
    with pytest.raises(fk.DefinitionError, match=r"Field 'amount'.*not supported"):
        fk.Field("amount", dtype)


@pytest.mark.parametrize("bad", [int, "Int64", None])
def test_a_field_dtype_must_be_a_polars_dtype(bad):
    with pytest.raises(fk.DefinitionError, match=r"Field 'x'.*polars dtype such as pl.Int64"):
        fk.Field("x", bad)


@pytest.mark.parametrize(
    "text",
    ["Decimal(precision=10, scale=2)", "__import__('os').system('true')", "int64", "List()", ""],
)
def test_the_dtype_parser_refuses_what_it_did_not_write(text):
    with pytest.raises(ValueError, match="unknown dtype"):
        dtype_from_str(text)


# ----------------------------------------------------------------------------- entities


def test_entity_join_keys_default_to_its_name_and_are_a_tuple():
    assert fk.Entity("user").join_keys == ("user",)
    entity = fk.Entity("txn", join_keys=["user_id", "merchant_id"])
    assert entity.join_keys == ("user_id", "merchant_id")
    assert repr(entity) == "Entity('txn', join_keys=['user_id', 'merchant_id'])"


def test_entity_round_trips_through_config():
    entity = fk.Entity("user", join_keys=["user_id"], description="holder", tags={"pii": "no"})
    config = json.loads(json.dumps(entity.to_config()))
    assert fk.Entity.from_config(config) == entity


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"join_keys": "user_id"}, r"join_keys must be a list.*join_keys=\['user_id'\]"),
        ({"join_keys": ["a", "a"]}, r"join_keys has duplicates"),
        ({"join_keys": ["user id"]}, r"join_keys must be an identifier.*'user id'"),
        ({"tags": {"a": 1}}, r"tags must be a dict of str to str"),
        ({"description": 3}, r"description must be a string, got 3"),
    ],
)
def test_bad_entities_name_the_entity_and_the_field(kwargs, words):
    with pytest.raises(fk.DefinitionError, match=rf"Entity 'user': {words}"):
        fk.Entity("user", **kwargs)


def test_entity_name_must_be_an_identifier():
    with pytest.raises(fk.DefinitionError, match=r"Entity: name must be an identifier.*'2user'"):
        fk.Entity("2user")


def test_definitions_are_frozen_hashable_values():
    with pytest.raises(dataclasses.FrozenInstanceError):
        USER.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        _view().ttl = None  # type: ignore[misc]
    tagged = fk.Entity("user", join_keys=["user_id"], tags={"team": "risk"})
    assert {tagged, fk.Entity("user", join_keys=["user_id"], tags={"team": "risk"})} == {tagged}
    assert tagged != fk.Entity("user", join_keys=["user_id"], tags={"team": "ops"})
    assert len({_view(), _view(), _view(version=2)}) == 2


# ------------------------------------------------------------------------------ sources


def test_bare_frames_and_paths_become_sources():
    assert isinstance(_view(source=FRAME).source, fk.DataFrameSource)
    lazy = _view(source=FRAME.lazy()).source
    assert isinstance(lazy, fk.DataFrameSource) and isinstance(lazy.frame, pl.LazyFrame)
    csv = _view(source="data/stats.csv").source
    assert isinstance(csv, fk.CSVSource) and csv.path == "data/stats.csv"
    glob = _view(source="data/*.parquet").source
    assert isinstance(glob, fk.ParquetSource) and glob.path == "data/*.parquet"
    assert _view(source=fk.ParquetSource(Path("/a/b.parquet"))).source.path == "/a/b.parquet"


def test_pandas_frames_are_converted_to_polars():
    source = fk.DataFrameSource(FRAME.to_pandas())
    assert isinstance(source.frame, pl.DataFrame)
    assert source.frame["clicks"].to_list() == [3, 4]
    assert isinstance(_view(source=pd.DataFrame({"a": [1]})).source, fk.DataFrameSource)


def test_dataframe_sources_over_different_frames_are_not_equal():
    other = FRAME.with_columns(pl.col("clicks") * 100)
    assert fk.DataFrameSource(FRAME) == fk.DataFrameSource(FRAME)
    assert fk.DataFrameSource(FRAME) != fk.DataFrameSource(other)
    assert _view(source=FRAME, schema=None) != _view(source=other, schema=None)
    assert "DataFrameSource((2, 4)" in repr(fk.DataFrameSource(FRAME))


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: fk.ParquetSource(""), r"ParquetSource: path must be a non-empty path"),
        (lambda: fk.CSVSource(3), r"CSVSource: path must be a non-empty path or glob, got 3"),
        (
            lambda: fk.ParquetSource(
                "a.parquet", timestamp_field="ts", created_timestamp_field="ts"
            ),
            r"created_timestamp_field must differ from timestamp_field \(both 'ts'\)",
        ),
        (
            lambda: fk.ParquetSource("a.parquet", timestamp_field="event time"),
            r"ParquetSource: timestamp_field must be an identifier.*'event time'",
        ),
        (lambda: fk.DataFrameSource([1, 2]), r"frame must be a polars DataFrame.*got list"),
        (lambda: _view(source=42), r"FeatureView 'user_stats': source must be a ParquetSource"),
    ],
)
def test_bad_sources_are_refused(build, words):
    with pytest.raises(fk.DefinitionError, match=words):
        build()


def test_source_config_round_trip_and_unknown_type():
    source = fk.CSVSource("/d/s.csv", timestamp_field="ts", created_timestamp_field="created")
    assert Source.from_config(json.loads(json.dumps(source.to_config()))) == source
    with pytest.raises(fk.DefinitionError, match=r"source type 'bigquery'.*\['csv', 'parquet'\]"):
        Source.from_config({"type": "bigquery", "path": "x", "timestamp_field": "ts"})
    with pytest.raises(fk.DefinitionError, match="persisted by FeatureStore.apply"):
        fk.DataFrameSource(FRAME).to_config()


# ------------------------------------------------------------------------- feature views


def test_feature_view_derived_properties():
    txn = fk.Entity("merchant", join_keys=["merchant_id"])
    both = fk.Entity("pair", join_keys=["user_id", "merchant_id"])
    view = _view(entities=[USER, txn, both], version=3)
    assert view.ref == "user_stats@v3"
    assert view.join_keys == ("user_id", "merchant_id")  # in order, without repeats
    assert view.feature_names == ("clicks", "spend")
    assert isinstance(view.entities, tuple) and isinstance(view.schema, tuple)
    assert _view(entities=USER).entities == (USER,)  # one entity needs no list


def test_feature_names_need_a_known_schema():
    with pytest.raises(fk.DefinitionError, match=r"'user_stats': schema is not known yet; apply"):
        _ = _view(schema=None).feature_names


def test_getitem_gives_a_reference_pinned_to_the_version():
    ref = _view(version=2)["spend"]
    assert ref == fk.FeatureRef("user_stats", "spend", 2)
    assert str(ref) == "user_stats@v2:spend"
    # before the schema is inferred, any name is accepted; apply checks it later
    assert _view(schema=None)["anything"] == fk.FeatureRef("user_stats", "anything", 1)
    with pytest.raises(fk.FeatureRefError, match=r"'user_stats@v1' has no feature 'cliks'.*clicks"):
        _view()["cliks"]
    with pytest.raises(KeyError):  # FeatureRefError is a KeyError, as dict users expect
        _view()["cliks"]


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"ttl": timedelta(0)}, r"ttl must be positive, got datetime.timedelta\(0\); use None"),
        ({"ttl": timedelta(seconds=-5)}, r"ttl must be positive.*use None for no limit"),
        ({"ttl": 3600}, r"ttl must be a datetime.timedelta or None, got 3600"),
        ({"freshness_sla": timedelta(0)}, r"freshness_sla must be positive"),
        ({"version": 0}, r"version must be an int >= 1, got 0"),
        ({"version": True}, r"version must be an int >= 1, got True"),
        ({"entities": []}, r"entities must be a non-empty list of Entity"),
        ({"entities": ["user"]}, r"entities must be a non-empty list of Entity"),
        ({"entities": [USER, USER]}, r"entities has duplicates: \['user', 'user'\]"),
        ({"online": "yes"}, r"online must be True or False, got 'yes'"),
        ({"tags": {"a": None}}, r"tags must be a dict of str to str"),
        ({"owner": None}, r"owner must be a string, got None"),
        (
            {"schema": [fk.Field("clicks", pl.Int64), fk.Field("clicks", pl.Int32)]},
            r"schema field 'clicks' appears twice",
        ),
        (
            {"schema": [fk.Field("user_id", pl.Int64)]},
            r"schema field 'user_id' is a join key or timestamp column",
        ),
        (
            {"schema": [fk.Field("ts", pl.Datetime)]},
            r"schema field 'ts' is a join key or timestamp",
        ),
        ({"schema": []}, r"schema is empty; give fields or None to infer"),
        ({"schema": ["clicks"]}, r"schema must be a list of fk.Field"),
        (
            {"source": fk.ParquetSource("a.parquet", timestamp_field="user_id")},
            r"join keys \['user_id'\] and timestamp fields must be distinct columns",
        ),
    ],
)
def test_bad_feature_views_name_the_view_and_the_field(overrides, words):
    with pytest.raises(fk.DefinitionError, match=rf"FeatureView 'user_stats': {words}"):
        _view(**overrides)


def test_feature_view_name_must_be_an_identifier():
    with pytest.raises(fk.DefinitionError, match=r"FeatureView: name must be an identifier.*'a-b'"):
        _view(name="a-b")


def test_none_means_no_ttl():
    view = _view(ttl=None)
    assert view.ttl is None
    assert "ttl=none" in repr(view)


def test_feature_view_round_trips_through_config():
    view = _view(
        version=2,
        online=False,
        description="clicks",
        owner="ana",
        tags={"team": "growth"},
        freshness_sla=timedelta(hours=1),
        source=fk.ParquetSource("/d/*.parquet", timestamp_field="ts", created_timestamp_field="c"),
    )
    config = json.loads(json.dumps(view.to_config()))
    assert config["ttl_seconds"] == 2 * 86400
    assert config["schema"][1] == {"name": "spend", "dtype": "Float64", "description": ""}
    assert fk.FeatureView.from_config(config, {"user": USER}) == view


def test_logic_excludes_metadata_and_field_descriptions():
    base = _view()
    meta = _view(
        description="x",
        owner="o",
        tags={"a": "b"},
        online=False,
        freshness_sla=timedelta(minutes=5),
        schema=[fk.Field("clicks", pl.Int64, description="n"), fk.Field("spend", pl.Float64)],
    )
    assert base._logic() == meta._logic()
    for logic_change in (
        {"ttl": timedelta(days=3)},
        {"schema": [fk.Field("clicks", pl.Int32), fk.Field("spend", pl.Float64)]},
        {"source": fk.ParquetSource("/data/other/*.parquet", timestamp_field="ts")},
        {"source": fk.ParquetSource("/data/user_stats/*.parquet", timestamp_field="t2")},
        {"entities": [fk.Entity("person", join_keys=["user_id"])]},
    ):
        assert _view(**logic_change)._logic() != base._logic(), logic_change


# ------------------------------------------------------------------------ feature refs

idents = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)


@settings(max_examples=100, deadline=None)
@given(idents, idents, st.none() | st.integers(1, 10**6))
def test_feature_refs_round_trip_through_their_string(view, feature, version):
    ref = fk.FeatureRef(view, feature, version)
    assert fk.FeatureRef.parse(str(ref)) == ref
    assert fk.FeatureRef.parse(ref) is ref


@pytest.mark.parametrize(
    "text", ["user_stats", "user_stats:", ":x", "user_stats@v0:x", "user stats:x", "a:b:c", "v@2:x"]
)
def test_malformed_refs_say_what_is_expected(text):
    with pytest.raises(fk.FeatureRefError, match=r"is malformed: expected 'view:feature'"):
        fk.FeatureRef.parse(text)


def test_a_ref_must_be_a_string_or_a_feature_ref():
    with pytest.raises(fk.FeatureRefError, match=r"must be a string like 'view:feature'.*got 3"):
        fk.FeatureRef.parse(3)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ notebook display


def test_reprs_show_what_a_notebook_user_needs():
    view = _view(description="<b>bold</b> & co", version=2)
    text = repr(view)
    assert "'user_stats@v2'" in text and "entities=['user']" in text
    assert "features=2" in text and "ttl=2d" in text
    assert repr(_view(schema=None)).count("features=?") == 1
    page = view._repr_html_()
    assert "user_stats@v2" in page
    for expected in ("clicks", "spend", "Int64", "Float64", "user_id", "2d", "ParquetSource"):
        assert expected in page, expected
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt; &amp; co" in page
    assert "inferred at apply" in _view(schema=None)._repr_html_()
    assert repr(fk.Field("x", pl.Float64)) == "Field('x', Float64)"


def test_format_timedelta():
    assert format_timedelta(None) == "none"
    assert format_timedelta(timedelta(days=30)) == "30d"
    assert format_timedelta(timedelta(hours=36)) == "36h"
    assert format_timedelta(timedelta(minutes=90)) == "90m"
    assert format_timedelta(timedelta(seconds=61)) == "61s"
    assert format_timedelta(timedelta(milliseconds=1500)) == "0:00:01.500000"


# ------------------------------------------------------------------------------- layering


def test_core_use_imports_no_jupyter_module(tmp_path):
    """Define, apply, display and join without pulling in any notebook machinery."""
    code = f"""
import sys
from datetime import datetime
import polars as pl
import fskit as fk
user = fk.Entity("user", join_keys=["user_id"])
frame = pl.DataFrame({{"user_id": [1], "event_timestamp": [datetime(2026, 1, 1)], "x": [1]}})
view = fk.FeatureView(name="v", entities=[user], source=frame)
store = fk.FeatureStore({str(tmp_path / "repo")!r})
store.apply([user, view])
store._repr_html_(); view._repr_html_(); store.plan([user, view])._repr_html_(); store.describe()
store.get_historical_features(frame.select("user_id", "event_timestamp"), ["v:x"])
roots = {{"IPython", "ipywidgets", "ipykernel", "jupyter_client", "jupyter_core", "traitlets",
         "notebook", "jupyterlab", "comm", "anywidget", "widgets"}}
print(",".join(sorted({{m.split(".")[0] for m in sys.modules}} & roots)))
print("fskit.widgets" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines == ["", "False"], f"the core imported notebook modules: {lines}"
