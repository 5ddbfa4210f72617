"""``/metrics`` in the Prometheus text format, and ``ServerHandle.stats()`` that reads it."""

from __future__ import annotations

import math
import urllib.error
import urllib.request

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from fskit.serving import ServerStats, ServingError, parse_prometheus
from fskit.serving._stats import VERSION_STATS_SCHEMA


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


def _bad_request(server):
    request = urllib.request.Request(
        server.url + "/predict", data=b'{"entities": [{}]}', method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 422


def test_server_stats_count_per_version_and_measure_the_interval(fraud_server):
    before = fraud_server.stats()
    for user in range(5):
        fraud_server.predict(
            [{"user_id": user, "amount": 3.0}, {"user_id": user + 1, "amount": 4.0}]
        )
    _bad_request(fraud_server)
    after = fraud_server.stats(since=before)

    assert (after.requests - before.requests, after.rows - before.rows) == (5, 10)
    assert after.errors - before.errors == 1  # the bad request, which no version answered
    assert after.rows_by_route["v1 stable"] - before.rows_by_route.get("v1 stable", 0) == 10
    assert after.seconds == pytest.approx(after.at - before.at) and after.seconds > 0
    assert after.rows_per_s == pytest.approx(10 / after.seconds)
    sums = [
        s.sample[("fskit_request_duration_seconds_sum", (("model", "fraud"), ("version", "1"), ("route", "stable")))]
        for s in (before, after)
    ]  # fmt: skip
    assert after.latency_ms == pytest.approx(1000 * (sums[1] - sums[0]) / 5)

    (v1,) = after.versions.filter(pl.col("version") == 1).iter_rows(named=True)
    assert (v1["requests"], v1["rows"]) == (after.requests, after.rows)  # fraud serves v1 only
    assert v1["latency_mean_ms"] == pytest.approx(1000 * sums[1] / after.requests)
    assert 0 < v1["latency_p50_ms"] <= v1["latency_p95_ms"] <= v1["latency_p99_ms"] <= 2500
    # the median lies in the histogram bucket that holds the middle request
    buckets = sorted(
        (math.inf if dict(k[1])["le"] == "+Inf" else float(dict(k[1])["le"]), v)
        for k, v in after.sample.items()
        if k[0] == "fskit_request_duration_seconds_bucket" and dict(k[1])["version"] == "1"
    )
    upper = next(bound for bound, count in buckets if count >= after.requests / 2)
    lower = max([0.0] + [bound for bound, _ in buckets if bound < upper])
    assert 1000 * lower <= v1["latency_p50_ms"] <= 1000 * min(upper, 2.5)
    assert str(after).startswith(f"fraud: {after.requests:,} requests, {after.rows:,} rows, ")


def _series(name, version, route=None, **labels):
    tags = {
        "model": "m",
        "version": version,
        **({} if route is None else {"route": route}),
        **labels,
    }
    return (name, tuple(tags.items()))


def test_server_stats_from_a_sample_percentiles_errors_and_restarts():
    histogram = {"0.0005": 0, "0.001": 2, "0.0025": 4, "0.005": 4, "+Inf": 4}
    sample = {
        _series("fskit_predictions_total", "1", "stable"): 30.0,
        _series("fskit_predictions_total", "2", "canary"): 6.0,
        _series("fskit_request_duration_seconds_count", "1", "stable"): 4.0,
        _series("fskit_request_duration_seconds_sum", "1", "stable"): 0.006,
        **{_series("fskit_request_duration_seconds_bucket", "1", "stable", le=le): float(n)
           for le, n in histogram.items()},
        _series("fskit_request_duration_seconds_count", "2", "canary"): 1.0,
        _series("fskit_request_duration_seconds_sum", "2", "canary"): 3.0,  # beyond 2.5 s
        _series("fskit_request_duration_seconds_bucket", "2", "canary", le="2.5"): 0.0,
        _series("fskit_request_duration_seconds_bucket", "2", "canary", le="+Inf"): 1.0,
        _series("fskit_errors_total", "", kind="missing_key"): 2.0,  # no version answered
        _series("fskit_errors_total", "3", kind="model_load"): 1.0,  # a version that never loaded
        ("fskit_predictions_total", (("model", "other"), ("version", "1"), ("route", "stable"))): 99.0,
    }  # fmt: skip
    stats = ServerStats.from_sample("m", sample, at=10.0)
    assert (stats.requests, stats.rows, stats.errors) == (5, 36, 3)
    assert stats.rows_by_route == {"v1 stable": 30, "v2 canary": 6}
    assert (stats.seconds, stats.rows_per_s) == (None, None)
    assert stats.latency_ms == pytest.approx(1000 * 3.006 / 5)  # since the start
    expected = pl.DataFrame(
        {
            "version": [1, 2, 3],
            "requests": [4, 1, 0],
            "rows": [30, 6, 0],
            "errors": [0, 0, 1],
            "latency_mean_ms": [1.5, 3000.0, None],
            # rank 2 of 4 fills the 1 ms bucket; rank 3.8 is 90% into (1 ms, 2.5 ms]
            "latency_p50_ms": [1.0, 2500.0, None],
            "latency_p95_ms": [2.35, 2500.0, None],  # +Inf bucket: the largest finite bound
            "latency_p99_ms": [2.47, 2500.0, None],
        },
        schema=VERSION_STATS_SCHEMA,
    )
    assert_frame_equal(stats.versions, expected)

    later = dict(sample)
    later[_series("fskit_predictions_total", "1", "stable")] = 40.0
    later[_series("fskit_request_duration_seconds_count", "1", "stable")] = 6.0
    later[_series("fskit_request_duration_seconds_sum", "1", "stable")] = 0.010
    interval = ServerStats.from_sample("m", later, at=12.0, since=stats)
    assert (interval.seconds, interval.rows_per_s) == (2.0, 5.0)
    assert interval.latency_ms == pytest.approx(2.0)  # 4 ms over the 2 new requests
    quiet = ServerStats.from_sample("m", later, at=13.0, since=interval)
    assert (quiet.rows_per_s, quiet.latency_ms) == (0.0, None)  # no request in the interval

    fresh = {_series("fskit_predictions_total", "1", "stable"): 3.0}  # the server restarted
    restarted = ServerStats.from_sample("m", fresh, at=20.0, since=quiet)
    assert (restarted.seconds, restarted.rows_per_s, restarted.rows) == (None, None, 3)
    with pytest.raises(ServingError, match="since= is a reading of model 'm', not 'other'"):
        ServerStats.from_sample("other", sample, at=11.0, since=stats)
