"""Altair charts for drift and quality, and helpers to show and save charts offline.

Every chart is drawn from small aggregates (histogram bins, a few hundred ECDF points, one row
per feature or per window), never from raw rows, so a notebook stays light whatever the data
size. altair is imported on first use (it costs about a second), so ``import fskit`` stays fast.

Drift charts take a :class:`fskit.drift.DriftReport` or the frame of :func:`fskit.drift.over_time`:

* :func:`feature_chart` — reference vs current for one feature: overlaid histograms and ECDFs with
  the K-S distance drawn where the ECDFs are furthest apart (categorical: side-by-side shares);
* :func:`overview_chart` — features ranked by drift score relative to its threshold;
* :func:`quality_chart` — null/NaN rates, out-of-range and new-category shares, flags;
* :func:`drift_heatmap` — drift per feature per time window;
* :func:`auc_chart` — model quality (AUC) per window, from :func:`fskit.drift.quality_over_time`.

Showing and saving, offline (no CDN): :func:`enable_offline_renderer`, :func:`save_chart`
(``.png``, ``.svg``, ``.html``) and :func:`report_html`. These need ``vl-convert-python``
(``pip install 'fskit[notebook]'``).
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from fskit.errors import DefinitionError, FskitError, MissingDependencyError

if TYPE_CHECKING:
    from types import ModuleType

    import altair as alt

    from fskit.drift import DriftReport

__all__ = [
    "auc_chart",
    "drift_heatmap",
    "enable_offline_renderer",
    "feature_chart",
    "overview_chart",
    "quality_chart",
    "report_html",
    "save_chart",
]

#: Colours shared by every drift chart.
SAMPLE_COLORS = {"reference": "#4c78a8", "current": "#f58518"}
STATUS_COLORS = {"drift": "#d62728", "ok": "#54a24b", "untested": "#bab0ac"}
KS_COLOR = "#d62728"
SAVE_FORMATS = (".png", ".svg", ".html")
_SEVERITY_CAP = 3.0  # bars and heatmap cells saturate at 3x the threshold


def _altair() -> ModuleType:
    try:
        import altair
    except ImportError as exc:  # pragma: no cover - altair is a core dependency
        msg = "fskit.charts needs altair: pip install fskit (altair is a core dependency)"
        raise MissingDependencyError(msg) from exc
    return altair


def _vl_convert() -> ModuleType:
    try:
        import vl_convert
    except ImportError as exc:
        msg = (
            "rendering charts offline (PNG/SVG/HTML export, the inline notebook renderer) needs "
            "vl-convert-python: pip install 'fskit[notebook]'"
        )
        raise MissingDependencyError(msg) from exc
    return vl_convert


def _vl_version() -> str:
    """vl-convert's name for the Vega-Lite version altair writes (``v6.4.1`` -> ``v6_4``)."""
    from altair.vegalite import SCHEMA_VERSION

    return "_".join(SCHEMA_VERSION.split(".")[:2])


def _sample_scale(alt: ModuleType) -> Any:
    return alt.Scale(domain=list(SAMPLE_COLORS), range=list(SAMPLE_COLORS.values()))


def _status(drifted: bool | None) -> str:
    return {True: "drift", False: "ok", None: "untested"}[drifted]


def _fmt_score(method: str | None, score: float | None) -> str:
    if method is None or score is None or (isinstance(score, float) and math.isnan(score)):
        return "not tested"
    return f"{method} = {score:.3g}"


# --------------------------------------------------------------------------------------------
# Drift charts
# --------------------------------------------------------------------------------------------


