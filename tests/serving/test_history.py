"""``fk.serving.history``: every deployment change, read back from the events log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import fskit as fk
from fskit.serving import (
    DeploymentError,
    ServingError,
    deploy,
    history,
    promote,
    rollback,
    status,
)
from fskit.serving._state import HISTORY_SCHEMA


def test_history_has_one_row_per_change_with_the_state_it_produced(store, repo):
    start = datetime.now(UTC)
    deploy(store, "history", 2, share=0.25)
    promote(store, "history")
    rollback(store, "history")
    deploy(store, "history", 2, shadow=True)
    rollback(store, "history")
    deploy(store, "history", 2, as_stable=True)
    with pytest.raises(DeploymentError):  # refused: no row
        promote(store, "history", version=2)

    events = history(store, "history")
    expected = pl.DataFrame(
        {
            "action": [
                "deploy v1 as stable",  # build_repo
                "deploy v2 as canary on 25%",
                "promote v2",
                "rollback v2 to v1",
                "deploy v2 as shadow on 100%",
                "rollback canary v2",
                "deploy v2 as stable, replacing v1",
            ],
            "stable": [1, 1, 2, 1, 1, 1, 2],
            "canary": [None, 2, None, None, 2, None, None],
            "canary_share": [0.0, 0.25, 0.0, 0.0, 1.0, 0.0, 0.0],
            "shadow": [False, False, False, False, True, False, False],
            "previous_stable": [None, None, 1, None, None, None, 1],
            "history": [[1], [1], [1, 2], [1], [1], [1], [1, 2]],
            "route_by": [[]] * 7,
        },
        schema={k: v for k, v in HISTORY_SCHEMA.items() if k != "time"},
    )
    assert events.schema == HISTORY_SCHEMA
    assert_frame_equal(events.drop("time"), expected)

    times = events["time"]
    assert times.is_sorted()
    assert times[1] >= start - timedelta(milliseconds=1)  # ms in the file
    assert times[-1] <= datetime.now(UTC)
    final = status(store, "history")
    assert times[-1] == datetime.fromisoformat(final.updated_at)
    assert (events["stable"][-1], events["history"][-1].to_list()) == (2, list(final.history))


def test_history_of_a_model_never_deployed_is_empty_with_the_same_columns(store, repo):
    events = history(store, "nobody")
    assert_frame_equal(events, pl.DataFrame(schema=HISTORY_SCHEMA))
    assert not (repo / "serving" / "nobody.events.jsonl").exists()  # reading created nothing
    assert history(repo, "nobody").schema == HISTORY_SCHEMA  # a repo path works too


def test_history_skips_an_append_in_progress_and_names_a_corrupt_line(repo, tmp_path):
    line = (repo / "serving" / "fraud.events.jsonl").read_text().splitlines()[0]
    events = tmp_path / "serving" / "copy.events.jsonl"
    events.parent.mkdir()
    store = fk.FeatureStore(tmp_path)

    events.write_text(line + "\n" + line[:25])  # a writer is half-way through line 2
    assert history(store, "copy")["action"].to_list() == ["deploy v1 as stable"]

    events.write_text(line + "\n{not json\n" + line + "\n")
    with pytest.raises(ServingError, match=r"line 2 of the deployment history .*copy\.events"):
        history(store, "copy")
