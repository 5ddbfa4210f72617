"""Prometheus metrics in the text exposition format, written by hand (no dependency).

Each worker counts in memory and, about once a second, writes a snapshot to the server's run
directory; ``/metrics`` answers the sum over all workers (its own live counts plus the others'
snapshots), so a scrape gives the same totals whichever worker it reaches.

Metrics (``model``, ``version`` and ``route`` labels on the per-version ones)::

    fskit_requests_total{model,version,route,code}      scoring requests per version
    fskit_request_duration_seconds{model,version,route} histogram of their latency
    fskit_predictions_total{model,version,route}        rows scored
    fskit_errors_total{model,version,kind}              failed requests by kind
    fskit_degraded_predictions_total{model,version}     rows answered with defaults
    fskit_http_requests_total{endpoint,code}            every HTTP request
    fskit_batches_total{model}                          /predict batches scored together
    fskit_batched_requests_total{model}                 requests in them (ratio: mean batch)
    fskit_deployment_info{model,stable,canary,...}      the deployment a worker serves (gauge)
"""

from __future__ import annotations

import json
import math
import os
import threading
from bisect import bisect_left
from pathlib import Path
from typing import Any

__all__ = ["Metrics", "parse_prometheus"]

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

HELP = {
    "fskit_requests_total": ("counter", "Scoring requests, per model version and route."),
    "fskit_request_duration_seconds": (
        "histogram",
        "Latency of scoring requests in seconds, per model version and route.",
    ),
    "fskit_predictions_total": ("counter", "Rows scored, per model version and route."),
    "fskit_errors_total": ("counter", "Failed requests, per model version and kind."),
    "fskit_degraded_predictions_total": (
        "counter",
        "Rows answered with defaults because the online store was unavailable.",
    ),
    "fskit_http_requests_total": ("counter", "HTTP requests per endpoint and status code."),
    "fskit_batches_total": ("counter", "Scoring batches of /predict requests (dynamic batching)."),
    "fskit_batched_requests_total": ("counter", "/predict requests scored in those batches."),
    "fskit_deployment_info": ("gauge", "The deployment this server serves (value 1)."),
}

Labels = tuple[tuple[str, str], ...]


def _labels(**labels: object) -> Labels:
    return tuple((k, str(v)) for k, v in labels.items())