def feature_chart(
    report: DriftReport, feature: str, *, width: int = 300, height: int = 180
) -> alt.TopLevelMixin:
    """Reference vs current for one feature of a drift report.

    Numerical: overlaid histograms (share of values per bin, shared bins) next to both ECDFs,
    with a red rule where they are furthest apart, annotated with the K-S statistic and p-value.
    Categorical: the share of each category side by side; categories new in the current data
    are outlined and labelled "new".
    """
    alt = _altair()
    if feature not in report.summaries:
        msg = f"feature {feature!r} is not in this drift report; features: {list(report.summaries)}"
        raise FskitError(msg)
    s = report.summaries[feature]
    row = s.row
    verdict = {True: "DRIFT", False: "no drift", None: "not tested"}[row["drifted"]]
    title = alt.TitleParams(
        f"{feature}: {verdict}",
        subtitle=(
            f"{_fmt_score(row['method'], row['drift_score'])}"
            + (f" (threshold {row['threshold']:g})" if row["threshold"] is not None else "")
            + f"; n_ref = {row['n_ref']:,}, n_cur = {row['n_cur']:,}"
            + (f"; issues: {', '.join(row['issues'])}" if row["issues"] else "")
        ),
        anchor="start",
    )
    color = alt.Color("sample:N", scale=_sample_scale(alt), legend=alt.Legend(title=None))

    if s.kind == "categorical":
        if s.bars is None or s.bars.is_empty():
            return _empty_chart(alt, "no values to compare", width, height).properties(title=title)
        order = s.bars.filter(pl.col("sample") == "reference")["category"].to_list()
        base = alt.Chart(s.bars).encode(
            x=alt.X("category:N", sort=order, title=feature, axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("sample:N", sort=list(SAMPLE_COLORS)),
        )
        bars = base.mark_bar().encode(
            y=alt.Y("share:Q", title="share of values", axis=alt.Axis(format="%")),
            color=color,
            stroke=alt.condition(
                "datum.new && datum.sample == 'current'", alt.value("black"), alt.value(None)
            ),
            tooltip=[
                alt.Tooltip("category:N"),
                alt.Tooltip("sample:N"),
                alt.Tooltip("share:Q", format=".2%"),
                alt.Tooltip("new:N"),
            ],
        )
        new_labels = (
            base.transform_filter("datum.new && datum.sample == 'current'")
            .mark_text(dy=-6, color="black", fontWeight="bold")
            .encode(y="share:Q", text=alt.value("new"))
        )
        return (
            alt.layer(bars, new_labels)
            .properties(width=max(width, 34 * len(order)), height=height)
            .properties(title=title)
        )

    if s.hist is None:
        return _empty_chart(alt, "no values to compare", width, height).properties(title=title)
    hist = (
        alt.Chart(s.hist)
        .mark_bar(opacity=0.5, binSpacing=0)
        .encode(
            x=alt.X("bin_start:Q", bin="binned", title=feature),
            x2="bin_end:Q",
            y=alt.Y("share:Q", stack=None, title="share of values", axis=alt.Axis(format="%")),
            color=color,
            tooltip=[
                alt.Tooltip("sample:N"),
                alt.Tooltip("bin_start:Q", format=".4g", title="from"),
                alt.Tooltip("bin_end:Q", format=".4g", title="to"),
                alt.Tooltip("share:Q", format=".2%"),
            ],
        )
        .properties(width=width, height=height, title="histograms")
    )
    layers = [
        alt.Chart(s.ecdf)
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("x:Q", title=feature),
            y=alt.Y("ecdf:Q", title="ECDF", scale=alt.Scale(domain=[0, 1])),
            color=color,
            tooltip=[
                alt.Tooltip("sample:N"),
                alt.Tooltip("x:Q", format=".4g"),
                alt.Tooltip("ecdf:Q", format=".3f"),
            ],
        )
    ]
    if s.ks is not None and math.isfinite(s.ks["x"]):
        ks = s.ks
        label = f"D = {ks['statistic']:.3g}, p = {ks['p_value']:.2g}"
        point = pl.DataFrame(
            {
                "x": [ks["x"]],
                "ecdf_reference": [ks["ecdf_reference"]],
                "ecdf_current": [ks["ecdf_current"]],
                "middle": [(ks["ecdf_reference"] + ks["ecdf_current"]) / 2],
                "label": [label],
            }
        )
        layers.append(
            alt.Chart(point)
            .mark_rule(color=KS_COLOR, strokeWidth=2)
            .encode(
                x="x:Q",
                y="ecdf_reference:Q",
                y2="ecdf_current:Q",
                tooltip=[alt.Tooltip("label:N", title="K-S"), alt.Tooltip("x:Q", format=".4g")],
            )
        )
        layers.append(
            alt.Chart(point)
            .mark_text(align="left", dx=6, color=KS_COLOR, fontWeight="bold")
            .encode(x="x:Q", y="middle:Q", text="label:N")
        )
    ecdf = alt.layer(*layers).properties(width=width, height=height, title="ECDF and K-S distance")
    return alt.hconcat(hist, ecdf).properties(title=title)


