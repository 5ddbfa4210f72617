"""The server process: store down, bearer token, binding rules, clean stops and no orphans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

import fskit as fk
from fskit.errors import DefinitionError
from fskit.models import ModelNotFoundError, ModelRegistry
from fskit.serving import ServingError, serve


def call(url, body=None, *, token=None, method=None):
    request = urllib.request.Request(
        url, data=None if body is None else json.dumps(body).encode(), method=method
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read())


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_store_down_degrades_to_documented_defaults(down_repo, servers):
    server = servers(down_repo, "fraud", defaults={"age": 40, "country": "FR"})
    status, _, body = call(server.url + "/predict", {"entities": [{"user_id": 1, "amount": 15.0}]})
    assert status == 200, body
    (answer,) = body["predictions"]
    assert body["degraded"] is answer["degraded"] is True
    assert {v["status"] for v in answer["freshness"].values()} == {"UNAVAILABLE"}
    model = ModelRegistry(fk.FeatureStore(down_repo)).load("fraud", answer["version"])
    nan = [float("nan")]
    expected = model.predict({"purchases_7d": nan, "amount_7d": nan, "avg_amount": nan, "age": [40.0],
                              "country": ["FR"], "amount": [15.0]})  # fmt: skip
    assert answer["score"] == pytest.approx(float(expected[0]))
    assert server.health()["ready"]


def test_store_down_answers_503_when_so_configured_and_the_server_lives_on(down_repo, servers):
    server = servers(down_repo, "fraud", on_unavailable="error")
    for _ in range(3):
        status, headers, body = call(
            server.url + "/predict", {"entities": [{"user_id": 1, "amount": 1.0}]}
        )
        assert (status, body["code"]) == (503, "store_unavailable")
        assert "unavailable" in body["error"] and headers["Retry-After"] == "1"
    assert server.health()["live"] and server.running


def test_bearer_token_guards_everything_but_health(store, servers):
    server = servers(store, "fraud", token="s3cret")
    body = {"entities": [{"user_id": 1, "amount": 1.0}]}
    for token in (None, "wrong"):
        status, headers, answer = call(server.url + "/predict", body, token=token)
        assert (status, answer["code"]) == (401, "unauthorized")
        assert headers["WWW-Authenticate"] == "Bearer"
        assert call(server.url + "/metrics", token=token)[0] == 401
        assert call(server.url + "/v2/models/fraud", token=token)[0] == 401
    assert call(server.url + "/predict", body, token="s3cret")[0] == 200
    assert call(server.url + "/v2/health/ready")[0] == 200
    assert call(server.url + "/v2/health/live")[0] == 200
    assert server.predict({"user_id": 1, "amount": 1.0})["predictions"][0]["version"] == 1


def test_refuses_remote_binds_bad_names_and_unknown_models(store):
    with pytest.raises(ServingError, match="refusing to bind '0.0.0.0'"):
        serve(store, "fraud", host="0.0.0.0")
    with pytest.raises(DefinitionError, match="model name must match"):
        serve(store, "../../etc")
    with pytest.raises(ModelNotFoundError):
        serve(store, "nobody")


def test_stop_is_clean_and_leaves_no_process(store):
    server = serve(store, "fraud", workers=2)
    pid = server.pid
    assert server.health()["ready"]
    assert server.stop() == 0
    assert _gone(pid)
    assert not server.health()["live"]


def test_server_exits_when_the_process_that_started_it_dies(repo, tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        import fskit.serving as serving
        server = serving.serve({str(repo)!r}, "fraud")
        print(server.pid, server.url, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pid, url = parent.stdout.readline().split()
    assert call(url + "/v2/health/live")[0] == 200
    parent.send_signal(signal.SIGKILL)  # no atexit, no __del__: the kernel crashed
    parent.wait()
    assert _gone(int(pid)), "the server outlived its parent"


def test_python_dash_m_fskit_serving_is_the_cli_server(repo):
    process = subprocess.Popen(
        [sys.executable, "-m", "fskit.serving", "--repo", str(repo), "--model", "cli", "--port", "0",
         "--log-level", "warning"],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        url = line.rsplit(" at ", 1)[1].split()[0]
        deadline = time.monotonic() + 30
        while True:
            try:
                if call(url + "/v2/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, line
            time.sleep(0.05)
        status, _, body = call(url + "/predict", {"entities": [{"user_id": 2, "amount": 3.0}]})
        assert status == 200 and np.isfinite(body["predictions"][0]["score"])
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0


def test_cli_serve_version_deploys_a_model_never_deployed_with_that_version(repo):
    assert fk.serving.status(repo, "fresh_cli").stable is None  # v2 is the latest
    process = subprocess.Popen(
        [sys.executable, "-m", "fskit.serving", "--repo", str(repo), "--model", "fresh_cli",
         "--version", "1", "--port", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        assert "(fresh_cli: stable v1)" in line, line
        url = line.rsplit(" at ", 1)[1].split()[0]
        deadline = time.monotonic() + 30
        while True:
            try:
                if call(url + "/v2/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, line
            time.sleep(0.05)
        status, _, body = call(url + "/predict", {"entities": [{"user_id": 2, "amount": 3.0}]})
        assert (status, body["predictions"][0]["version"]) == (200, 1)
        assert fk.serving.history(repo, "fresh_cli")["action"].to_list() == ["serve v1"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0


def test_cli_serve_version_refuses_to_switch_a_served_model_before_listening(repo):
    written = [(repo / "serving" / f"fraud{s}").read_bytes() for s in (".json", ".events.jsonl")]
    done = subprocess.run(
        [sys.executable, "-m", "fskit.serving", "--repo", str(repo), "--model", "fraud",
         "--version", "2", "--port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""  # it never said it was serving
    assert done.stderr.startswith("fskit serve: error: model 'fraud' is serving v1")
    assert "fskit promote --model fraud --version 2" in done.stderr
    assert [(repo / "serving" / f"fraud{s}").read_bytes() for s in (".json", ".events.jsonl")] == (
        written
    )
