"""A design review of a feature repo, checked against the repo itself.

A feature store design review asks the same questions every time: are the entities and
features documented and owned, can the offline sources be read and do they record when
values became known, is the online store materialized on a schedule and within its
freshness SLA, how are models served, is anything watching for drift, and have the failure
modes been exercised. :func:`design_review` answers the ones a repo can answer about itself
and says how to fix each gap; the rest it marks for a human.

>>> import tempfile, fskit as fk
>>> report = design_review(fk.FeatureStore(tempfile.mkdtemp()))
>>> report.items.filter(pl.col("item") == "entities defined")["status"].item()
'fail'
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from fskit.store import FeatureStore

__all__ = ["ReviewReport", "design_review"]

PASS, WARN, FAIL, MANUAL = "pass", "warn", "fail", "manual"
_COLORS = {PASS: "#1a7f37", WARN: "#9a6700", FAIL: "#cf222e", MANUAL: "#57606a"}


@dataclass(frozen=True)
class ReviewReport:
    """One row per checklist item: area, item, status (pass/warn/fail/manual), detail, fix."""

    items: pl.DataFrame

    @property
    def score(self) -> str:
        counts = self.items["status"].value_counts()
        passed = counts.filter(pl.col("status") == PASS)["count"].sum()
        checked = counts.filter(pl.col("status") != MANUAL)["count"].sum()
        return f"{passed}/{checked} checks pass"

    def __repr__(self) -> str:
        lines = [f"Design review: {self.score}"]
        for row in self.items.iter_rows(named=True):
            lines.append(f"  [{row['status']:>6}] {row['area']}: {row['item']} — {row['detail']}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(r['area'])}</td><td>{html.escape(r['item'])}</td>"
            f"<td style='color:{_COLORS[r['status']]};font-weight:bold'>{r['status']}</td>"
            f"<td>{html.escape(r['detail'])}</td><td>{html.escape(r['fix'] or '')}</td></tr>"
            for r in self.items.iter_rows(named=True)
        )
        return (
            f"<b>Design review</b>: {self.score}<table><tr><th>area</th><th>item</th>"
            f"<th>status</th><th>detail</th><th>fix</th></tr>{rows}</table>"
        )


def design_review(store: FeatureStore, *, now: datetime | None = None) -> ReviewReport:
    """Check the repo behind ``store`` against the design review checklist.

    Views are judged by their latest version; ``now`` (default: the current time) is when
    freshness is measured.
    """
    now = now or datetime.now(UTC)
    items: list[dict[str, Any]] = []

    def add(area: str, item: str, status: str, detail: str, fix: str = "") -> None:
        items.append({"area": area, "item": item, "status": status, "detail": detail, "fix": fix})

    entities = store.list_entities()
    # the latest version of each view: older ones stay applied for the models trained on them
    latest = {v.name: v for v in store.list_feature_views()}
    views = list(latest.values())
    stored = [v for v in views if hasattr(v, "entities")]  # not on-demand
    online = [v for v in stored if v.online]

    # -- entities and features ----------------------------------------------------------------
    add(
        "entities",
        "entities defined",
        PASS if entities else FAIL,
        f"{len(entities)} entities: {[e.name for e in entities]}",
        "" if entities else "define fk.Entity objects and apply them",
    )
    undocumented = [e.name for e in entities if not e.description]
    add(
        "entities",
        "entities documented",
        PASS if entities and not undocumented else WARN,
        f"without description: {undocumented}" if undocumented else "all described",
        "give each Entity a description=" if undocumented else "",
    )
    no_doc = [v.ref for v in views if not v.description]
    no_owner = [v.ref for v in views if not v.owner]
    add(
        "features",
        "feature views documented and owned",
        FAIL if not views else (PASS if not no_doc and not no_owner else WARN),
        f"no description: {no_doc}; no owner: {no_owner}"
        if no_doc or no_owner
        else f"{len(views)} views, all described and owned",
        "set description= and owner= on every view" if no_doc or no_owner else "",
    )
    # -- offline store ------------------------------------------------------------------------
    unreadable = []
    for view in stored:
        try:
            view.source.scan(store.repo_path).collect_schema()
        except Exception as exc:  # a review reports, it does not raise
            unreadable.append(f"{view.ref} ({type(exc).__name__})")
    add(
        "offline store",
        "sources readable",
        PASS if stored and not unreadable else (FAIL if unreadable else WARN),
        f"unreadable: {unreadable}" if unreadable else f"{len(stored)} sources scanned",
        "fix the source paths, then re-apply" if unreadable else "",
    )
    no_created = [v.ref for v in stored if not v.source.created_timestamp_field]
    add(
        "offline store",
        "created timestamps recorded (late corrections cannot leak)",
        PASS if stored and not no_created else WARN,
        f"no created_timestamp_field: {no_created}" if no_created else "all views record it",
        "add created_timestamp_field= to the sources, and train with as_known_at=True"
        if no_created
        else "",
    )
    no_ttl = [v.ref for v in stored if v.ttl is None and type(v).__name__ == "FeatureView"]
    add(
        "offline store",
        "TTLs chosen deliberately",
        PASS if not no_ttl else WARN,
        f"no TTL (values never expire): {no_ttl}" if no_ttl else "every view has a TTL",
        "set ttl= unless the values truly never go stale (e.g. a signup profile)" if no_ttl else "",
    )
    # -- online store and materialization ---------------------------------------------------
    marks = store.watermarks()
    unmaterialized = [v.ref for v in online if v.ref not in marks]
    add(
        "online store",
        "online views materialized",
        PASS if online and not unmaterialized else (WARN if online else FAIL),
        f"never materialized: {unmaterialized}"
        if unmaterialized
        else (f"{len(online)} views materialized" if online else "no online views"),
        "run store.materialize_incremental(now) or `fskit materialize`" if unmaterialized else "",
    )
    no_sla = [v.ref for v in online if v.freshness_sla is None]
    add(
        "online store",
        "freshness SLA defined",
        PASS if online and not no_sla else WARN,
        f"no freshness_sla: {no_sla}" if no_sla else "every online view has one",
        "set freshness_sla= to what the model can tolerate" if no_sla else "",
    )
    late = [
        v.ref
        for v in online
        if v.freshness_sla is not None and v.ref in marks and now - marks[v.ref] > v.freshness_sla
    ]
    add(
        "online store",
        "materialized within the SLA",
        PASS if online and not late else WARN,
        f"watermark older than the SLA: {late}" if late else "all within their SLA",
        "schedule materialization more often than the SLA "
        "(store.schedule_materialization / `fskit materialize --every`)"
        if late
        else "",
    )
    log = store.materialization_log()
    runs = log.height
    failures = log.filter(pl.col("status") != "ok").height
    add(
        "materialization",
        "runs recorded",
        PASS if runs and not failures else (WARN if runs else FAIL),
        f"{runs} runs, {failures} failed",
        "investigate the failed runs in store.materialization_log()"
        if failures
        else ("" if runs else "materialize at least once"),
    )
    # -- serving and monitoring --------------------------------------------------------------
    models = store.models.list()
    add(
        "serving",
        "models registered with their feature versions",
        PASS if models.height else WARN,
        f"{models.height} model versions" if models.height else "no models registered",
        "" if models.height else "fk.train(...).register(name)",
    )
    deployed = sorted(p.stem for p in (store.repo_path / "serving").glob("*.json"))
    add(
        "serving",
        "serving pattern chosen (deployment state in the repo)",
        PASS if deployed else WARN,
        f"deployed: {deployed}" if deployed else "nothing deployed",
        "" if deployed else "fk.serve(store, model=...) or fk.predict_batch for the batch pattern",
    )
    logged = sorted(p.name for p in (store.repo_path / "serving" / "logs").glob("*") if p.is_dir())
    add(
        "monitoring",
        "predictions logged for drift checks",
        PASS if logged else WARN,
        f"prediction logs: {logged}" if logged else "no prediction log",
        "" if logged else "serve through fk.serve: every prediction is logged to Parquet",
    )
    add(
        "monitoring",
        "drift reference stored with each model",
        PASS if models.height else WARN,
        "each registered model carries its training reference profile"
        if models.height
        else "no model, no reference",
    )
    add(
        "failure modes",
        "store down, missing entity, stale data exercised",
        MANUAL,
        "run fk.simulate.replay with faults (notebook 3) and decide the fallback",
    )
    schema = {
        "area": pl.String,
        "item": pl.String,
        "status": pl.String,
        "detail": pl.String,
        "fix": pl.String,
    }
    return ReviewReport(pl.DataFrame(items, schema=schema))
