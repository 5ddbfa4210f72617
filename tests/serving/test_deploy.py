"""Canary routing, promote and rollback across two workers, shadow mode, deploy(as_stable=),
serve(version=), and the CLI."""

from __future__ import annotations

import argparse
import json
import time
import urllib.request

import pytest

from fskit.models import ModelNotFoundError
from fskit.serving import (
    DeploymentError,
    deploy,
    history,
    parse_prometheus,
    promote,
    read_prediction_log,
    rollback,
    serve,
    status,
)
from fskit.serving._cli import add_serve_commands

USERS = list(range(2000))


def _routes(server, users):
    body = server.predict([{"user_id": u, "amount": 10.0} for u in users])
    return [(p["version"], p["route"]) for p in body["predictions"]]


def _written(repo, model):
    """The bytes of a model's deployment file and its events log: a refusal changes neither."""
    return tuple(
        (repo / "serving" / f"{model}{suffix}").read_bytes()
        for suffix in (".json", ".events.jsonl")
    )


def _server_logs(repo):
    """Every server log file and its size: a launched server creates or grows one."""
    return {p.name: p.stat().st_size for p in (repo / "serving" / "logs").glob("*.log")}


def _admin(server, action, body=None):
    request = urllib.request.Request(server.url + f"/deployment/{action}", method="POST",
                                     data=None if body is None else json.dumps(body).encode())  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def canary_server(store, servers):
    return servers(store, "canary", workers=2)


def test_two_workers_serve_the_same_port(canary_server):
    pids = set()
    for _ in range(40):
        with urllib.request.urlopen(canary_server.url + "/deployment", timeout=10) as response:
            pids.add(json.loads(response.read())["pid"])
    assert len(pids) == 2


def test_canary_gets_its_share_sticky_by_key_and_promote_rollback_apply_at_once(
    store, canary_server
):
    assert _routes(canary_server, [1, 2]) == [(1, "stable")] * 2
    state = deploy(store, "canary", 2, share=0.3)
    assert (state.stable, state.canary, state.canary_share) == (1, 2, 0.3)

    routes = _routes(canary_server, USERS)
    share = sum(r == (2, "canary") for r in routes) / len(routes)
    assert 0.26 < share < 0.34
    assert set(routes) == {(1, "stable"), (2, "canary")}
    # sticky: the same keys land on the same version, whichever worker answers
    assert _routes(canary_server, USERS) == routes
    for user in USERS[:30]:
        assert _routes(canary_server, [user]) == [routes[user]]

    # per-version metrics side by side, summed over both workers
    deadline = time.monotonic() + 5
    while True:
        with urllib.request.urlopen(canary_server.url + "/metrics", timeout=10) as response:
            metrics = parse_prometheus(response.read().decode())
        rows = {r: metrics.get(("fskit_predictions_total", (("model", "canary"), ("version", str(v)), ("route", r))), 0)
                for v, r in [(1, "stable"), (2, "canary")]}  # fmt: skip
        if rows["stable"] + rows["canary"] >= 2 * len(USERS) + 32 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert rows["canary"] == 2 * sum(r == (2, "canary") for r in routes) + sum(
        routes[u] == (2, "canary") for u in USERS[:30]
    )
    assert rows["stable"] + rows["canary"] == 2 + 2 * len(USERS) + 30  # all rows, both workers

    state = promote(store, "canary")
    assert (state.stable, state.canary, state.previous_stable) == (2, None, 1)
    for _ in range(20):  # every worker, at once
        assert set(_routes(canary_server, USERS[:50])) == {(2, "stable")}

    state = rollback(store, "canary")
    assert (state.stable, state.previous_stable) == (1, None)
    for _ in range(20):
        assert set(_routes(canary_server, USERS[:50])) == {(1, "stable")}
    with pytest.raises(DeploymentError, match="nothing to roll back"):
        rollback(store, "canary")


