"""``POST /predict`` on a real uvicorn process: scores, flags, timings, batches, errors."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from fskit.models import ModelRegistry
from tests.serving.serving_world import EXPIRED, FEATURES, NO_STATS


def post(url: str, body: bytes | str | dict, *, headers: dict | None = None, method: str = "POST"):
    data = (
        body
        if isinstance(body, bytes)
        else (body if isinstance(body, str) else json.dumps(body)).encode()
    )
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read())


def test_predict_one_entity_matches_the_registered_model_on_online_features(fraud_server, store):
    status, headers, body = post(
        fraud_server.url + "/predict", {"entities": [{"user_id": 3, "amount": 42.0}]}
    )
    assert status == 200, body
    (answer,) = body["predictions"]
    assert body["model"] == "fraud" and answer["version"] == 1 and answer["route"] == "stable"
    assert answer["source"] == "live" and answer["degraded"] is False
    assert answer["missing"] == [] and answer["expired"] == []
    assert answer["freshness"]["user_stats"]["status"] == "PRESENT"
    assert 0 < answer["freshness"]["user_stats"]["staleness_seconds"] < 2 * 3600 + 600

    # the same score as the registry's model on the same online features (no skew)
    model = ModelRegistry(store).load("fraud", 1)
    online = store.get_online_features(
        list(model.version.feature_refs), [{"user_id": 3}], return_type="dict"
    )
    expected = model.predict({**online, "amount": [42.0]})
    assert answer["score"] == pytest.approx(float(expected[0]), rel=1e-6)


def test_server_timing_header_and_body_break_down_the_latency(fraud_server):
    status, headers, body = post(
        fraud_server.url + "/predict", {"entities": [{"user_id": 4, "amount": 1.0}]}
    )
    assert status == 200
    parts = dict(p.strip().split(";dur=") for p in headers["Server-Timing"].split(","))
    assert set(parts) == {"features", "transforms", "model", "total"}
    assert all(float(v) >= 0 for v in parts.values())
    assert float(parts["total"]) >= float(parts["features"]) + float(parts["model"])
    assert set(body["timing_ms"]) == {"features", "transforms", "model", "total"}


def test_batch_is_one_call_and_equals_single_requests(fraud_server):
    entities = [
        {"user_id": u, "amount": float(a)}
        for u, a in [(1, 5), (2, 80), (185, 9), (195, 3), (999, 1), (1, 5)]
    ]
    status, _, batch = post(
        fraud_server.url + "/predict", {"entities": entities, "return_features": True}
    )
    assert status == 200
    assert len(batch["predictions"]) == len(entities)
    singles = [
        post(fraud_server.url + "/predict", {"entities": [e]})[2]["predictions"][0]
        for e in entities
    ]
    for got, one in zip(batch["predictions"], singles, strict=True):
        assert got["score"] == pytest.approx(one["score"], rel=1e-9)
        assert (got["missing"], got["expired"]) == (one["missing"], one["expired"])
    # a column-oriented body is the same batch
    columns = {
        "user_id": [e["user_id"] for e in entities],
        "amount": [e["amount"] for e in entities],
    }
    _, _, cols = post(fraud_server.url + "/predict", {"entities": columns})
    assert [p["score"] for p in cols["predictions"]] == [p["score"] for p in batch["predictions"]]
    assert batch["predictions"][0]["features"]["country"] in {"GB", "DE", "FR"}


def test_missing_and_expired_features_are_flagged_per_view(fraud_server):
    entities = [
        {"user_id": next(iter(EXPIRED)), "amount": 1.0},
        {"user_id": next(iter(NO_STATS)), "amount": 1.0},
        {"user_id": 10_000, "amount": 1.0},
    ]
    _, _, body = post(fraud_server.url + "/predict", {"entities": entities})
    expired, no_stats, unknown = body["predictions"]
    assert expired["expired"] == ["user_stats"] and expired["missing"] == []
    assert expired["freshness"]["user_stats"]["status"] == "OUTSIDE_MAX_AGE"
    assert expired["freshness"]["user_stats"]["staleness_seconds"] > 2 * 86400
    assert no_stats["missing"] == ["user_stats"] and no_stats["expired"] == []
    assert unknown["missing"] == ["user_stats", "user_profile"]
    assert all(np.isfinite(p["score"]) for p in body["predictions"])  # missing is NaN for the trees


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        (b"{not json", 400, "malformed_json", "not valid JSON"),
        (
            {"entities": [{"user_id": 1, "amount": 1.0}], "model": "nope"},
            404,
            "unknown_model",
            "unknown model 'nope'",
        ),
        (
            {"entities": [{"user_id": 1, "amount": 1.0}], "version": 7},
            404,
            "unknown_model",
            "v7 is not deployed",
        ),
        ({"entities": [{"amount": 1.0}]}, 422, "missing_key", "lacks 'user_id'"),
        ({"entities": [{"user_id": 1}]}, 422, "missing_key", "lacks 'amount'"),
        (
            {"entities": [{"user_id": "1", "amount": 1.0}]},
            422,
            "wrong_type",
            "user_id must be an integer",
        ),
        (
            {"entities": [{"user_id": 1, "amount": "lots"}]},
            422,
            "wrong_type",
            "amount must be a number",
        ),
        ({"entities": []}, 422, "invalid_request", "empty"),
        ({"entities": "user 1"}, 422, "invalid_request", "list of objects"),
        ({"entities": [7]}, 422, "invalid_request", "must be an object"),
        ({"users": [1]}, 422, "missing_key", "lacks 'entities'"),
        ([1, 2], 422, "invalid_request", "JSON object"),
        (
            {"entities": [{"user_id": 1, "amount": 1.0}], "version": "1"},
            422,
            "wrong_type",
            "version",
        ),
    ],
)
def test_bad_requests_get_a_json_4xx_naming_the_problem(fraud_server, body, status, code, words):
    got, headers, answer = post(fraud_server.url + "/predict", body)
    assert (got, answer["code"]) == (status, code), answer
    assert words in answer["error"]
    assert headers["Content-Type"] == "application/json"


def test_unknown_paths_and_methods_answer_json(fraud_server):
    status, _, body = post(fraud_server.url + "/nope", {})
    assert (status, body["code"]) == (404, "not_found")
    status, _, body = post(fraud_server.url + "/predict", b"", method="GET")
    assert (status, body["code"]) == (405, "method_not_allowed")


def test_batch_pattern_answers_fresh_precomputed_scores_and_falls_back_to_live(
    repo, store, servers, tmp_path
):
    from datetime import UTC, datetime, timedelta

    import polars as pl

    from fskit.serving import batch_score

    # a model without request-time inputs can be answered from batch scores
    from fskit.training import train

    path = tmp_path / "scores.parquet"
    frame = store.get_historical_features(
        pl.DataFrame(
            {
                "user_id": list(range(100)) * 3,
                "y": [0, 1, 0] * 100,
                "event_timestamp": [datetime.now(UTC) - timedelta(minutes=i) for i in range(300)],
            }
        ),
        FEATURES,
    )
    result = train(
        store, frame, label="y", features=FEATURES, num_boost_round=5, early_stopping_rounds=None
    )
    result.register("batch")
    scores = batch_score(store, "batch", {"user_id": [1, 2, 3]}, path=path)
    assert scores.columns == ["user_id", "score", "version", "scored_at"]
    # user 3's precomputed score is stale: it must be scored live
    stale = scores.with_columns(
        pl.when(pl.col("user_id") == 3)
        .then(pl.col("scored_at") - timedelta(hours=2))
        .otherwise(pl.col("scored_at")),
        pl.when(pl.col("user_id") == 2).then(0.123).otherwise(pl.col("score")).alias("score"),
    )
    stale.write_parquet(path)
    server = servers(store, "batch", batch_scores=path, batch_max_age=timedelta(hours=1))
    _, _, body = post(
        server.url + "/predict",
        {"entities": [{"user_id": 1}, {"user_id": 2}, {"user_id": 3}, {"user_id": 4}]},
    )
    sources = [p["source"] for p in body["predictions"]]
    assert sources == ["batch", "batch", "live", "live"]
    assert body["predictions"][1]["score"] == 0.123
    assert body["predictions"][2]["score"] == pytest.approx(scores["score"][2])
    server.stop()


def test_on_demand_features_are_computed_by_the_training_code(store, servers):
    from datetime import UTC, datetime

    import polars as pl

    from tests.serving.serving_world import RATIO

    server = servers(store, "ondemand")
    meta = server._json("GET", "/v2/models/ondemand")
    assert meta["parameters"]["request_fields"] == ["amount"]  # the on-demand view's request field
    rows = [{"user_id": u, "amount": a} for u, a in [(1, 30.0), (2, 5.0), (195, 7.0)]]
    answer = server.predict(rows, return_features=True)
    served = [p["features"]["amount_ratio"] for p in answer["predictions"]]
    # the same expression object the training set was built with, as of now
    offline = store.get_historical_features(
        pl.DataFrame(rows).with_columns(event_timestamp=pl.lit(datetime.now(UTC))), [RATIO]
    )["amount_ratio"].to_list()
    assert served[:2] == pytest.approx(offline[:2]) and served[2] is None is offline[2]
    status, _, body = post(server.url + "/predict", {"entities": [{"user_id": 1}]})
    assert (status, body["code"]) == (422, "missing_key") and "amount" in body["error"]
