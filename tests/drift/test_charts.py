"""fskit.charts: drift charts build from aggregates and export offline (PNG, SVG, HTML)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import altair as alt
import numpy as np
import polars as pl
import pytest

from fskit import charts, drift
from fskit.errors import DefinitionError, FskitError


@pytest.fixture(scope="module")
def report() -> drift.DriftReport:
    rng = np.random.default_rng(0)
    n = 2000
    ref = pl.DataFrame(
        {
            "amount": rng.lognormal(size=n),
            "age": rng.integers(18, 80, n),
            "country": rng.choice(["fr", "de", "es"], n),
            "empty": [1.0] * n,
        }
    )
    cur = pl.DataFrame(
        {
            "amount": rng.lognormal(0.4, size=n),
            "age": rng.integers(18, 80, n),
            "country": rng.choice(["fr", "de", "it"], n),
            "empty": [None] * n,
        },
        schema_overrides={"empty": pl.Float64},
    )
    return drift.compare(ref, cur)


@pytest.fixture(scope="module")
def over_time_frame() -> pl.DataFrame:
    rng = np.random.default_rng(1)
    ref = pl.DataFrame({"x": rng.normal(size=1000), "y": rng.normal(size=1000)})
    start = datetime(2024, 5, 1)
    ts = [start + timedelta(hours=i) for i in range(24 * 5)]
    x = rng.normal(size=len(ts))
    x[72:] += 2
    cur = pl.DataFrame({"ts": ts, "x": x, "y": rng.normal(size=len(ts))})
    return drift.over_time(ref, cur, timestamp_column="ts")


def _marks(spec: dict) -> list[str]:
    """Every mark type in a (nested) Vega-Lite spec."""
    found = []
    if isinstance(spec, dict):
        mark = spec.get("mark")
        if mark is not None:
            found.append(mark if isinstance(mark, str) else mark["type"])
        for value in spec.values():
            found.extend(_marks(value))
    elif isinstance(spec, list):
        for value in spec:
            found.extend(_marks(value))
    return found


def _datasets(spec: dict) -> dict[str, list]:
    return spec.get("datasets", {})


def test_numerical_feature_chart_draws_histograms_ecdfs_and_the_ks_distance(report) -> None:
    spec = report.chart("amount").to_dict()
    hist, ecdf = spec["hconcat"]
    assert hist["mark"]["type"] == "bar"
    assert hist["encoding"]["x"]["bin"] == "binned" and hist["encoding"]["x2"]["field"] == "bin_end"
    assert hist["encoding"]["y"]["stack"] is None  # overlaid, not stacked
    line, rule, text = ecdf["layer"]
    assert line["mark"] == {"type": "line", "interpolate": "step-after"}
    assert rule["mark"]["type"] == "rule"
    assert {rule["encoding"]["y"]["field"], rule["encoding"]["y2"]["field"]} == {
        "ecdf_reference",
        "ecdf_current",
    }
    assert text["mark"]["type"] == "text"
    row = report.features.row(by_predicate=pl.col("feature") == "amount", named=True)
    (point,) = _datasets(spec)[rule["data"]["name"]]
    assert point["x"] == row["ks_location"]
    assert abs(point["ecdf_reference"] - point["ecdf_current"]) == pytest.approx(row["statistic"])
    assert point["label"] == f"D = {row['statistic']:.3g}, p = {row['p_value']:.2g}"
    assert "DRIFT" in spec["title"]["text"]


def test_categorical_feature_chart_marks_new_categories(report) -> None:
    spec = report.chart("country").to_dict()
    bars, labels = spec["layer"]
    assert bars["mark"]["type"] == "bar"
    assert bars["encoding"]["xOffset"]["field"] == "sample"
    assert labels["mark"]["type"] == "text"
    rows = _datasets(spec)[spec["data"]["name"]] if "data" in spec else None
    rows = rows or next(iter(_datasets(spec).values()))
    new = {r["category"] for r in rows if r["new"]}
    assert new == {"it"}


def test_unknown_feature_and_untested_feature(report) -> None:
    with pytest.raises(FskitError, match="'nope' is not in this drift report"):
        report.chart("nope")
    spec = report.chart("empty").to_dict()  # nothing to draw on the current side
    assert "not tested" in spec["title"]["text"]


def test_overview_chart_is_a_table_sorted_by_drift(report) -> None:
    spec = report.overview_chart().to_dict()
    columns = spec["hconcat"]
    assert [c.get("title") for c in columns[:3]] == ["feature", "kind", "score"]
    order = columns[0]["encoding"]["y"]["sort"]
    severity = dict(zip(report.features["feature"], report.features["severity"], strict=True))
    ranked = [f for f in order if severity[f] is not None]
    assert ranked == sorted(ranked, key=lambda f: -severity[f])
    assert _marks(columns[3]).count("bar") == 1 and "rule" in _marks(columns[3])
    by_name = report.overview_chart(sort_by="feature").to_dict()
    assert by_name["hconcat"][0]["encoding"]["y"]["sort"] == sorted(order)
    with pytest.raises(DefinitionError, match="sort_by"):
        report.overview_chart(sort_by="colour")


def test_quality_chart_flags_the_issues(report) -> None:
    spec = report.quality_chart().to_dict()
    assert _marks(spec) == ["rect", "text"]
    cells = next(iter(_datasets(spec).values()))
    flagged = {(c["feature"], c["check"]) for c in cells if c["flagged"]}
    assert ("country", "new categories") in flagged
    assert ("empty", "null rate") in flagged
    assert ("amount", "null rate") not in flagged


def test_drift_heatmap_and_auc_chart(over_time_frame) -> None:
    spec = charts.drift_heatmap(over_time_frame).to_dict()
    cells, outline = spec["layer"]
    assert cells["mark"]["type"] == "rect" and outline["mark"]["type"] == "rect"
    assert (
        cells["encoding"]["x"]["field"] == "window" and cells["encoding"]["y"]["field"] == "feature"
    )
    data = next(iter(_datasets(spec).values()))
    assert len(data) == over_time_frame.height == 10  # 5 days x 2 features
    assert data[0]["window"] == "2024-05-01"  # daily windows print as dates
    with pytest.raises(FskitError, match="over_time"):
        charts.drift_heatmap(pl.DataFrame({"a": [1]}))

    frame = pl.DataFrame(
        {
            "window_start": [datetime(2024, 1, d) for d in (1, 2)],
            "n": [10, 10],
            "n_labeled": [10, 5],
            "auc": [0.8, None],
        }
    )
    auc = charts.auc_chart(frame).to_dict()
    assert auc["mark"]["type"] == "line" and auc["encoding"]["y"]["field"] == "auc"


def test_charts_stay_light_on_large_data() -> None:
    rng = np.random.default_rng(2)
    n = 300_000
    big = drift.compare(
        pl.DataFrame({"x": rng.normal(size=n)}), pl.DataFrame({"x": rng.normal(size=n)})
    )
    size = len(json.dumps(big.chart("x").to_dict()))
    assert size < 150_000, size  # ~40 bins and ~400 ECDF points per sample, not 600k rows


def test_save_chart_writes_png_svg_and_offline_html(report, tmp_path: Path) -> None:
    chart = report.chart("amount")
    png = charts.save_chart(chart, tmp_path / "amount.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
    svg = charts.save_chart(report.quality_chart(), tmp_path / "quality.svg")
    assert svg.read_text().lstrip().startswith("<svg") and "new categories" in svg.read_text()
    page = charts.save_chart(chart, tmp_path / "amount.html").read_text()
    _assert_offline_html(page)
    assert "vegaEmbed(" in page and '"hconcat"' in page
    with pytest.raises(DefinitionError, match=r"\.png, \.svg, \.html"):
        charts.save_chart(chart, tmp_path / "amount.pdf")


def _assert_offline_html(page: str) -> None:
    assert "cdn.jsdelivr" not in page
    assert not re.search(r"<script[^>]*\bsrc\s*=", page), "a script is loaded from elsewhere"
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']https?:", page)
    assert len(page) > 500_000  # the Vega bundle is inlined


def test_report_to_html_is_one_self_contained_page(report, tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    page = report.to_html(path)
    assert path.read_text(encoding="utf-8") == page
    _assert_offline_html(page)
    assert page.count("vega-embed") >= 1 or page.count("vegaEmbed") >= 1
    for div in ("overview", "quality", "feature-0", "feature-3"):
        assert f'id="{div}"' in page
    assert report.summary() in page and "<table>" in page
    specs = json.loads(
        re.search(r"const fskitSpecs = (.*);\n", page).group(1).replace("<\\/", "</")
    )
    assert set(specs) == {"overview", "quality", "feature-0", "feature-1", "feature-2", "feature-3"}
    short = charts.report_html(report, max_feature_charts=1)
    assert "3 more features not drawn" in short


def test_enable_offline_renderer_inlines_the_javascript(report) -> None:
    previous, options = alt.renderers.active, dict(alt.renderers.options)
    try:
        charts.enable_offline_renderer()
        assert alt.renderers.active == "fskit-offline"
        pages = []
        for feature in ("amount", "amount"):  # two charts must be able to share a page
            bundle = report.chart(feature)._repr_mimebundle_()
            pages.append((bundle[0] if isinstance(bundle, tuple) else bundle)["text/html"])
        for page in pages:
            assert "cdn.jsdelivr" not in page and not re.search(r"<script[^>]*\bsrc\s*=", page)
            # the chart's code runs inside a function: no top-level const collides
            script = page.split("<script", 1)[1]
            assert script.split(">", 1)[1].lstrip().startswith("(function () {")
        assert pages[0] != pages[1]  # each chart draws into its own element
        with pytest.raises(DefinitionError, match="'html' or 'jupyter'"):
            charts.enable_offline_renderer("cdn")
    finally:
        alt.renderers.enable(previous, **options)


def test_importing_charts_does_not_import_altair() -> None:
    code = "import sys, fskit.charts; print('altair' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
