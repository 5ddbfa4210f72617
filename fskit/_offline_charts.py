"""Charts that render offline, every one of them, in JupyterLab, Voila and exported HTML.

altair's offline option, ``alt.renderers.enable("html", template="inline")``, inlines the Vega JavaScript bundle in each
chart as top-level ``<script>`` code. JupyterLab runs output scripts in the page's global
scope, so on a page with two such charts the second one fails ("Identifier 'spec' has already
been declared": the bundle and the chart both declare top-level ``const``s) and only the first
chart ever draws. The browser test caught it with the cockpit's second chart.

The renderer here keeps the same idea (no CDN; each output carries the bundle, so a saved
notebook or an exported page stands alone) but runs each chart's code inside a function: the
bundle is evaluated once per page (when ``window.vegaEmbed`` is missing) and every chart draws.

:func:`fskit.charts.enable_offline_renderer` enables it, and so does importing
``fskit.widgets``.
"""

from __future__ import annotations

import functools
import json
import uuid
from typing import Any

__all__ = ["RENDERER", "chart_html", "enable_offline_charts", "offline_renderer"]

#: The name the renderer is registered under in ``altair.renderers``.
RENDERER = "fskit-offline"

_EMBED_OPTIONS = {
    "mode": "vega-lite",
    "actions": {"export": True, "source": False, "compiled": False, "editor": False},
}


@functools.cache
def _bundle() -> str:
    """The vega + vega-lite + vega-embed JavaScript for altair's Vega-Lite version."""
    try:
        import vl_convert
    except ImportError as exc:
        from fskit.errors import MissingDependencyError

        raise MissingDependencyError(
            "offline charts need vl-convert-python: pip install 'fskit[notebook]'"
        ) from exc
    from altair.vegalite import SCHEMA_VERSION

    version = "_".join(SCHEMA_VERSION.split(".")[:2])  # "v6.4.1" -> "v6_4"
    return vl_convert.javascript_bundle(vl_version=version)


def _script_json(value: Any) -> str:
    return json.dumps(value).replace("</", "<\\/")  # safe inside <script>


def chart_html(spec: dict[str, Any]) -> str:
    """A self-contained HTML fragment drawing the Vega-Lite ``spec``, with no CDN.

    Any number of them can share a page: the bundle runs once, inside a function.
    """
    element = f"fskit-chart-{uuid.uuid4().hex}"
    return f"""<div id="{element}" class="fskit-chart"></div>
<script type="text/javascript">
(function () {{
  function loadVegaEmbed() {{
{_bundle()}
  }}
  if (typeof window.vegaEmbed !== "function") {{
    loadVegaEmbed();
  }}
  var spec = {_script_json(spec)};
  window.vegaEmbed("#{element}", spec, {_script_json(_EMBED_OPTIONS)}).catch(console.error);
}})();
</script>"""


def offline_renderer(spec: dict[str, Any], **metadata: Any) -> dict[str, str]:
    """An altair renderer: ``{"text/html": chart_html(spec), "text/plain": ...}``."""
    return {"text/html": chart_html(spec), "text/plain": "<altair chart>"}


def enable_offline_charts(*, force: bool = False) -> None:
    """Register and enable the renderer, unless the user picked another one (``force``: always).

    altair's own ``"default"`` and ``"html"`` renderers are replaced: both fail offline or
    draw only the first chart of a page.
    """
    import altair as alt

    alt.renderers.register(RENDERER, offline_renderer)
    if force or alt.renderers.active in ("default", "html", RENDERER):
        alt.renderers.enable(RENDERER)
