"""Open Inference Protocol v2, driven by a stock client: ``tritonclient.http``."""

from __future__ import annotations

from urllib.parse import urlparse

import numpy as np
import pytest

tritonclient_http = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture(scope="module")
def client(fraud_server):
    url = urlparse(fraud_server.url).netloc
    client = tritonclient_http.InferenceServerClient(url=url, concurrency=1)
    yield client
    client.close()


def _inputs(features: dict, binary: bool) -> list:
    inputs = []
    for name, values in features.items():
        if isinstance(values[0], str):
            array = np.array(values, dtype=np.object_)
            tensor = tritonclient_http.InferInput(name, [len(values)], "BYTES")
        else:
            array = np.array(values, dtype=np.float64)
            tensor = tritonclient_http.InferInput(name, [len(values)], "FP64")
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


def test_health_and_metadata_through_the_stock_client(client, fraud_server):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("fraud")
    assert client.is_model_ready("fraud", "1")
    assert not client.is_model_ready("nope")
    assert client.get_server_metadata()["name"] == "fskit"
    meta = client.get_model_metadata("fraud")
    names = [i["name"] for i in meta["inputs"]]
    assert names == ["purchases_7d", "amount_7d", "avg_amount", "age", "country", "amount"]
    assert {i["name"]: i["datatype"] for i in meta["inputs"]}["country"] == "BYTES"
    assert meta["outputs"] == [{"name": "probability", "datatype": "FP64", "shape": [-1]}]
    assert "1" in meta["versions"]
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        client.get_model_metadata("nope")


@pytest.mark.parametrize("binary", [True, False])
def test_infer_on_raw_features_equals_predict_by_key(client, fraud_server, binary):
    answer = fraud_server.predict(
        [{"user_id": u, "amount": 12.5} for u in (5, 6, 7)], return_features=True
    )
    rows = [p["features"] for p in answer["predictions"]]
    features = {name: [r[name] for r in rows] for name in rows[0]}
    outputs = [tritonclient_http.InferRequestedOutput("probability", binary_data=binary)]
    result = client.infer("fraud", _inputs(features, binary), outputs=outputs, request_id="r-1")
    scores = result.as_numpy("probability")
    assert result.get_response()["model_version"] == "1"
    assert result.get_response()["id"] == "r-1"
    np.testing.assert_allclose(scores, [p["score"] for p in answer["predictions"]], rtol=1e-9)


def test_infer_errors_are_4xx_naming_the_problem(client):
    with pytest.raises(InferenceServerException, match="inputs lack"):
        client.infer("fraud", _inputs({"age": [30.0]}, True))
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.infer("nope", _inputs({"age": [30.0]}, True))
    with pytest.raises(InferenceServerException, match="not deployed"):
        client.infer("fraud", _inputs({"age": [30.0]}, True), model_version="9")