class Metrics:
    """Counters, histograms and info gauges of one worker; thread-safe."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = {}
        self._histograms: dict[str, dict[Labels, list[float]]] = {}  # buckets..., sum, count
        self._info: dict[str, dict[Labels, float]] = {}
        self._dirty = False
        self._scoring_keys: dict[tuple[str, object, str], tuple[Labels, Labels]] = {}

    # -- recording ---------------------------------------------------------------------------
    def inc(self, name: str, value: float = 1.0, **labels: object) -> None:
        key = _labels(**labels)
        with self._lock:
            series = self._counters.setdefault(name, {})
            series[key] = series.get(key, 0.0) + value
            self._dirty = True

    def observe(self, name: str, seconds: float, **labels: object) -> None:
        key = _labels(**labels)
        with self._lock:
            series = self._histograms.setdefault(name, {})
            row = series.get(key)
            if row is None:
                row = series[key] = [0.0] * (len(BUCKETS) + 3)
            index = bisect_left(BUCKETS, seconds)
            row[index] += 1  # non-cumulative; summed up when rendered
            row[-2] += seconds
            row[-1] += 1
            self._dirty = True

    def record_scoring(
        self, model: str, version: object, route: str, rows: int, seconds: float
    ) -> None:
        """One answered scoring request: ``fskit_requests_total`` (code 200),
        ``fskit_predictions_total`` (+ ``rows``) and the latency histogram, under one lock
        with label tuples built once per (model, version, route) — the per-request path."""
        keys = self._scoring_keys.get((model, version, route))
        if keys is None:
            keys = self._scoring_keys[model, version, route] = (
                _labels(model=model, version=version, route=route, code=200),
                _labels(model=model, version=version, route=route),
            )
        request_key, key = keys
        index = bisect_left(BUCKETS, seconds)
        with self._lock:
            counters = self._counters
            series = counters.setdefault("fskit_requests_total", {})
            series[request_key] = series.get(request_key, 0.0) + 1
            series = counters.setdefault("fskit_predictions_total", {})
            series[key] = series.get(key, 0.0) + rows
            histogram = self._histograms.setdefault("fskit_request_duration_seconds", {})
            row = histogram.get(key)
            if row is None:
                row = histogram[key] = [0.0] * (len(BUCKETS) + 3)
            row[index] += 1
            row[-2] += seconds
            row[-1] += 1
            self._dirty = True

    def set_info(self, name: str, **labels: object) -> None:
        with self._lock:
            self._info[name] = {_labels(**labels): 1.0}
            self._dirty = True

    # -- snapshots shared between workers ------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counters": {
                    n: [[list(k), v] for k, v in s.items()] for n, s in self._counters.items()
                },
                "histograms": {
                    n: [[list(k), list(v)] for k, v in s.items()]
                    for n, s in self._histograms.items()
                },
                "info": {n: [[list(k), v] for k, v in s.items()] for n, s in self._info.items()},
            }

    def write_snapshot(self, force: bool = False) -> None:
        """Write this worker's counts for the other workers (when changed, or ``force``)."""
        if self.directory is None or not (self._dirty or force):
            return
        self._dirty = False
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"metrics-{os.getpid()}.json"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.snapshot()))
        os.replace(tmp, path)

    def _merged(self) -> dict[str, Any]:
        snapshots = [self.snapshot()]
        if self.directory is not None and self.directory.is_dir():
            own = f"metrics-{os.getpid()}.json"
            for path in sorted(self.directory.glob("metrics-*.json")):
                if path.name == own:
                    continue
                try:
                    snapshots.append(json.loads(path.read_text()))
                except (OSError, ValueError):
                    continue
        counters: dict[str, dict[Labels, float]] = {}
        histograms: dict[str, dict[Labels, list[float]]] = {}
        info: dict[str, dict[Labels, float]] = {}
        for snap in snapshots:
            for name, series in snap["counters"].items():
                target = counters.setdefault(name, {})
                for key, value in series:
                    key = tuple(tuple(p) for p in key)
                    target[key] = target.get(key, 0.0) + value
            for name, series in snap["histograms"].items():
                target_h = histograms.setdefault(name, {})
                for key, row in series:
                    key = tuple(tuple(p) for p in key)
                    old = target_h.get(key)
                    target_h[key] = (
                        list(row) if old is None else [a + b for a, b in zip(old, row, strict=True)]
                    )
            for name, series in snap["info"].items():
                target = info.setdefault(name, {})
                for key, value in series:
                    target[tuple(tuple(p) for p in key)] = value
        return {"counters": counters, "histograms": histograms, "info": info}

    # -- exposition ---------------------------------------------------------------------------
    def render(self) -> str:
        """All workers' metrics in the Prometheus text format (version 0.0.4)."""
        merged = self._merged()
        lines: list[str] = []
        names = sorted({*merged["counters"], *merged["histograms"], *merged["info"]})
        for name in names:
            kind, text = HELP.get(name, ("untyped", name))
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")
            for key, value in sorted(merged["counters"].get(name, {}).items()):
                lines.append(f"{name}{_fmt_labels(key)} {_fmt(value)}")
            for key, value in sorted(merged["info"].get(name, {}).items()):
                lines.append(f"{name}{_fmt_labels(key)} {_fmt(value)}")
            for key, row in sorted(merged["histograms"].get(name, {}).items()):
                total = 0.0
                for bound, count in zip((*BUCKETS, math.inf), row, strict=False):
                    total += count
                    le = "+Inf" if bound == math.inf else repr(bound)
                    lines.append(f"{name}_bucket{_fmt_labels((*key, ('le', le)))} {_fmt(total)}")
                lines.append(f"{name}_sum{_fmt_labels(key)} {_fmt(row[-2])}")
                lines.append(f"{name}_count{_fmt_labels(key)} {_fmt(row[-1])}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt_labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}"


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def parse_prometheus(text: str) -> dict[tuple[str, Labels], float]:
    """Parse the text format back into ``{(name, labels): value}`` (for tests and widgets).

    >>> parse_prometheus('# TYPE a counter\\na{x="1"} 2\\nb 3.5\\n')
    {('a', (('x', '1'),)): 2.0, ('b', ()): 3.5}
    """
    out: dict[tuple[str, Labels], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        if "{" in head:
            name, _, rest = head.partition("{")
            labels = []
            body = rest[:-1]
            while body:
                key, _, body = body.partition('="')
                chars, i = [], 0
                while body[i] != '"':
                    if body[i] == "\\":
                        i += 1
                        chars.append({"n": "\n"}.get(body[i], body[i]))
                    else:
                        chars.append(body[i])
                    i += 1
                labels.append((key, "".join(chars)))
                body = body[i + 1 :].lstrip(",")
            out[(name, tuple(labels))] = float(value)
        else:
            out[(head, ())] = float(value)
    return out
