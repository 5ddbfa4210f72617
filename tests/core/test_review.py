"""The design review reads the repo: each gap it reports is real, and fixing it clears it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

import fskit as fk
from fskit import datasets
from fskit.review import design_review

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _status(report, item):
    return report.items.filter(pl.col("item") == item)["status"].item()


def test_an_empty_repo_fails_the_basics(tmp_path):
    report = design_review(fk.FeatureStore(tmp_path), now=NOW)
    assert _status(report, "entities defined") == "fail"
    assert _status(report, "feature views documented and owned") == "fail"
    assert _status(report, "runs recorded") == "fail"
    assert report.score.endswith("checks pass")


def test_gaps_are_found_and_fixing_them_clears_them(tmp_path):
    store = fk.FeatureStore(tmp_path)
    definitions = datasets.fraud_definitions(SAMPLE)
    undocumented = dataclasses.replace(definitions[0], description="")
    store.apply([undocumented, *definitions[1:]])
    report = design_review(store, now=NOW)
    assert _status(report, "entities documented") == "warn"
    assert _status(report, "online views materialized") == "warn"
    assert (
        "user_profile@v1"
        in report.items.filter(pl.col("item") == "TTLs chosen deliberately")["detail"].item()
    )

    store.apply([definitions[0]])
    store.materialize(None, NOW - timedelta(days=3))  # older than user_stats' 1-day SLA
    report = design_review(store, now=NOW)
    assert _status(report, "entities documented") == "pass"
    assert _status(report, "online views materialized") == "pass"
    assert _status(report, "materialized within the SLA") == "warn"
    store.materialize_incremental(NOW)
    assert _status(design_review(store, now=NOW), "materialized within the SLA") == "pass"
    assert "<table>" in report._repr_html_()
