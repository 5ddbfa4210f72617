"""``DeployPanel``: launch the model server, try a prediction, run a canary, roll back.

Each button is one call of fskit's serving API:

==================  ==============================================================
Deploy              no server yet: ``fk.serving.serve(store, model)`` (a uvicorn process)
                    server running: ``fk.serving.deploy(store, model, version, share=...)``
canary slider       ``fk.serving.deploy(store, model, canary, share=...)`` (when a canary runs)
Promote             ``fk.serving.promote(store, model)``
Rollback            ``fk.serving.rollback(store, model)``
Predict ("try it")  ``server.predict(entity)`` (``POST /predict``)
Stop                ``server.stop()``
==================  ==============================================================

The live readout polls ``server.stats()`` (the server's ``/metrics``) and ``server.health()``
once a second in a background thread: requests, rows per second, mean latency over the last
interval, and the rows each version served (so the canary share is visible in real traffic).

What happens to the server when the notebook goes away
------------------------------------------------------
The server is a child process of the kernel, in its own process group. It never outlives the
kernel silently: ``Stop`` (or ``panel.close()``) stops it; a kernel that shuts down or
restarts normally stops it in fskit's ``atexit`` hook; a kernel that is killed (SIGKILL, a
crash) is noticed by the server itself, which watches its parent process and exits within
about a second. Re-running the cell that creates the panel leaves the previous panel's server
running until one of the above happens; click its Stop first, or call ``close()``.
"""

from __future__ import annotations

import html
import json
import threading
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

import fskit as fk

from ._base import (
    ERROR_COLOR,
    MUTED_COLOR,
    OK_COLOR,
    Panel,
    Result,
    button,
    hbox,
    note,
    plain_error,
)

if TYPE_CHECKING:
    from fskit.serving import Deployment, ServerHandle, ServerStats
    from fskit.store import FeatureStore

__all__ = ["DeployPanel"]


def _readout(stats: ServerStats) -> dict[str, Any]:
    """The panel's readout of a :class:`fskit.serving.ServerStats`."""
    return {
        "requests": stats.requests,
        "rows": stats.rows,
        "rows_per_s": stats.rows_per_s,
        "latency_ms": stats.latency_ms,
        "rows_by_version": dict(stats.rows_by_route),
    }


def _model_metadata(server: ServerHandle) -> dict[str, Any]:
    """``GET /v2/models/<model>`` (Open Inference Protocol): inputs, join keys, request fields.

    .. note:: The core's ``ServerHandle`` has no public method for this yet.
    """
    request = urllib.request.Request(f"{server.url}/v2/models/{server.model}")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def _parse_value(text: str, datatype: str | None) -> Any:
    text = text.strip()
    if text == "":
        return None
    if datatype == "BYTES":
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if datatype == "FP64" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


