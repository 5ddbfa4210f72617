"""Canary routing, promote and rollback across two workers, shadow mode, and the CLI."""

from __future__ import annotations

import argparse
import json
import time
import urllib.request

import pytest

from fskit.serving import (
    DeploymentError,
    deploy,
    parse_prometheus,
    promote,
    read_prediction_log,
    rollback,
    status,
)
from fskit.serving._cli import add_serve_commands

USERS = list(range(2000))


def _routes(server, users):
    body = server.predict([{"user_id": u, "amount": 10.0} for u in users])
    return [(p["version"], p["route"]) for p in body["predictions"]]


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