def _empty_chart(alt: ModuleType, text: str, width: int, height: int) -> Any:
    return (
        alt.Chart(pl.DataFrame({"text": [text]}))
        .mark_text(color="gray")
        .encode(text="text:N")
        .properties(width=width, height=height)
    )


_SORTS = {
    "severity": ("severity", True),
    "drift_score": ("drift_score", False),
    "feature": ("feature", False),
    "kind": ("kind", False),
    "method": ("method", False),
}


def overview_chart(
    report: DriftReport, *, sort_by: str = "severity", width: int = 260
) -> alt.TopLevelMixin:
    """Features ranked by drift: a table-like chart, one row per feature.

    Columns: the criterion and its score, then a bar of the score relative to its threshold
    (``severity``; 1 is the threshold, bars saturate at 3) coloured by verdict.

    Parameters
    ----------
    sort_by
        ``"severity"`` (most drifted first, the default), ``"drift_score"``, ``"feature"``,
        ``"kind"`` or ``"method"``.
    """
    alt = _altair()
    if sort_by not in _SORTS:
        msg = f"overview_chart(sort_by=...) must be one of {list(_SORTS)}, got {sort_by!r}"
        raise DefinitionError(msg)
    column, descending = _SORTS[sort_by]
    data = report.features.select(
        "feature",
        "kind",
        "method",
        "drift_score",
        "threshold",
        "severity",
        "drifted",
        "n_ref",
        "n_cur",
    ).with_columns(
        pl.col("drifted")
        .replace_strict({True: "drift", False: "ok"}, default="untested", return_dtype=pl.String)
        .alias("status"),
        pl.col("severity").clip(0, _SEVERITY_CAP).fill_null(0).alias("severity_shown"),
        pl.struct("method", "drift_score")
        .map_elements(lambda r: _fmt_score(r["method"], r["drift_score"]), return_dtype=pl.String)
        .alias("score"),
    )
    order = data.sort(column, "feature", descending=[descending, False], nulls_last=True)[
        "feature"
    ].to_list()
    y = alt.Y("feature:N", sort=order, title=None)
    tooltip = [
        alt.Tooltip("feature:N"),
        alt.Tooltip("kind:N"),
        alt.Tooltip("status:N"),
        alt.Tooltip("score:N"),
        alt.Tooltip("threshold:Q"),
        alt.Tooltip("severity:Q", format=".3g"),
        alt.Tooltip("n_ref:Q", format=","),
        alt.Tooltip("n_cur:Q", format=","),
    ]
    height = 18 * max(len(order), 1)
    base = alt.Chart(data).encode(y=y, tooltip=tooltip)

    def text_column(field: str, title: str, w: int) -> Any:
        return (
            base.mark_text(align="left", baseline="middle")
            .encode(
                text=f"{field}:N",
                x=alt.value(4),
                y=alt.Y("feature:N", sort=order, axis=None),
            )
            .properties(width=w, height=height, title=title)
        )

    bars = base.mark_bar().encode(
        y=alt.Y("feature:N", sort=order, axis=None),
        x=alt.X(
            "severity_shown:Q",
            scale=alt.Scale(domain=[0, _SEVERITY_CAP]),
            title="score relative to threshold (1 = threshold)",
        ),
        color=alt.Color(
            "status:N",
            scale=alt.Scale(domain=list(STATUS_COLORS), range=list(STATUS_COLORS.values())),
            legend=alt.Legend(title=None, orient="bottom"),
        ),
    )
    rule = alt.Chart(pl.DataFrame({"x": [1.0]})).mark_rule(strokeDash=[4, 3]).encode(x="x:Q")
    bar_column = alt.layer(bars, rule).properties(width=width, height=height, title="drift")
    return (
        alt.hconcat(
            text_column("feature", "feature", 140),
            text_column("kind", "kind", 80),
            text_column("score", "score", 150),
            bar_column,
        )
        .resolve_scale(y="shared")
        .properties(title=alt.TitleParams(f"Drift by feature — {report.summary()}", anchor="start"))
        .configure_view(strokeWidth=0)
    )


