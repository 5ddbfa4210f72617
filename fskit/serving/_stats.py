"""What a model server has done, read from its ``/metrics``: :class:`ServerStats`.

``ServerHandle.stats()`` builds one; ``stats(since=earlier)`` adds the rate and mean latency
over the interval between two readings. Percentiles come from the latency histogram the way
Prometheus' ``histogram_quantile`` estimates them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from fskit.serving._errors import ServingError

__all__ = ["ServerStats"]

Sample = Mapping[tuple[str, tuple[tuple[str, str], ...]], float]

#: The columns of :attr:`ServerStats.versions`, one row per model version.
VERSION_STATS_SCHEMA = pl.Schema(
    {
        "version": pl.Int64,
        "requests": pl.Int64,
        "rows": pl.Int64,
        "errors": pl.Int64,
        "latency_mean_ms": pl.Float64,
        "latency_p50_ms": pl.Float64,
        "latency_p95_ms": pl.Float64,
        "latency_p99_ms": pl.Float64,
    }
)
_LATENCY = "fskit_request_duration_seconds"


def _quantile(q: float, buckets: dict[float, float]) -> float | None:
    """``q`` of a cumulative histogram ``{upper bound: count}``, in ms (as Prometheus does).

    Linear within the bucket that holds the rank; a rank in the ``+Inf`` bucket answers the
    largest finite bound.

    >>> _quantile(0.5, {0.001: 2.0, 0.0025: 4.0, float("inf"): 4.0})
    1.0
    >>> _quantile(0.99, {0.001: 0.0, 2.5: 1.0, float("inf"): 10.0})
    2500.0
    """
    total = buckets.get(math.inf, 0.0)
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in sorted(buckets):
        count = buckets[bound]
        if count >= rank:
            if bound == math.inf:
                return 1000 * lower
            inside = count - below
            fraction = 1.0 if inside <= 0 else (rank - below) / inside
            return 1000 * (lower + (bound - lower) * fraction)
        lower, below = bound, count
    return 1000 * lower


@dataclass(frozen=True, kw_only=True)
class ServerStats:
    """What a model server has done for ``model``, read from its ``/metrics`` at one moment.

    Made by :meth:`ServerHandle.stats` (or :meth:`from_sample` on a parsed ``/metrics``).
    Counts are totals since the server started, summed over its workers; ``rows_per_s`` and
    ``latency_ms`` cover the interval since the earlier reading passed as ``since``.

    Attributes
    ----------
    model : str
    at : float
        When it was read (``time.monotonic()`` seconds).
    seconds : float | None
        The interval since the earlier reading (``None`` without one).
    requests, rows, errors : int
        Scoring requests, rows scored, failed requests (``fskit_errors_total``, including
        bad requests no version answered).
    rows_per_s : float | None
        Rows scored per second over the interval (``None`` without an earlier reading).
    latency_ms : float | None
        Mean request latency over the interval, or since the start without an earlier
        reading; ``None`` when no request came in.
    latency_total_s : float
        The latency of all requests since the start, added up (the histogram's sum).
    rows_by_route : dict[str, int]
        Rows scored per ``"v<version> <route>"`` (``"v2 canary"``): the canary share in
        real traffic.
    versions : polars.DataFrame
        One row per model version: ``requests``, ``rows``, ``errors`` and the latency mean
        and percentiles ``latency_p50_ms``, ``latency_p95_ms``, ``latency_p99_ms`` since the
        start (estimated within the histogram's buckets, 0.5 ms to 2.5 s, as Prometheus'
        ``histogram_quantile`` does).
    sample : dict
        The parsed ``/metrics`` (:func:`fskit.serving.parse_prometheus`) it was made from.

    Examples
    --------
    >>> from fskit.serving import parse_prometheus
    >>> sample = parse_prometheus(
    ...     'fskit_predictions_total{model="m",version="1",route="stable"} 10\\n'
    ...     'fskit_request_duration_seconds_count{model="m",version="1",route="stable"} 4\\n'
    ...     'fskit_request_duration_seconds_sum{model="m",version="1",route="stable"} 0.02\\n'
    ... )
    >>> stats = ServerStats.from_sample("m", sample, at=0.0)
    >>> stats.requests, stats.rows, stats.latency_ms, stats.rows_by_route
    (4, 10, 5.0, {'v1 stable': 10})
    """

    model: str
    at: float
    seconds: float | None = None
    requests: int = 0
    rows: int = 0
    errors: int = 0
    rows_per_s: float | None = None
    latency_ms: float | None = None
    latency_total_s: float = 0.0
    rows_by_route: dict[str, int] = field(default_factory=dict)
    versions: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema=VERSION_STATS_SCHEMA),
        repr=False,
        compare=False,
    )
    sample: Sample = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_sample(
        cls, model: str, sample: Sample, *, at: float, since: ServerStats | None = None
    ) -> ServerStats:
        """The stats of ``model`` in a parsed ``/metrics`` read at ``at``.

        ``since`` is an earlier reading of the same server; if the counters went down since
        (the server restarted), it is ignored.
        """
        if since is not None and since.model != model:
            raise ServingError(
                f"since= is a reading of model {since.model!r}, not {model!r}: pass an earlier "
                f"stats() of the same server"
            )
        requests: dict[int | None, float] = {}
        rows: dict[int | None, float] = {}
        errors: dict[int | None, float] = {}
        latency_sum: dict[int | None, float] = {}
        buckets: dict[int | None, dict[float, float]] = {}
        by_route: dict[str, float] = {}
        for (name, labels), value in sample.items():
            tags = dict(labels)
            if tags.get("model") != model:
                continue
            label = tags.get("version", "")
            version = int(label) if label.isdigit() else None
            if name == "fskit_predictions_total":
                rows[version] = rows.get(version, 0.0) + value
                key = f"v{label} {tags.get('route')}"
                by_route[key] = by_route.get(key, 0.0) + value
            elif name == f"{_LATENCY}_count":
                requests[version] = requests.get(version, 0.0) + value
            elif name == f"{_LATENCY}_sum":
                latency_sum[version] = latency_sum.get(version, 0.0) + value
            elif name == f"{_LATENCY}_bucket":
                bound = math.inf if tags.get("le") == "+Inf" else float(tags.get("le", "nan"))
                per = buckets.setdefault(version, {})
                per[bound] = per.get(bound, 0.0) + value  # summed over routes
            elif name == "fskit_errors_total":
                errors[version] = errors.get(version, 0.0) + value
        total_requests, total_rows = sum(requests.values()), sum(rows.values())
        total_latency = sum(latency_sum.values())
        if since is not None and (total_requests < since.requests or total_rows < since.rows):
            since = None  # the server restarted: its counters began again
        seconds = None if since is None else at - since.at
        new_requests = total_requests - (0 if since is None else since.requests)
        new_latency = total_latency - (0.0 if since is None else since.latency_total_s)
        numbered = sorted(v for v in {*requests, *rows, *errors} if v is not None)
        versions = pl.DataFrame(
            [
                {
                    "version": v,
                    "requests": int(requests.get(v, 0)),
                    "rows": int(rows.get(v, 0)),
                    "errors": int(errors.get(v, 0)),
                    "latency_mean_ms": (
                        1000 * latency_sum.get(v, 0.0) / requests[v] if requests.get(v) else None
                    ),
                    "latency_p50_ms": _quantile(0.5, buckets.get(v, {})),
                    "latency_p95_ms": _quantile(0.95, buckets.get(v, {})),
                    "latency_p99_ms": _quantile(0.99, buckets.get(v, {})),
                }
                for v in numbered
            ],
            schema=VERSION_STATS_SCHEMA,
        )
        return cls(
            model=model,
            at=at,
            seconds=seconds,
            requests=int(total_requests),
            rows=int(total_rows),
            errors=int(sum(errors.values())),
            rows_per_s=(
                (total_rows - since.rows) / seconds
                if since is not None and seconds is not None and seconds > 0
                else None
            ),
            latency_ms=1000 * new_latency / new_requests if new_requests > 0 else None,
            latency_total_s=total_latency,
            rows_by_route={k: int(v) for k, v in sorted(by_route.items())},
            versions=versions,
            sample=dict(sample),
        )

    def __str__(self) -> str:
        def count(n: int, noun: str) -> str:
            return f"{n:,} {noun}" + ("" if n == 1 else "s")

        rate = "" if self.rows_per_s is None else f", {self.rows_per_s:.1f} rows/s"
        latency = "" if self.latency_ms is None else f", mean latency {self.latency_ms:.1f} ms"
        split = ", ".join(f"{k}: {v:,}" for k, v in self.rows_by_route.items()) or "no rows yet"
        return (
            f"{self.model}: {count(self.requests, 'request')}, {count(self.rows, 'row')}, "
            f"{count(self.errors, 'error')}{rate}{latency} ({split})"
        )

    def _repr_html_(self) -> str:
        from html import escape

        return f"<p><code>{escape(str(self))}</code></p>" + self.versions._repr_html_()