def test_admin_endpoints_change_the_deployment_too(store, canary_server):
    assert _admin(canary_server, "deploy", {"version": 2, "share": 1.0})[0] == 200
    assert set(_routes(canary_server, USERS[:20])) == {(2, "canary")}
    status_code, body = _admin(canary_server, "rollback")
    assert (status_code, body["canary"]) == (200, None)
    assert set(_routes(canary_server, USERS[:20])) == {(1, "stable")}
    assert _admin(canary_server, "promote")[0] == 409  # no canary
    assert _admin(canary_server, "deploy", {"version": 1})[0] == 409  # already stable
    assert _admin(canary_server, "deploy", {"version": 99})[0] == 404
    assert _admin(canary_server, "deploy", {"version": "2"})[0] == 422
    status_code, body = _admin(canary_server, "promote", {"version": 2})
    assert (status_code, body["stable"], body["history"]) == (200, 2, [1, 2])
    assert _admin(canary_server, "rollback")[1]["stable"] == 1
    assert status(store, "canary").stable == 1


def test_shadow_scores_and_logs_without_answering_and_the_log_survives_sigterm(store, servers):
    server = servers(store, "shadow", log_flush_seconds=600)  # only a clean stop flushes
    deploy(store, "shadow", 2, shadow=True)
    body = server.predict(
        [{"user_id": u, "amount": 20.0} for u in range(10)], request_id="shadow-1"
    )
    assert {(p["version"], p["route"]) for p in body["predictions"]} == {(1, "stable")}
    assert read_prediction_log(store, "shadow").is_empty()
    assert server.stop() == 0

    log = read_prediction_log(store, "shadow").filter(request_id="shadow-1")
    assert sorted(set(zip(log["version"], log["route"], strict=True))) == [
        (1, "stable"),
        (2, "shadow"),
    ]
    assert log.filter(route="shadow").height == 10
    stable = log.filter(route="stable").sort("user_id")
    assert stable["score"].to_list() == pytest.approx([p["score"] for p in body["predictions"]])
    assert {"purchases_7d", "amount_7d", "avg_amount", "age", "country", "amount"} <= set(
        log.columns
    )
    assert stable["amount"].to_list() == [20.0] * 10


def test_cli_deploy_promote_rollback_status(repo, capsys):
    parser = argparse.ArgumentParser(prog="fskit")
    add_serve_commands(parser.add_subparsers(dest="command", required=True))

    def cli(*argv):
        args = parser.parse_args(argv)
        assert args.func(args) == 0
        return capsys.readouterr().out

    assert "stable v1" in cli("status", "--repo", str(repo), "--model", "cli")
    assert "canary v2 on 25%" in cli(
        "deploy", "--repo", str(repo), "--model", "cli", "--version", "2", "--share", "0.25"
    )
    assert "stable v2 (rollback to v1)" in cli("promote", "--repo", str(repo), "--model", "cli")
    assert "cli: stable v1" in cli("rollback", "--repo", str(repo), "--model", "cli")
    events = (repo / "serving" / "cli.events.jsonl").read_text().splitlines()
    assert [json.loads(e)["action"] for e in events][-3:] == [
        "deploy v2 as canary on 25%",
        "promote v2",
        "rollback v2 to v1",
    ]


def test_deploy_as_stable_switches_at_once_keeps_rollback_and_drops_the_canary(store, repo):
    assert deploy(store, "switch", 3, share=0.5).canary == 3
    written = _written(repo, "switch")
    with pytest.raises(DeploymentError, match=r"share=0\.5.*drop share= and shadow=, or drop"):
        deploy(store, "switch", 2, share=0.5, as_stable=True)
    with pytest.raises(DeploymentError, match=r"shadow=True.*or drop as_stable=True"):
        deploy(store, "switch", 2, shadow=True, as_stable=True)
    with pytest.raises(DeploymentError, match="v1 is already the stable version"):
        deploy(store, "switch", 1, as_stable=True)
    with pytest.raises(ModelNotFoundError):
        deploy(store, "switch", 99, as_stable=True)
    with pytest.raises(DeploymentError, match="as_stable must be True or False, got 'yes'"):
        deploy(store, "switch", 2, as_stable="yes")
    assert _written(repo, "switch") == written  # no refusal wrote a byte

    state = deploy(store, "switch", 2, as_stable=True)
    assert (state.stable, state.canary, state.canary_share, state.shadow) == (2, None, 0.0, False)
    assert (state.history, state.previous_stable) == ((1, 2), 1)
    assert status(store, "switch") == state
    assert (
        history(store, "switch")["action"][-1]
        == "deploy v2 as stable, replacing v1; canary v3 dropped"
    )

    state = rollback(store, "switch")  # the old stable was kept for this
    assert (state.stable, state.history) == (1, (1,))

    deploy(store, "switch", 2, share=0.2)  # the canary itself, made stable: a promotion
    state = deploy(store, "switch", 2, as_stable=True)
    assert (state.stable, state.canary, state.history) == (2, None, (1, 2))
    assert history(store, "switch")["action"][-1] == "deploy v2 as stable, replacing v1"


