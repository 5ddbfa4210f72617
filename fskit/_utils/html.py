"""Small HTML renderings for notebook ``_repr_html_`` methods."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from fskit._utils.dtypes import dtype_to_str

if TYPE_CHECKING:
    from fskit.definitions import FeatureView


def table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td style='text-align:left'>{html.escape(str(c))}</td>" for c in row)
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def definition_html(view: FeatureView) -> str:
    from fskit.definitions import format_timedelta

    meta = [
        ["entities", ", ".join(e.name for e in view.entities)],  # type: ignore[union-attr]
        ["join keys", ", ".join(view.join_keys)],
        ["source", type(view.source).__name__],
        ["ttl", format_timedelta(view.ttl)],
        ["freshness SLA", format_timedelta(view.freshness_sla)],
        ["online", view.online],
        ["owner", view.owner or "-"],
        ["description", view.description or "-"],
    ]
    fields = (
        [[f.name, dtype_to_str(f.dtype), f.description] for f in view.schema]
        if view.schema is not None
        else [["(inferred at apply)", "", ""]]
    )
    return (
        f"<b>FeatureView <code>{html.escape(view.ref)}</code></b>"
        + table(["property", "value"], meta)
        + table(["feature", "dtype", "description"], fields)
    )
