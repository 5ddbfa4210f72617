"""``/metrics`` in the Prometheus text format: counts and latency histograms per version."""

from __future__ import annotations

import urllib.error
import urllib.request

from fskit.serving import parse_prometheus


def _scrape(server) -> dict:
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse_prometheus(response.read().decode())


def test_metrics_count_requests_latency_and_errors_per_version(fraud_server):
    before = _scrape(fraud_server)
    for user in range(5):
        fraud_server.predict(
            [{"user_id": user, "amount": 3.0}, {"user_id": user + 1, "amount": 4.0}]
        )
    req = urllib.request.Request(
        fraud_server.url + "/predict", data=b'{"entities": [{}]}', method="POST"
    )
    try:
        urllib.request.urlopen(req, timeout=10)
    except urllib.error.HTTPError as exc:
        assert exc.code == 422
    after = _scrape(fraud_server)

    def delta(name, **labels):
        key = (name, tuple(labels.items()))
        return after.get(key, 0) - before.get(key, 0)

    v1 = {"model": "fraud", "version": "1", "route": "stable"}
    assert delta("fskit_requests_total", **v1, code="200") == 5
    assert delta("fskit_predictions_total", **v1) == 10
    assert delta("fskit_request_duration_seconds_count", **v1) == 5
    assert delta("fskit_request_duration_seconds_bucket", **v1, le="+Inf") == 5
    assert delta("fskit_request_duration_seconds_sum", **v1) > 0
    buckets = sorted(
        (float(dict(k[1])["le"]), v) for k, v in after.items()
        if k[0] == "fskit_request_duration_seconds_bucket" and dict(k[1])["le"] != "+Inf"
        and dict(k[1])["version"] == "1" and dict(k[1])["route"] == "stable"
    )  # fmt: skip
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert delta("fskit_errors_total", model="fraud", version="", kind="missing_key") == 1
    assert delta("fskit_http_requests_total", endpoint="predict", code="422") == 1
    info = [dict(k[1]) for k in after if k[0] == "fskit_deployment_info"]
    assert info == [{"model": "fraud", "stable": "1", "canary": "", "canary_share": "0.0",
                     "shadow": "false", "previous_stable": ""}]  # fmt: skip
