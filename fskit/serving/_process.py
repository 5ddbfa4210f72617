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
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fskit.serving._app import OPTIONS_ENV, TOKEN_ENV, ServerOptions
from fskit.serving._errors import ServingError
from fskit.serving._metrics import parse_prometheus
from fskit.serving._models import check_model_name, model_registry
from fskit.serving._stats import ServerStats

if TYPE_CHECKING:
    from fskit.store import FeatureStore

__all__ = ["ServerHandle", "serve"]

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