class DeployPanel(Panel):
    """Serve a registered model from a real local server process, and steer its traffic.

    Parameters
    ----------
    store
        The feature store (its model registry and online store).
    model
        The model to serve (default: the first registered one; pick another in the panel).
    example
        Values to pre-fill the "try it" box with, e.g. ``{"user_id": 7, "amount": 42.0}``.
    live
        Poll the server's metrics once a second in a background thread for the live readout.
        Without it, call :meth:`refresh_readout` yourself.

    Attributes
    ----------
    server : fskit.serving.ServerHandle | None
        The running server (``url``, ``pid``, ``health()``, ``stop()``).
    deployment : fskit.serving.Deployment | None
        The model's deployment after the last action (stable, canary, share, history).
    answer : dict | None
        The JSON answer of the last "try it" prediction.
    readout : dict | None
        The last live readout, from ``server.stats()``: ``requests``, ``rows``, ``rows_per_s``,
        ``latency_ms``, ``rows_by_version``, plus ``ready``.
    """

    server = Result(None, help="The running ServerHandle, or None.")
    deployment = Result(None, help="The model's Deployment after the last action.")
    answer = Result(None, help="The last /predict answer (JSON).")
    readout = Result(None, help="The last live readout (requests, rows/s, latency...).")

    def __init__(
        self,
        store: FeatureStore,
        *,
        model: str | None = None,
        example: Mapping[str, Any] | None = None,
        live: bool = True,
        interval: float = 1.0,
    ) -> None:
        self.store = store
        self.example = dict(example or {})
        self.live = live
        self.interval = interval
        self.inputs: dict[str, widgets.Text] = {}
        self._datatypes: dict[str, str] = {}
        self._thread: threading.Thread | None = None
        self._stop_polling = threading.Event()
        self._polled = threading.Condition()
        self._polls = 0
        self._last_stats: ServerStats | None = None
        self._syncing = False

        self.model = widgets.Dropdown(description="model")
        self.version = widgets.Dropdown(description="version", layout=widgets.Layout(width="180px"))
        self.refresh_button = button(
            icon="refresh",
            tooltip="Re-read the model registry",
            layout=widgets.Layout(width="40px"),
        )
        self.deploy_button = button("Deploy", button_style="primary", icon="rocket")
        self.stop_button = button("Stop", icon="stop", disabled=True)
        self.server_info = widgets.HTML()
        self.share = widgets.FloatSlider(
            value=0.1,
            min=0.0,
            max=1.0,
            step=0.05,
            description="canary share",
            readout_format=".0%",
            continuous_update=False,
            style={"description_width": "100px"},
            layout=widgets.Layout(width="360px"),
        )
        self.promote_button = button("Promote", icon="check", disabled=True)
        self.rollback_button = button("Rollback", icon="undo", disabled=True)
        self.inputs_box = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.predict_button = button(
            "Predict", icon="paper-plane", disabled=True, button_style="info"
        )
        self.answer_box = widgets.HTML()
        self.readout_box = widgets.HTML()
        super().__init__(
            [
                hbox(
                    self.model,
                    self.version,
                    self.refresh_button,
                    self.deploy_button,
                    self.stop_button,
                ),
                self.server_info,
                self.readout_box,
                hbox(self.share, self.promote_button, self.rollback_button),
                note(
                    "Deploy starts the server with the model's stable version (the latest "
                    "if never deployed). While it runs, Deploy sends the picked version to "
                    "the canary share; Promote makes the canary stable, Rollback drops it "
                    "(or returns to the previous stable)."
                ),
                widgets.HTML("<b>Try it</b>"),
                hbox(self.inputs_box, self.predict_button),
                self.answer_box,
            ]
        )
        self.model.observe(self._on_model, "value")
        self.refresh_button.on_click(lambda _: self.refresh_models())
        self.deploy_button.on_click(lambda _: self.deploy())
        self.stop_button.on_click(lambda _: self.stop())
        self.promote_button.on_click(lambda _: self.promote())
        self.rollback_button.on_click(lambda _: self.rollback())
        self.predict_button.on_click(lambda _: self.predict())
        self.share.observe(self._on_share, "value")
        self.refresh_models(prefer=model)

    # -- models ----------------------------------------------------------------------------------
    def refresh_models(self, prefer: str | None = None) -> None:
        """Re-read the model registry (after a Register in another panel)."""
        names = self.store.models.names()
        current = prefer or self.model.value
        self.model.options = names
        if names:
            self.model.value = current if current in names else names[0]
        self._on_model({"new": self.model.value})
        if not names:
            self._set_status("No registered model yet: train one and click Register.", MUTED_COLOR)

    def _on_model(self, change: dict[str, Any]) -> None:
        name = change["new"]
        if not name:
            self.version.options = []
            return
        versions = self.store.models.versions(name)
        self.version.options = [(f"v{v}", v) for v in versions]
        self.version.value = versions[-1] if versions else None
        self._set_deployment(fk.serving.status(self.store, name))

    # -- actions (one core call each) ---------------------------------------------------------
    def deploy(self) -> Any:
        """What the Deploy button does (see the module docstring)."""
        model, version = self.model.value, self.version.value
        if not model:
            self._refuse("Deploy", "no registered model: train one and click Register first")
            return None
        if self.server is None or not self.server.running:
            handle = self._call(
                f"Start the model server for {model!r}", fk.serving.serve, self.store, model
            )
            if handle is None:
                return None
            self.server = handle
            self._after_start()
            return handle
        if self.server.model != model:
            self._refuse(
                "Deploy",
                f"the running server serves {self.server.model!r}: click Stop first to serve "
                f"{model!r}",
            )
            return None
        state = self._call(
            f"Deploy v{version}",
            fk.serving.deploy,
            self.store,
            model,
            version,
            share=self.share.value,
        )
        if state is not None:
            self._set_deployment(state)
        return state

    def promote(self) -> Deployment | None:
        """What the Promote button does: ``fk.serving.promote(store, model)``."""
        state = self._call("Promote", fk.serving.promote, self.store, self.model.value)
        if state is not None:
            self._set_deployment(state)
        return state

    def rollback(self) -> Deployment | None:
        """What the Rollback button does: ``fk.serving.rollback(store, model)``."""
        state = self._call("Rollback", fk.serving.rollback, self.store, self.model.value)
        if state is not None:
            self._set_deployment(state)
        return state

    def predict(self) -> dict[str, Any] | None:
        """What the Predict button does: ``server.predict(entity)`` with the typed values."""
        if self.server is None or not self.server.running:
            self._refuse("Predict", "no server running: click Deploy first")
            return None
        entity = {
            name: _parse_value(box.value, self._datatypes.get(name))
            for name, box in self.inputs.items()
        }
        empty = [k for k, v in entity.items() if v is None]
        if empty:
            self._refuse("Predict", f"fill in {', '.join(empty)}")
            return None
        answer = self._call("Predict", self.server.predict, entity)
        if answer is None:
            self.answer_box.value = ""
            return None
        self.answer = answer
        self.answer_box.value = _answer_html(answer)
        return answer

    def stop(self) -> int | None:
        """What the Stop button does: ``server.stop()``; returns the server's exit code."""
        server = self.server
        if server is None:
            return None
        self._stop_polling.set()
        code = self._call("Stop the server", server.stop)
        self.stop_button.disabled = True
        self.predict_button.disabled = True
        self._show_server()
        return code

    def close(self) -> None:
        """Close the panel and stop its server (if it runs)."""
        if self.server is not None and self.server.running:
            self.stop()
        self._stop_polling.set()
        super().close()

    # -- live readout --------------------------------------------------------------------------
    def refresh_readout(self) -> dict[str, Any] | None:
        """Read the server's health and ``/metrics`` once and update the readout."""
        server = self.server
        if server is None:
            return None
        try:
            health = server.health()
            stats = server.stats(since=self._last_stats) if health["live"] else None
        except Exception as exc:  # shown in the readout line (the panel's actions are unaffected)
            self.readout = {"ready": False, "error": plain_error(exc)}
            self.readout_box.value = (
                f"<span style='color:{ERROR_COLOR}'>server not answering: "
                f"{html.escape(plain_error(exc))}</span>"
            )
            return self.readout
        if stats is None:
            readout: dict[str, Any] = {"ready": False, "error": "server not answering"}
        else:
            readout = _readout(stats)
            readout["ready"] = bool(health.get("ready"))
            self._last_stats = stats
        self.readout = readout
        self.readout_box.value = _readout_html(readout)
        with self._polled:
            self._polls += 1
            self._polled.notify_all()
        return readout

    def wait_readout(self, polls: int = 1, timeout: float = 10.0) -> dict[str, Any] | None:
        """Block until the live thread has refreshed the readout ``polls`` more times."""
        with self._polled:
            target = self._polls + polls
            self._polled.wait_for(lambda: self._polls >= target, timeout=timeout)
        return self.readout

    def _poll(self) -> None:
        while not self._stop_polling.wait(self.interval):
            server = self.server
            if server is None or not server.running:
                self._show_server()
                return
            self.refresh_readout()

    # -- helpers -----------------------------------------------------------------------------------
    def _after_start(self) -> None:
        server = self.server
        assert server is not None
        self.stop_button.disabled = False
        self._set_deployment(fk.serving.status(self.store, server.model))
        try:
            meta = _model_metadata(server)
        except Exception as exc:
            self._fail("Read the model's inputs", exc)
            meta = {"parameters": {}, "inputs": []}
        params = meta.get("parameters", {})
        fields = list(
            dict.fromkeys([*params.get("join_keys", []), *params.get("request_fields", [])])
        )
        self._datatypes = {i["name"]: i["datatype"] for i in meta.get("inputs", [])}
        self.inputs = {
            name: widgets.Text(
                value="" if self.example.get(name) is None else str(self.example[name]),
                description=name,
                style={"description_width": "initial"},
                placeholder=self._datatypes.get(name, "key").lower(),
                layout=widgets.Layout(width="220px"),
            )
            for name in fields
        }
        self.inputs_box.children = list(self.inputs.values())
        self.predict_button.disabled = False
        self._last_stats = None
        self.refresh_readout()
        if self.live:
            self._stop_polling = threading.Event()
            self._thread = threading.Thread(
                target=self._poll, name="fskit-deploy-readout", daemon=True
            )
            self._thread.start()

    def _set_deployment(self, state: Deployment) -> None:
        self.deployment = state
        self._syncing = True  # the slider shows the deployment; that is not a user's move
        try:
            if state.canary is not None:
                self.share.value = state.canary_share
        finally:
            self._syncing = False
        running = self.server is not None and self.server.running
        self.promote_button.disabled = state.canary is None
        self.rollback_button.disabled = state.canary is None and state.previous_stable is None
        self.deploy_button.description = "Deploy" if not running else "Deploy as canary"
        self._show_server()

    def _show_server(self) -> None:
        server, state = self.server, self.deployment
        parts = []
        if server is None:
            parts.append(f"<span style='color:{MUTED_COLOR}'>No server running.</span>")
        elif server.running:
            parts.append(
                f"<b>Serving</b> at <a href='{html.escape(server.url)}/openapi.json' "
                f"target='_blank'><code class='fskit-server-url'>{html.escape(server.url)}"
                f"</code></a>, pid {server.pid}"
            )
        else:
            parts.append(
                f"<span style='color:{MUTED_COLOR}'>Server {html.escape(server.url)} stopped "
                f"(exit code {server.returncode}).</span>"
            )
            self.deploy_button.description = "Deploy"
        if state is not None:
            parts.append(f"<code>{html.escape(str(state))}</code>")
        self.server_info.value = " — ".join(parts)

    def _on_share(self, change: dict[str, Any]) -> None:
        state = self.deployment
        if self._syncing or state is None or state.canary is None:
            return  # no canary yet: the share applies to the next Deploy
        new = self._call(
            f"Set canary share to {change['new']:.0%}",
            fk.serving.deploy,
            self.store,
            state.model,
            state.canary,
            share=change["new"],
        )
        if new is not None:
            self._set_deployment(new)


