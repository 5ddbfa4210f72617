"""DeployPanel against a real model server process: deploy, try it, canary, promote, rollback,
stop — and what happens to the server when the kernel goes away."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import pytest
from fskit.widgets import DeployPanel

import fskit as fk

EXAMPLE = {"user_id": 7, "merchant_id": 3, "amount": 42.0}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _server_deployment(panel: DeployPanel) -> dict:
    with urllib.request.urlopen(panel.server.url + "/deployment", timeout=10) as answer:
        return json.loads(answer.read())


@pytest.fixture
def panel(store, fraud_model):
    panel = DeployPanel(store, model=fraud_model, example=EXAMPLE, live=False)
    yield panel
    panel.close()


def test_deploy_try_canary_promote_rollback_stop(store, panel):
    assert panel.model.value == "fraud" and panel.version.value == 2
    assert panel.deployment.stable is None  # never deployed

    panel.deploy_button.click()  # starts a real server: the latest version becomes stable
    assert panel.error == ""
    server = panel.server
    assert server.running and server.url.startswith("http://127.0.0.1:")
    assert server.health()["ready"] is True
    assert (panel.deployment.stable, panel.deployment.canary) == (2, None)
    assert server.url in panel.server_info.value and str(server.pid) in panel.server_info.value
    assert panel.deploy_button.description == "Deploy as canary"

    # try it: the boxes are the model's request fields, pre-filled from the example
    assert {k: box.value for k, box in panel.inputs.items()} == {
        "user_id": "7",
        "merchant_id": "3",
        "amount": "42.0",
    }
    panel.predict_button.click()
    answer = panel.answer
    assert panel.error == "" and answer["model"] == "fraud"
    (prediction,) = answer["predictions"]
    assert 0 < prediction["score"] < 1 and prediction["version"] == 2
    assert f"{prediction['score']:.4f}" in panel.answer_box.value
    # the same request straight to the server gets the same score
    assert server.predict(EXAMPLE)["predictions"][0]["score"] == prediction["score"]

    readout = panel.refresh_readout()
    assert readout["ready"] is True and readout["rows"] == 2 and readout["requests"] == 2
    assert readout["rows_by_version"] == {"v2 stable": 2}
    assert "ready" in panel.readout_box.value

    # canary: v1 on 10 %, then the slider moves it to 50 %
    panel.version.value = 1
    panel.deploy_button.click()
    assert panel.error == ""
    state = fk.serving.status(store, "fraud")
    assert (state.stable, state.canary, state.canary_share) == (2, 1, 0.1)
    panel.share.value = 0.5
    state = fk.serving.status(store, "fraud")
    assert state.canary_share == 0.5 and panel.deployment == state
    assert _server_deployment(panel)["canary_share"] == 0.5  # the server follows at once
    routes = [
        p["route"]
        for p in server.predict([{**EXAMPLE, "user_id": u} for u in range(400)])["predictions"]
    ]
    assert 0.4 < routes.count("canary") / len(routes) < 0.6
    readout = panel.refresh_readout()
    assert readout["rows_by_version"]["v1 canary"] == routes.count("canary")
    assert readout["rows_per_s"] is not None and readout["latency_ms"] > 0

    panel.promote_button.click()
    state = fk.serving.status(store, "fraud")
    assert (state.stable, state.canary, state.previous_stable) == (1, None, 2)
    assert panel.rollback_button.disabled is False and panel.promote_button.disabled is True
    panel.rollback_button.click()
    assert fk.serving.status(store, "fraud").stable == 2
    assert server.predict(EXAMPLE)["predictions"][0]["version"] == 2

    # nothing left to roll back to: refused by the core, said in plain words
    panel.rollback_button.click()
    assert panel.error.startswith("Rollback failed: model 'fraud' has nothing to roll back to")
    assert "nothing to roll back to" in panel.error_box.value

    # one server per panel: another model needs a Stop first
    panel.model.options = [*panel.model.options, "other"]
    panel.model.value = "other"
    panel.deploy_button.click()
    assert (
        panel.error
        == "Deploy failed: the running server serves 'fraud': click Stop first to serve 'other'"
    )
    panel.model.value = "fraud"

    panel.stop_button.click()
    assert server.returncode == 0 and not _alive(server.pid)
    assert "stopped" in panel.server_info.value
    panel.predict()
    assert panel.error == "Predict failed: no server running: click Deploy first"


def test_live_readout_thread_updates_while_the_server_runs(store, fraud_model):
    panel = DeployPanel(store, model=fraud_model, example=EXAMPLE, interval=0.2)
    try:
        panel.deploy()
        panel.predict()
        readout = panel.wait_readout(polls=2, timeout=10)
        assert readout["ready"] is True and readout["rows"] >= 1
        assert "rows/s" in panel.readout_box.value
    finally:
        panel.close()  # closing the panel stops its server and the thread
    assert not panel.server.running
    assert panel._stop_polling.is_set()


def test_deploy_errors_are_shown_not_swallowed(store, training_set):
    empty = DeployPanel(fk.FeatureStore(store.repo_path / "nothing_here"), live=False)
    empty.deploy_button.click()
    assert empty.server is None
    assert "no registered model" in empty.error


DEPLOY_IN_A_KERNEL = """
import fskit as fk
from fskit.widgets import DeployPanel
panel = DeployPanel(fk.FeatureStore({repo!r}), model="fraud")
panel.deploy()
print(panel.error or panel.server.pid)
"""


def _printed(client) -> str:
    """What the kernel's running cell prints, once it is idle again."""
    out = []
    while True:
        msg = client.get_iopub_msg(timeout=60)
        kind, content = msg["msg_type"], msg["content"]
        if kind == "error":
            raise AssertionError("\n".join(content["traceback"]))
        if kind == "stream":
            out.append(content["text"])
        if kind == "status" and content["execution_state"] == "idle" and out:
            return "".join(out).strip()


def test_a_server_never_outlives_its_kernel(store, fraud_model):
    """Two real kernels deploy from the panel; one is shut down (closing the notebook, or a
    restart), the other is killed (a crash): neither leaves its server running."""
    from jupyter_client.manager import start_new_kernel

    kernels = [start_new_kernel(kernel_name="python3") for _ in range(2)]
    try:
        code = DEPLOY_IN_A_KERNEL.format(repo=str(store.repo_path))
        for _, client in kernels:
            client.execute(code)  # both deploy at once
        pids = [int(_printed(client)) for _, client in kernels]
        assert all(_alive(pid) for pid in pids)
        (closed, _), (crashed, _) = kernels
        closed.shutdown_kernel(now=False)  # the atexit hook stops the server
        assert _wait_gone(pids[0], 10), "the server outlived a kernel that was shut down"
        assert _alive(pids[1])
        crashed.signal_kernel(signal.SIGKILL)  # no atexit: the server notices by itself
        assert _wait_gone(pids[1], 10), "the server outlived a killed kernel"
    finally:
        for manager, client in kernels:
            client.stop_channels()
            if manager.is_alive():
                manager.shutdown_kernel(now=True)
            manager.cleanup_resources()
