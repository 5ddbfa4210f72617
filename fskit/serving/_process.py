"""Launching and stopping a model server process: :func:`serve` and :class:`ServerHandle`.

``fk.serve(store, model="fraud")`` starts ``python -m fskit.serving`` in its own process group
(uvicorn inside; ``workers > 1`` forks several worker processes sharing one socket), waits until
``/v2/health/ready`` answers, and returns a handle. The server binds 127.0.0.1 and a free port
unless told otherwise; binding any non-loopback address needs ``allow_remote=True``.

No orphans: ``handle.stop()`` sends SIGTERM (the server finishes its requests, flushes the
prediction log) and kills the process group if it has not exited in time; an ``atexit`` hook
and the handle's ``__del__`` stop servers this process started, and the server itself exits
when the process that launched it dies (a crashed or closed notebook kernel), so a server never
outlives its notebook. Keep a reference to the handle while you use the server.

``handle.stats()`` reads the server's ``/metrics`` into a :class:`ServerStats`: requests, rows,
errors and latency percentiles per model version; ``handle.stats(since=earlier)`` adds the rate
and mean latency over the interval between two readings.
"""

from __future__ import annotations

import atexit
import contextlib
import inspect
import ipaddress
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from fskit.serving._app import OPTIONS_ENV, TOKEN_ENV, ServerOptions
from fskit.serving._errors import ServingError
from fskit.serving._metrics import parse_prometheus
from fskit.serving._models import check_model_name, model_registry

if TYPE_CHECKING:
    from fskit.store import FeatureStore

__all__ = ["ServerHandle", "ServerStats", "serve"]

_HANDLES: weakref.WeakSet[ServerHandle] = weakref.WeakSet()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_remote: bool) -> str:
    if not isinstance(host, str) or not host:
        raise ServingError(f"host must be an address like '127.0.0.1', got {host!r}")
    if not _is_loopback(host) and not allow_remote:
        raise ServingError(
            f"refusing to bind {host!r}: the server would be reachable from other machines. "
            "Pass allow_remote=True (CLI: --allow-remote) if you mean it, ideally with a token."
        )
    return host


# -- what a server has done, from its /metrics ----------------------------------------------
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


class ServerHandle:
    """A running model server started by :func:`serve`.

    Attributes
    ----------
    url : str
        ``http://127.0.0.1:<port>``.
    pid : int
        The server's main process (the leader of its process group).
    model : str
    log_path : pathlib.Path
        The server's stdout/stderr.
    """

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        *,
        url: str,
        model: str,
        log_path: Path,
        token: str | None,
        run_dir: Path,
        workers: int = 1,
    ) -> None:
        self._process = process
        self.pid = process.pid
        self.url = url
        self.model = model
        self.log_path = log_path
        self._token = token
        self._run_dir = run_dir
        self.workers = workers
        self.returncode: int | None = None

    # -- HTTP helpers -------------------------------------------------------------------------
    def _request(
        self, method: str, path: str, body: Any = None, *, timeout: float = 10.0
    ) -> tuple[int, dict[str, str], bytes]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def _json(self, method: str, path: str, body: Any = None) -> Any:
        status, _, raw = self._request(method, path, body)
        payload = json.loads(raw)
        if status >= 400:
            raise ServingError(
                f"{method} {path} answered {status}: {payload.get('error', payload)}"
            )
        return payload

    def predict(self, entities: Any, **options: Any) -> dict[str, Any]:
        """``POST /predict`` with ``entities`` (a dict or a list of dicts); the JSON answer."""
        if isinstance(entities, dict) and not any(isinstance(v, list) for v in entities.values()):
            entities = [entities]
        return self._json("POST", "/predict", {"entities": entities, **options})

    def metrics(self) -> str:
        """The ``/metrics`` text."""
        status, _, raw = self._request("GET", "/metrics")
        if status != 200:
            raise ServingError(f"GET /metrics answered {status}: {raw[:200]!r}")
        return raw.decode()

    def stats(self, since: ServerStats | None = None) -> ServerStats:
        """Requests, rows, errors and latency per model version, from ``GET /metrics``.

        Pass an earlier reading as ``since`` for the rate and mean latency in between::

            before = server.stats()
            ...  # traffic
            server.stats(since=before).rows_per_s

        See :class:`ServerStats`.
        """
        sample = parse_prometheus(self.metrics())
        return ServerStats.from_sample(self.model, sample, at=time.monotonic(), since=since)

    def deployment(self) -> dict[str, Any]:
        """The deployment the server sees (``GET /deployment``)."""
        return self._json("GET", "/deployment")

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def health(self, timeout: float = 2.0) -> dict[str, Any]:
        """``{"live": ..., "ready": ..., "pid": ..., "url": ...}``; never raises."""
        out: dict[str, Any] = {"url": self.url, "pid": self.pid, "running": self.running}
        try:
            status, _, raw = self._request("GET", "/v2/health/ready", timeout=timeout)
            out.update(json.loads(raw))
            out["live"], out["ready"] = True, status == 200
        except (OSError, ValueError):
            out["live"], out["ready"] = False, False
        return out

    def wait_ready(self, timeout: float = 30.0) -> ServerHandle:
        """Block until ``/v2/health/ready`` answers 200; raise with the server log if it dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise ServingError(
                    f"the model server exited with code {self._process.returncode} before it "
                    f"was ready; its log ({self.log_path}):\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError, ValueError):
                status, _, _ = self._request("GET", "/v2/health/ready", timeout=1.0)
                up = len(list(self._run_dir.glob("worker-*.ready")))
                if status == 200 and up >= self.workers:
                    return self
            time.sleep(0.05)
        raise ServingError(
            f"the model server at {self.url} was not ready after {timeout} s; its log:\n"
            f"{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` s for a clean exit, then kill the process group."""
        process = self._process
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
                process.wait(timeout=10)
        # any worker left behind (the leader was killed) goes with the group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.returncode = process.returncode
        _HANDLES.discard(self)
        return self.returncode

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if self._process.poll() is None:
                self.stop(timeout=5)

    def __repr__(self) -> str:
        state = "running" if self.running else f"stopped ({self._process.returncode})"
        return f"ServerHandle(model={self.model!r}, url={self.url!r}, pid={self.pid}, {state})"

    def _repr_html_(self) -> str:
        from html import escape

        state = "running" if self.running else f"stopped ({self._process.returncode})"
        return (
            f"<b>Model server</b> <code>{escape(self.model)}</code> at "
            f"<a href='{escape(self.url)}/openapi.json' target='_blank'>{escape(self.url)}</a>, "
            f"pid {self.pid}, {escape(state)}"
        )