def test_serve_version_picks_the_first_stable_and_never_switches_running_servers(
    store, repo, servers
):
    assert status(store, "fresh").stable is None  # never deployed; v2 is the latest
    first = servers(store, "fresh", version=1)
    assert _routes(first, [1, 2, 3]) == [(1, "stable")] * 3
    assert history(store, "fresh")["action"].to_list() == ["serve v1"]
    assert status(store, "fresh").history == (1,)

    written, logs = _written(repo, "fresh"), _server_logs(repo)
    with pytest.raises(DeploymentError) as refused:  # the child's refusal would be a ServingError
        serve(store, "fresh", version=2)
    message = str(refused.value)
    assert "'fresh' is serving v1" in message
    assert "fk.serving.promote(store, 'fresh', version=2)" in message
    assert "fk.serving.deploy(store, 'fresh', 2, as_stable=True)" in message
    with pytest.raises(ModelNotFoundError):
        serve(store, "fresh", version=99)
    with pytest.raises(DeploymentError, match="version must be an int >= 1, got '2'"):
        serve(store, "fresh", version="2")
    assert _written(repo, "fresh") == written
    assert _server_logs(repo) == logs  # no server process was launched
    assert _routes(first, [1, 2, 3]) == [(1, "stable")] * 3

    second = servers(store, "fresh", version=1)  # the stable version: fine, nothing written
    assert _routes(second, [4]) == [(1, "stable")]
    assert _written(repo, "fresh") == written

    deploy(store, "fresh", 2, as_stable=True)  # what the refusal said to do: both follow at once
    for server in (first, second):
        assert set(_routes(server, USERS[:20])) == {(2, "stable")}
    rollback(store, "fresh")
    for server in (first, second):
        assert set(_routes(server, USERS[:20])) == {(1, "stable")}


def test_cli_deploy_as_stable_and_history(repo, capsys):
    parser = argparse.ArgumentParser(prog="fskit")
    add_serve_commands(parser.add_subparsers(dest="command", required=True))

    def cli(*argv):
        args = parser.parse_args(argv)
        assert args.func(args) == 0
        return capsys.readouterr().out

    where = ("--repo", str(repo), "--model", "cli_history")
    assert "cli_history: stable v2 (rollback to v1)" in cli(
        "deploy", *where, "--version", "2", "--as-stable"
    )
    assert status(repo, "cli_history").history == (1, 2)
    table = cli("history", *where)
    lines = table.splitlines()
    assert "time" in lines[1] and "action" in lines[1] and "previous_stable" in lines[1]
    rows = [line for line in lines if " UTC ┆ " in line]
    assert len(rows) == 2
    assert "deploy v1 as stable" in rows[0]
    assert "deploy v2 as stable, replacing v1" in rows[1] and "[1, 2]" in rows[1]
    assert cli("history", "--repo", str(repo), "--model", "nobody") == (
        "nobody: never deployed (no deployment events)\n"
    )
    args = parser.parse_args(["deploy", *where, "--version", "1", "--as-stable", "--share", "0.5"])
    with pytest.raises(DeploymentError, match="drop share= and shadow="):
        args.func(args)
