"""The offline chart renderer lives in the core: :mod:`fskit._offline_charts`."""

from fskit._offline_charts import RENDERER, chart_html, enable_offline_charts, offline_renderer

__all__ = ["RENDERER", "chart_html", "enable_offline_charts", "offline_renderer"]