def _stop_all() -> None:
    for handle in list(_HANDLES):
        with contextlib.suppress(Exception):
            handle.stop(timeout=5)


atexit.register(_stop_all)


def serve(
    store: FeatureStore | str | os.PathLike[str],
    model: str,
    *,
    version: int | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    workers: int = 1,
    token: str | None = None,
    on_unavailable: str = "degrade",
    defaults: dict[str, Any] | None = None,
    batch_scores: str | os.PathLike[str] | None = None,
    batch_max_age: timedelta | None = None,
    log_predictions: bool = True,
    log_flush_seconds: float = 5.0,
    allow_remote: bool = False,
    timeout: float = 60.0,
    log_level: str = "warning",
) -> ServerHandle:
    """Start a model server for ``model`` in its own process; return once it is ready.

    Parameters
    ----------
    store
        The feature store (or its repo path): definitions, online store, model registry.
    model
        A registered model name. If it was never deployed, its latest version becomes stable.
    version
        Serve this version: if the model was never deployed, it becomes stable (instead of
        the latest); if it is already stable, nothing changes. If another version is stable,
        :class:`DeploymentError` is raised before any process starts, since the deployment
        is shared with every running server of the model: switch with
        ``fk.serving.promote(store, model, version=N)`` or ``deploy(..., as_stable=True)``.
        The server then follows the deployment, like every server (canary, promote, rollback).
    host, port
        Where to listen: 127.0.0.1 and a free port by default.
    workers
        Server processes sharing the port (uvicorn's ``--workers``); all read the deployment
        from the repo, so canary, promote and rollback agree across them.
    token
        If set, requests need ``Authorization: Bearer <token>`` (health checks excepted).
    on_unavailable
        Online store down: ``"degrade"`` answers with ``defaults`` and ``"degraded": true``;
        ``"error"`` answers 503.
    defaults
        ``{feature: value}`` used for features whose view could not be read; a feature not
        given is sent to the model as missing.
    batch_scores, batch_max_age
        Answer from precomputed scores (see :func:`batch_score`) when one is fresh enough,
        else score live.
    log_predictions, log_flush_seconds
        Append every served row to the prediction log in the repo.
    allow_remote
        Allow a ``host`` other than loopback.

    Returns
    -------
    ServerHandle
        ``url``, ``pid``, ``health()``, ``predict()``, ``stop()``.
    """
    from fskit.store import FeatureStore

    if not isinstance(store, FeatureStore):
        store = FeatureStore(store)
    check_model_name(model)
    check_host(host, allow_remote)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ServingError(f"workers must be an int >= 1, got {workers!r}")
    if on_unavailable not in ("degrade", "error"):
        raise ServingError(f"on_unavailable must be 'degrade' or 'error', got {on_unavailable!r}")
    model_registry(store).get(model)  # a clear error now rather than in the server's log
    if version is not None:  # here, not in the server: a refusal must start no process
        from fskit.serving._state import ensure_deployed

        ensure_deployed(store, model, version)

    logs = store.repo_path / "serving" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"server-{model}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    port_dir = Path(tempfile.mkdtemp(prefix="fskit-serve-"))
    port_file = port_dir / "port.json"
    command = [
        sys.executable, "-m", "fskit.serving",
        "--repo", str(store.repo_path),
        "--model", model,
        "--host", host,
        "--port", str(port or 0),
        "--workers", str(workers),
        "--on-unavailable", on_unavailable,
        "--log-level", log_level,
        "--log-flush-seconds", str(log_flush_seconds),
        "--port-file", str(port_file),
        "--exit-with-parent", str(os.getpid()),
    ]  # fmt: skip
    if allow_remote:
        command.append("--allow-remote")
    if defaults:
        command += ["--defaults", json.dumps(defaults)]
    if batch_scores is not None:
        command += ["--batch-scores", str(Path(batch_scores).absolute())]
    if batch_max_age is not None:
        command += ["--batch-max-age", f"{batch_max_age.total_seconds()}s"]
    if not log_predictions:
        command.append("--no-log")
    env = dict(os.environ)
    env.pop(TOKEN_ENV, None)
    if token:
        env[TOKEN_ENV] = token  # not on the command line, where `ps` shows it
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    try:
        while not port_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace").splitlines()[-30:]
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                raise ServingError(
                    f"the model server did not start (exit code {process.poll()}); its log "
                    f"({log_path}):\n" + "\n".join(tail)
                )
            time.sleep(0.02)
        info = json.loads(port_file.read_text())
    finally:
        shutil.rmtree(port_dir, ignore_errors=True)
    handle = ServerHandle(
        process, url=info["url"], model=model, log_path=log_path, token=token,
        run_dir=Path(info["run_dir"]), workers=workers,
    )  # fmt: skip
    _HANDLES.add(handle)
    try:
        handle.wait_ready(max(1.0, deadline - time.monotonic()))
    except BaseException:
        handle.stop(timeout=5)
        raise
    return handle