_QUALITY_CHECKS = (
    # (title, value column, issue that flags it, format)
    ("null rate", "null_rate_cur", "null_rate", "pct"),
    ("NaN rate", "nan_rate_cur", "null_rate", "pct"),
    ("out of range", "out_of_range_share", "out_of_range", "pct"),
    ("new categories", "new_category_share", "new_categories", "pct"),
    ("constant", "constant", "constant", "bool"),
    ("type change", "type_change", "type_change", "dtype"),
    ("present", "n_cur", "missing", "present"),
)


def quality_chart(report: DriftReport) -> alt.TopLevelMixin:
    """The quality panel: one row per feature, one cell per check, red where an issue is raised.

    Checks: null and NaN rate of the current data (reference rate in the tooltip), share out of
    the reference range, share of new categories, constant column, dtype change, presence.
    """
    alt = _altair()
    records = []
    for r in report.features.iter_rows(named=True):
        missing = "missing" in r["issues"]
        for title, column, issue, kind in _QUALITY_CHECKS:
            value = r[column]
            if missing and kind != "present":
                text = ""
            elif kind == "pct":
                text = "" if value is None else f"{value:.1%}"
            elif kind == "bool":
                text = "yes" if value else "no"
            elif kind == "dtype":
                text = f"{r['dtype_ref']} → {r['dtype_cur']}" if value else "no"
            else:
                text = "missing" if missing else "yes"
            records.append(
                {
                    "feature": r["feature"],
                    "check": title,
                    "text": text,
                    "flagged": issue in r["issues"] and text not in ("", "0.0%", "no"),
                    "reference": (
                        f"{r['null_rate_ref']:.1%}"
                        if column == "null_rate_cur" and r["null_rate_ref"] is not None
                        else (
                            f"{r['nan_rate_ref']:.1%}"
                            if column == "nan_rate_cur" and r["nan_rate_ref"] is not None
                            else ""
                        )
                    ),
                    "issues": ", ".join(r["issues"]),
                }
            )
    schema = {
        "feature": pl.String,
        "check": pl.String,
        "text": pl.String,
        "flagged": pl.Boolean,
        "reference": pl.String,
        "issues": pl.String,
    }
    data = pl.DataFrame(records, schema=schema)
    checks = [c[0] for c in _QUALITY_CHECKS]
    features = report.features["feature"].to_list()
    base = alt.Chart(data).encode(
        x=alt.X("check:N", sort=checks, title=None, axis=alt.Axis(orient="top", labelAngle=0)),
        y=alt.Y("feature:N", sort=features, title=None),
    )
    cells = base.mark_rect(stroke="white").encode(
        color=alt.Color(
            "flagged:N",
            scale=alt.Scale(domain=[False, True], range=["#e5f5e0", "#fcbba1"]),
            legend=alt.Legend(title="issue"),
        ),
        tooltip=[
            alt.Tooltip("feature:N"),
            alt.Tooltip("check:N"),
            alt.Tooltip("text:N", title="current"),
            alt.Tooltip("reference:N"),
            alt.Tooltip("issues:N"),
        ],
    )
    text = base.mark_text(fontSize=11).encode(text="text:N")
    n_issues = report.issues.height
    return (
        alt.layer(cells, text)
        .properties(
            width=100 * len(checks),
            height=22 * max(len(features), 1),
            title=alt.TitleParams(
                f"Data quality — {n_issues} issue{'s' if n_issues != 1 else ''}", anchor="start"
            ),
        )
        .configure_view(strokeWidth=0)
    )


