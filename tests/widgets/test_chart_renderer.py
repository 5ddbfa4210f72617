"""The offline chart renderer: no CDN, and any number of charts per page.

Whether the JavaScript really draws every chart of a page is checked in a real browser by
tests/browser/test_cockpit.py (three charts on one page); this checks the HTML it relies on.
"""

from __future__ import annotations

import re

import altair as alt
import polars as pl
from fskit.widgets import chart_html
from fskit.widgets._charts import RENDERER

CHART = alt.Chart(pl.DataFrame({"x": [1, 2, 3]})).mark_bar().encode(x="x:Q")


def test_importing_fskit_widgets_enables_the_offline_renderer():
    assert alt.renderers.active == RENDERER
    html = CHART._repr_mimebundle_()["text/html"]
    assert 'class="fskit-chart"' in html
    assert "window.vegaEmbed=" in html  # the bundle is inlined ...
    assert not re.search(r"<script[^>]+src=", html)  # ... nothing is fetched
    assert "cdn.jsdelivr" not in html and "https://cdn" not in html


def test_each_chart_runs_inside_a_function_so_charts_can_share_a_page():
    html = chart_html(CHART.to_dict())
    (script,) = re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.S)
    body = script.strip()
    # one expression statement: no top-level const/let to clash with the next chart's
    assert body.startswith("(function () {") and body.endswith("})();")
    assert 'if (typeof window.vegaEmbed !== "function")' in body  # the bundle runs once
    first, second = chart_html(CHART.to_dict()), chart_html(CHART.to_dict())
    ids = [re.search(r'id="(fskit-chart-\w+)"', h).group(1) for h in (first, second)]
    assert ids[0] != ids[1] and f'"#{ids[0]}"' in first


def test_data_cannot_close_the_script_element():
    spec = alt.Chart(pl.DataFrame({"x": ["</script><b>hi</b>"]})).mark_bar().encode(x="x:N")
    html = chart_html(spec.to_dict())
    assert html.count("</script>") == 1
