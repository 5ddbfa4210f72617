"""fskit widgets: the Jupyter cockpit over fskit's public API (imported as ``fskit.widgets``).

Each panel is a thin view: every button makes exactly one call of fskit's public API, the
outcome is kept in the panel's state (``panel.result``, ``panel.error``...), and long work
shows a progress bar. So anything a panel does, a script can do too, and tests need no
browser.

>>> from fskit.widgets import Cockpit                                  # doctest: +SKIP
>>> Cockpit(store, fraud_entity_rows(), label="is_fraud", extra_columns=["amount"])  # doctest: +SKIP

Importing this package switches altair to an offline renderer (the Vega JavaScript inlined
in each chart: no CDN; every chart of a page draws), unless the user chose a renderer other
than altair's ``"default"``/``"html"``; see :mod:`fskit.widgets._charts`.
"""

# ruff: noqa: E402 -- ipywidgets is checked and the chart renderer set before the panels load

from fskit.errors import MissingDependencyError

try:
    import ipywidgets as _ipywidgets  # noqa: F401
except ImportError as _exc:  # pragma: no cover - depends on the install
    raise MissingDependencyError(
        "fskit.widgets needs ipywidgets: pip install 'fskit[notebook]'"
    ) from _exc

from fskit.widgets._charts import chart_html, enable_offline_charts

enable_offline_charts()

# panels
from fskit.widgets._cockpit import Cockpit
from fskit.widgets._deploy import DeployPanel
from fskit.widgets._monitor import DriftPanel, SkewPanel
from fskit.widgets._registry import RegistryExplorer
from fskit.widgets._simulator import SimulatorPanel
from fskit.widgets._training import TrainingSetBuilder, TrainPanel

__all__ = [
    # panels
    "Cockpit",
    "DeployPanel",
    "DriftPanel",
    "RegistryExplorer",
    "SimulatorPanel",
    "SkewPanel",
    "TrainPanel",
    "TrainingSetBuilder",
    # offline charts
    "chart_html",
    "enable_offline_charts",
]