def drift_heatmap(frame: pl.DataFrame, *, cell_width: int = 28) -> alt.TopLevelMixin:
    """Drift per feature (rows) per window (columns), from :func:`fskit.drift.over_time`.

    Cell colour is the drift score relative to its threshold (white at 0, orange at the
    threshold, dark red from 3x); drifted cells are outlined; the tooltip has the numbers.
    """
    alt = _altair()
    needed = {"window_start", "feature", "method", "drift_score", "severity", "drifted"}
    missing = needed - set(frame.columns)
    if missing:
        msg = (
            f"drift_heatmap expects the frame of fskit.drift.over_time(); it lacks the columns "
            f"{sorted(missing)}"
        )
        raise FskitError(msg)
    ts = frame.schema["window_start"]
    fmt = "%Y-%m-%d" if ts == pl.Date else "%Y-%m-%d %H:%M"
    if ts != pl.Date and frame.height:
        midnight = frame.select((pl.col("window_start").dt.time() == pl.time(0)).all()).item()
        fmt = "%Y-%m-%d" if midnight else fmt
    data = frame.select(
        pl.col("window_start").dt.to_string(fmt).alias("window"),
        "feature",
        "method",
        "drift_score",
        "n_cur",
        "drifted",
        pl.col("severity").clip(0, _SEVERITY_CAP).alias("severity_shown"),
        pl.col("severity"),
    )
    windows = data["window"].unique(maintain_order=True).sort().to_list()
    features = data["feature"].unique(maintain_order=True).to_list()
    base = alt.Chart(data).encode(
        x=alt.X("window:O", sort=windows, title="window start"),
        y=alt.Y("feature:N", sort=features, title=None),
    )
    cells = base.mark_rect().encode(
        color=alt.Color(
            "severity_shown:Q",
            scale=alt.Scale(domain=[0, 1, _SEVERITY_CAP], range=["#ffffff", "#fdae6b", "#a50f15"]),
            title="score / threshold",
        ),
        tooltip=[
            alt.Tooltip("window:N"),
            alt.Tooltip("feature:N"),
            alt.Tooltip("method:N"),
            alt.Tooltip("drift_score:Q", format=".3g"),
            alt.Tooltip("severity:Q", format=".3g"),
            alt.Tooltip("drifted:N"),
            alt.Tooltip("n_cur:Q", format=","),
        ],
    )
    outline = (
        base.transform_filter("datum.drifted == true")
        .mark_rect(fillOpacity=0, stroke="black", strokeWidth=1.5)
        .encode()
    )
    return alt.layer(cells, outline).properties(
        width=cell_width * max(len(windows), 1),
        height=20 * max(len(features), 1),
        title=alt.TitleParams("Drift over time", anchor="start"),
    )


def auc_chart(frame: pl.DataFrame) -> alt.TopLevelMixin:
    """AUC per window (line) from :func:`fskit.drift.quality_over_time`; tooltip has counts."""
    alt = _altair()
    if not {"window_start", "auc", "n_labeled"} <= set(frame.columns):
        msg = "auc_chart expects the frame of fskit.drift.quality_over_time()"
        raise FskitError(msg)
    return (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("window_start:T", title="window start"),
            y=alt.Y("auc:Q", title="ROC AUC", scale=alt.Scale(domain=[0, 1])),
            tooltip=[
                alt.Tooltip("window_start:T"),
                alt.Tooltip("auc:Q", format=".3f"),
                alt.Tooltip("n_labeled:Q", format=","),
                alt.Tooltip("n:Q", format=","),
            ],
        )
        .properties(width=480, height=200, title="Model quality over time")
    )


# --------------------------------------------------------------------------------------------
# Showing and saving, offline
# --------------------------------------------------------------------------------------------


def enable_offline_renderer(renderer: str = "html") -> None:
    """Make altair charts render in notebooks without loading anything from a CDN.

    ``"html"`` (the default) inlines the Vega JavaScript in each chart's output, scoped so
    that every chart of a page draws (altair's own ``template="inline"`` draws only the first
    one in JupyterLab): it works in JupyterLab, Voila and exported notebooks. ``"jupyter"`` uses altair's ``JupyterChart`` widget offline (needs
    ``anywidget``), which also sends selections back to Python. Both need vl-convert-python.
    """
    alt = _altair()
    _vl_convert()
    if renderer == "html":
        # altair's html+inline template declares top-level consts: in JupyterLab only the
        # first chart of a page would draw. This renderer scopes each chart in a function.
        from fskit._offline_charts import enable_offline_charts

        enable_offline_charts(force=True)
    elif renderer == "jupyter":
        try:
            import anywidget  # noqa: F401
        except ImportError as exc:
            msg = "the 'jupyter' renderer needs anywidget: pip install anywidget"
            raise MissingDependencyError(msg) from exc
        alt.renderers.enable("jupyter", offline=True)
    else:
        msg = f"enable_offline_renderer(renderer=...) must be 'html' or 'jupyter', got {renderer!r}"
        raise DefinitionError(msg)


