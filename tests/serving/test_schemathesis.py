"""schemathesis against the server's own OpenAPI schema: no input gets a 5xx.

Driven through schemathesis' Python API (each operation's hypothesis strategy) rather than
its pytest plugin, whose lazy fixture loading does not run under pytest 9.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402

AUTH = {"Authorization": "Bearer fuzz"}


def test_no_input_makes_the_server_fail(store, servers):
    # its own model name, since the deployment endpoints are fuzzed too
    server = servers(store, "schema", token="fuzz")
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    calls = 0
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def run(case):
            nonlocal calls
            calls += 1
            case.call_and_validate(base_url=server.url, checks=[not_a_server_error], headers=AUTH)

        run()
    assert calls >= 200
    assert server.health()["live"]