# -- the server process ------------------------------------------------------------------------
def _watch_parent(parent: int) -> None:
    """Ask this server to stop when the process that launched it is gone."""

    def run() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=run, name="fskit-parent-watch", daemon=True).start()


def run_server(
    options: ServerOptions,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    token: str | None = None,
    allow_remote: bool = False,
    port_file: str | None = None,
    exit_with_parent: int | None = None,
    log_level: str = "info",
    version: int | None = None,
) -> int:
    """Run a model server in this process until SIGTERM/SIGINT (``fskit serve``).

    ``version`` is :func:`serve`'s: checked (and deployed if the model never was) before the
    socket is bound.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from fskit.serving._state import ensure_deployed
    from fskit.store import FeatureStore

    check_host(host, allow_remote)
    store = FeatureStore(options.repo)
    state = ensure_deployed(store, options.model, version)
    run_dir = store.repo_path / "serving" / "run" / f"{options.model}-{os.getpid()}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    options = ServerOptions(**{**json.loads(options.to_json()), "run_dir": str(run_dir)})
    os.environ[OPTIONS_ENV] = options.to_json()
    if token:
        os.environ[TOKEN_ENV] = token
    else:
        os.environ.pop(TOKEN_ENV, None)

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
    # sockets that say they are TCP; with proto 0 every answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise ServingError(f"cannot listen on {host}:{port}: {exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    bound = sock.getsockname()[1]
    url_host = f"[{host}]" if ":" in host else host
    url = f"http://{url_host}:{bound}"
    config = uvicorn.Config(
        "fskit.serving._app:app_from_env",
        factory=True,
        host=host,
        port=bound,
        workers=workers,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    print(
        f"fskit: serving model {options.model!r} ({state}) at {url} with {workers} worker(s)",
        flush=True,
    )
    if port_file:
        tmp = Path(port_file).with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"url": url, "port": bound, "pid": os.getpid(), "run_dir": str(run_dir)})
        )
        os.replace(tmp, port_file)
    if exit_with_parent:
        _watch_parent(exit_with_parent)
    # uvicorn re-raises the signal that stopped it once it has shut down; with a no-op
    # handler in place that ends run() normally, so the cleanup below runs and we exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        if workers == 1:
            uvicorn.Server(config).run(sockets=[sock])
        elif "target" in inspect.signature(Multiprocess).parameters:  # older uvicorn
            Multiprocess(config, target=uvicorn.Server(config).run, sockets=[sock]).run()  # type: ignore[call-arg]
        else:
            Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0