def _answer_html(answer: dict[str, Any]) -> str:
    rows = []
    for p in answer.get("predictions", []):
        if p is None:
            continue
        flags = []
        if p.get("missing"):
            flags.append(f"missing: {', '.join(p['missing'])}")
        if p.get("expired"):
            flags.append(f"expired: {', '.join(p['expired'])}")
        if p.get("degraded"):
            flags.append("degraded (online store down: defaults used)")
        rows.append(
            f"<span class='fskit-score' style='font-size:1.2em'><b>score "
            f"{p['score']:.4f}</b></span> from v{p['version']} ({html.escape(p['route'])}, "
            f"{html.escape(p.get('source', 'live'))})"
            + (
                f" <span style='color:{MUTED_COLOR}'>[{html.escape('; '.join(flags))}]</span>"
                if flags
                else ""
            )
        )
    total = answer.get("timing_ms", {}).get("total")
    took = f" <span style='color:{MUTED_COLOR}'>in {total:.1f} ms</span>" if total else ""
    return "<div class='fskit-answer'>" + "<br>".join(rows) + took + "</div>"


def _readout_html(r: dict[str, Any]) -> str:
    if r.get("error"):
        return f"<span style='color:{ERROR_COLOR}'>{html.escape(r['error'])}</span>"
    ready = (
        f"<span style='color:{OK_COLOR}'>ready</span>"
        if r["ready"]
        else f"<span style='color:{ERROR_COLOR}'>not ready</span>"
    )
    rate = "-" if r["rows_per_s"] is None else f"{r['rows_per_s']:.1f}"
    latency = "-" if r["latency_ms"] is None else f"{r['latency_ms']:.1f} ms"
    split = ", ".join(f"{k}: {v:,}" for k, v in r["rows_by_version"].items()) or "none yet"
    return (
        f"<span class='fskit-readout'>Health: {ready} · {_count(r['requests'], 'request')}, "
        f"{_count(r['rows'], 'row')} · {rate} rows/s · mean latency {latency} · "
        f"rows served by {html.escape(split)}</span>"
    )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")