def save_chart(
    chart: alt.TopLevelMixin, path: str | os.PathLike[str], *, scale: float = 2.0
) -> Path:
    """Save an altair chart as ``.png``, ``.svg`` or self-contained ``.html`` (no CDN).

    PNG and SVG are rendered by vl-convert without a browser; ``scale`` multiplies the PNG's
    pixel size. HTML embeds the Vega JavaScript, so the file opens offline. Returns the path.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SAVE_FORMATS:
        msg = (
            f"save_chart can write {', '.join(SAVE_FORMATS)} files, got {path.name!r}; "
            "change the file name's extension"
        )
        raise DefinitionError(msg)
    if not hasattr(chart, "to_dict"):
        msg = f"save_chart expects an altair chart, got {type(chart).__name__}"
        raise FskitError(msg)
    vlc = _vl_convert()
    spec = chart.to_dict()
    if suffix == ".png":
        path.write_bytes(vlc.vegalite_to_png(spec, vl_version=_vl_version(), scale=scale))
    elif suffix == ".svg":
        path.write_text(vlc.vegalite_to_svg(spec, vl_version=_vl_version()), encoding="utf-8")
    else:
        path.write_text(_html_page("chart", "", {"chart": spec}), encoding="utf-8")
    return path


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; }
th { background: #f4f4f4; }
.chart { margin: 1em 0; }
"""


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(value).replace("</", "<\\/")


def _html_page(title: str, body: str, specs: dict[str, dict[str, Any]]) -> str:
    """A whole HTML page: the Vega bundle inlined once, one vegaEmbed call per chart div."""
    bundle = _vl_convert().javascript_bundle(vl_version=_vl_version())
    divs = "" if body else "".join(f'<div class="chart" id="{i}"></div>' for i in specs)
    return f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
<script type="text/javascript">
{bundle}
</script>
</head>
<body>
{body}{divs}
<script type="text/javascript">
const fskitSpecs = {_script_json(specs)};
for (const [id, spec] of Object.entries(fskitSpecs)) {{
  vegaEmbed("#" + id, spec, {{"actions": {{"export": true, "source": false, "compiled": false, "editor": false}}}}).catch(console.error);
}}
</script>
</body>
</html>
"""


def report_html(
    report: DriftReport, *, title: str = "Drift report", max_feature_charts: int = 30
) -> str:
    """One self-contained HTML page for a drift report: summary, overview, quality, table and
    the per-feature charts (drifted features first, at most ``max_feature_charts``).

    The Vega JavaScript is inlined once, so the file opens offline; it weighs about 1 MB plus
    the (aggregated) chart data.
    """
    specs: dict[str, dict[str, Any]] = {
        "overview": overview_chart(report).to_dict(),
        "quality": quality_chart(report).to_dict(),
    }
    ordered = report.drifted_features + [
        f for f in report.features["feature"].to_list() if f not in report.drifted_features
    ]
    shown = ordered[:max_feature_charts]
    for i, feature in enumerate(shown):
        specs[f"feature-{i}"] = feature_chart(report, feature).to_dict()
    feature_divs = "".join(f'<div class="chart" id="feature-{i}"></div>' for i in range(len(shown)))
    more = (
        f"<p>{len(ordered) - len(shown)} more features not drawn "
        f"(max_feature_charts={max_feature_charts}).</p>"
        if len(ordered) > len(shown)
        else ""
    )
    body = f"""<h1>{html.escape(title)}</h1>
<p>{report.n_ref_rows:,} reference rows vs {report.n_cur_rows:,} current rows.
<b>{html.escape(report.summary())}</b></p>
<div class="chart" id="overview"></div>
<div class="chart" id="quality"></div>
<h2>All checks</h2>
{report._repr_html_()}
<h2>Features</h2>
{feature_divs}{more}
"""
    return _html_page(title, body, specs)
