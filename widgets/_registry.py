"""``RegistryExplorer``: what the feature repo holds, and what one feature looks like.

Entities, feature views and their versions, on-demand features and feature services
(``store.list_feature_services()``, each with its pinned refs) are listed on the left;
picking an item shows its definition; picking a feature shows its
description, owner, dtype, TTL, freshness SLA, last materialization, summary statistics and a
distribution chart.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import polars as pl
import traitlets

from fskit.definitions import format_timedelta
from fskit.statistics import FeatureStatistics

from ._base import MUTED_COLOR, Panel, button, hbox, note, show

if TYPE_CHECKING:
    from fskit.store import FeatureStore

__all__ = ["RegistryExplorer"]


# ------------------------------------------------------------------------------------------
# The widget
# ------------------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(
        f"<th style='text-align:left;padding:2px 8px'>{html.escape(h)}</th>" for h in header
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td style='padding:2px 8px'>{html.escape(str(c))}</td>" for c in row)
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _age(when: datetime | None) -> str:
    if when is None:
        return "never"
    seconds = (datetime.now(UTC) - when).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


class RegistryExplorer(Panel):
    """Browse a feature repo: entities, feature views and versions, on-demand features,
    feature services; pick a feature to see its definition, freshness and distribution.

    Parameters
    ----------
    store
        The :class:`fskit.FeatureStore` to browse.

    Attributes
    ----------
    selected : str
        The selected feature (``"user_stats@v1:avg_purchase_value"``) or ``""``.
    info : dict
        What the panel shows for the selected feature (description, owner, dtype, ttl,
        freshness_sla, last_materialization, watermark...).
    statistics : fskit.statistics.FeatureStatistics | None
        Its summary statistics and distribution: ``store.feature_statistics(selected)``
        (:meth:`~fskit.statistics.FeatureStatistics.chart` draws it).

    Examples
    --------
    >>> explorer = RegistryExplorer(store)                      # doctest: +SKIP
    >>> explorer.select("user_stats:avg_purchase_value")        # doctest: +SKIP
    >>> explorer.info["owner"], explorer.statistics.summary      # doctest: +SKIP
    """

    selected = traitlets.Unicode("", help="The selected feature ref, or ''.")

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self.info: dict[str, Any] = {}
        self.statistics: FeatureStatistics | None = None
        self.items = widgets.Select(options=[], rows=12, layout=widgets.Layout(width="290px"))
        self.features = widgets.Select(options=[], rows=8, layout=widgets.Layout(width="290px"))
        self.refresh_button = button("Refresh", icon="refresh")
        self.details = widgets.HTML()
        self.feature_details = widgets.HTML()
        self.chart = widgets.Output()
        self.overview = widgets.HTML()
        left = widgets.VBox(
            [
                note("Entities, feature views (every version), on-demand views, services"),
                self.items,
                note("Features of the selected view"),
                self.features,
                self.refresh_button,
            ]
        )
        right = widgets.VBox(
            [self.details, self.feature_details, self.chart],
            layout=widgets.Layout(flex="1", padding="0 0 0 12px"),
        )
        super().__init__([self.overview, hbox(left, right)])
        self.items.observe(self._on_item, "value")
        self.features.observe(self._on_feature, "value")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.refresh()

    # -- public ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the registry (another cell or process may have applied definitions)."""
        store = self.store
        entities = store.list_entities()
        views = store.list_feature_views()
        latest = {v.name: v.version for v in views}
        options: list[tuple[str, Any]] = [
            (f"entity · {e.name}", ("entity", e.name)) for e in entities
        ]
        services = store.list_feature_services()
        on_demand = []
        for v in views:
            kind = "on-demand" if hasattr(v, "request_schema") else "view"
            if kind == "on-demand":
                on_demand.append(v)
            tag = (
                " (latest)"
                if latest[v.name] == v.version and _n_versions(views, v.name) > 1
                else ""
            )
            options.append((f"{kind} · {v.ref}{tag}", ("view", v.ref)))
        options += [(f"service · {s.name}", ("service", s.name)) for s in services]
        self.items.options = options
        self.overview.value = (
            f"<b>Feature repo</b> <code>{html.escape(str(store.repo_path))}</code>: "
            f"{len(entities)} entities, {len(views) - len(on_demand)} feature view versions, "
            f"{len(on_demand)} on-demand views, "
            + (
                f"{len(services)} feature service{'' if len(services) == 1 else 's'}: "
                + ", ".join(f"<code>{html.escape(s.name)}</code>" for s in services)
                + "."
                if services
                else f"<span style='color:{MUTED_COLOR}'>no feature services "
                "(fk.FeatureService).</span>"
            )
        )
        if options and self.items.value is None:
            first_view = next((o[1] for o in options if o[1][0] == "view"), options[0][1])
            self.items.value = first_view

    def select(self, feature: str) -> None:
        """Select ``feature`` (``"view:feature"`` or ``"view@v1:feature"``) as a click would."""
        from fskit.definitions import FeatureRef

        parsed = FeatureRef.parse(feature)
        view = self.store.get_feature_view(parsed.view, parsed.version)
        self.items.value = ("view", view.ref)
        self.features.value = parsed.feature

    # -- handlers --------------------------------------------------------------------------------
    def _on_item(self, change: dict[str, Any]) -> None:
        item = change["new"]
        self.features.options = []
        self.feature_details.value = ""
        show(self.chart)
        if item is None:
            self.details.value = ""
            return
        kind, name = item
        if kind == "entity":
            e = self.store.get_entity(name)
            users = [v.ref for v in self.store.list_feature_views() if name in _entity_names(v)]
            self.details.value = f"<b>Entity <code>{html.escape(e.name)}</code></b>" + _table(
                ["join keys", "description", "owner", "feature views"],
                [[", ".join(e.join_keys), e.description, e.owner, ", ".join(users)]],
            )
            return
        if kind == "service":
            service = self.store.get_feature_service(name)
            self.details.value = (
                f"<b>Feature service <code>{html.escape(service.name)}</code></b>"
                + _table(
                    ["", ""],
                    [["owner", service.owner or "-"], ["description", service.description or "-"]],
                )
                + _table(["feature (pinned at apply)"], [[r] for r in service.feature_refs])
            )
            self.features.options = list(service.feature_refs)
            return
        view_name, _, version = name.rpartition("@v")
        view = self.store.get_feature_view(view_name, int(version))
        rows = [
            ["entities", ", ".join(_entity_names(view)) or "-"],
            ["join keys", ", ".join(view.join_keys) or "-"],
            ["versions", ", ".join(f"v{n}" for n in self.store.registry.versions(view.name))],
            ["ttl", format_timedelta(view.ttl)],
            ["freshness SLA", format_timedelta(getattr(view, "freshness_sla", None))],
            ["online", getattr(view, "online", "-")],
            ["owner", view.owner or "-"],
            ["description", view.description or "-"],
        ]
        if hasattr(view, "request_schema"):
            rows.insert(0, ["sources", ", ".join(str(s) for s in view.sources)])
            rows.insert(1, ["request fields", ", ".join(f.name for f in view.request_schema)])
        self.details.value = f"<b>Feature view <code>{html.escape(view.ref)}</code></b>" + _table(
            ["", ""], rows
        )
        self.features.options = list(view.feature_names)

    def _on_feature(self, change: dict[str, Any]) -> None:
        feature = change["new"]
        item = self.items.value
        if not feature or item is None or item[0] not in ("view", "service"):
            self.selected, self.info, self.statistics = "", {}, None
            return
        # a view lists its features' names, a service its pinned refs ("view@v1:feature")
        view_ref, feature = (item[1], feature) if item[0] == "view" else feature.rsplit(":", 1)
        ref = f"{view_ref}:{feature}"
        self.selected = ref
        self.info = self._describe(view_ref, feature)
        rows = [[k.replace("_", " "), v] for k, v in self.info.items() if k != "ref"]
        self.feature_details.value = f"<b>Feature <code>{html.escape(ref)}</code></b>" + _table(
            ["", ""], rows
        )
        self.statistics = self._call("Profile feature", self.store.feature_statistics, ref)
        if self.statistics is None:
            show(self.chart)
            return
        summary = self.statistics.summary.with_columns(pl.col("value").round(4))
        show(self.chart, summary, self.statistics.chart())

    def _describe(self, view_ref: str, feature: str) -> dict[str, Any]:
        view_name, _, version = view_ref.rpartition("@v")
        view = self.store.get_feature_view(view_name, int(version))
        field = next((f for f in view.schema or () if f.name == feature), None)
        log = self.store.materialization_log()
        runs = log.filter(pl.col("view") == view_ref) if "view" in log.columns else log.clear()
        last = runs.tail(1).to_dicts()[0] if runs.height else None
        watermark = self.store.watermarks().get(view_ref)
        sla = getattr(view, "freshness_sla", None)
        if watermark is None:
            freshness = "not materialized"
        elif sla is None:
            freshness = f"materialized up to {watermark:%Y-%m-%d %H:%M} UTC ({_age(watermark)})"
        else:
            late = datetime.now(UTC) - watermark > sla
            freshness = (
                f"materialized up to {watermark:%Y-%m-%d %H:%M} UTC ({_age(watermark)}): "
                + ("BEHIND its SLA" if late else "within its SLA")
            )
        return {
            "ref": f"{view_ref}:{feature}",
            "description": (field.description if field else "") or view.description or "-",
            "owner": view.owner or "-",
            "dtype": str(field.dtype) if field else "-",
            "ttl": format_timedelta(view.ttl),
            "freshness_sla": format_timedelta(sla),
            "freshness": freshness,
            "last_materialization": (
                "never"
                if last is None
                else f"{last['status']}, {last['rows']:,} rows, finished "
                f"{last['finished_at']:%Y-%m-%d %H:%M:%S} UTC ({_age(last['finished_at'])})"
            ),
        }


def _entity_names(view: Any) -> list[str]:
    return [e.name for e in getattr(view, "entities", ())]


def _n_versions(views: list[Any], name: str) -> int:
    return sum(v.name == name for v in views)
