"""Dynamic batching: concurrent ``/predict`` requests scored together, answered apart.

A real server; many requests sent at once over separate connections, so the server holds
several of them in one event-loop turn. Each answer must be what that request alone gets, a
bad request fails alone, and the prediction log keeps each row's own request id.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import polars as pl

from fskit.serving import Predictor, parse_prometheus, read_prediction_log
from fskit.serving._errors import RequestError


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _concurrently(url: str, bodies: list[dict]) -> list[tuple[int, dict]]:
    answers: list[tuple[int, dict] | None] = [None] * len(bodies)
    start = threading.Barrier(len(bodies))

    def send(i: int) -> None:
        start.wait()
        answers[i] = _post(url, bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return answers  # type: ignore[return-value]


def test_concurrent_requests_get_their_own_answers(store, servers):
    server = servers(store, "fraud")
    url = server.url + "/predict"
    bodies = [
        {"entities": [{"user_id": i % 7, "amount": 10.0 + i}], "request_id": f"req-{i}"}
        for i in range(24)
    ]
    bodies[5] = {"entities": [{"user_id": "five", "amount": 1.0}], "request_id": "bad"}
    bodies[9] = {"entities": [{"user_id": 1, "amount": 3.0}, {"user_id": 2, "amount": 4.0}]}
    alone = {i: _post(url, b) for i, b in enumerate(bodies)}  # one at a time: the reference
    for _ in range(3):  # several rounds: at least one holds requests in the same loop turn
        together = _concurrently(url, bodies)
        for i, (status, body) in enumerate(together):
            ref_status, ref = alone[i]
            assert status == ref_status, (i, body)
            if status != 200:
                assert body["code"] == "wrong_type" and "user_id" in body["error"]
                continue
            scores = [p["score"] for p in body["predictions"]]
            assert scores == [p["score"] for p in ref["predictions"]]
            if "request_id" in bodies[i]:
                assert body["request_id"] == bodies[i]["request_id"]
    # the rounds sent together were (at least once) scored in shared batches
    metrics = parse_prometheus(server.metrics())
    batches = sum(v for (name, _), v in metrics.items() if name == "fskit_batches_total")
    batched = sum(v for (name, _), v in metrics.items() if name == "fskit_batched_requests_total")
    assert batched == len(bodies) * 4  # every request went through the batcher
    assert batches < batched
    server.stop()
    log = read_prediction_log(store, "fraud").filter(pl.col("request_id").str.starts_with("req-"))
    # each logged row carries its own request's id and inputs, whatever batch it was in:
    # 4 rounds (alone + 3 together) of every good single-row request
    per_request = log.group_by("request_id").agg(pl.col("amount").unique(), pl.len())
    expected = {f"req-{i}": 10.0 + i for i in range(24) if i not in (5, 9)}
    assert sorted(per_request["request_id"]) == sorted(expected)
    for request_id, amounts, count in per_request.iter_rows():
        assert (amounts, count) == ([expected[request_id]], 4)


def test_predict_many_scores_a_batch_as_each_request_alone(store):
    predictor = Predictor(store, "fraud")
    predictor.pin(1)
    requests = [
        ([{"user_id": 1, "amount": 5.0}], "a"),
        ([{"user_id": "x", "amount": 5.0}], "b"),  # bad: fails alone
        ({"user_id": [2, 3], "amount": [6.0, 7.0]}, None),
    ]
    results = predictor.predict_many(requests, version=1)
    assert isinstance(results[1], RequestError) and "entities[0].user_id" in str(results[1])
    for (entities, request_id), result in zip(requests, results, strict=True):
        if isinstance(result, RequestError):
            continue
        alone = predictor.predict(entities, version=1)
        assert [p["score"] for p in result.body["predictions"]] == [
            p["score"] for p in alone.body["predictions"]
        ]
        if request_id:
            assert result.body["request_id"] == request_id
    assert results[0].body["request_id"] != results[2].body["request_id"]
    assert predictor.predict_many([]) == []
