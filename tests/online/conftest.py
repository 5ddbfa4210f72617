"""Real services for the online store tests: a ``redis-server`` process and a backend per kind.

Without the ``redis-server`` binary the Redis tests skip, saying how to install it; with
``FSKIT_REQUIRE_SERVICES=1`` (set by ``.ci/run``) they fail instead, so CI cannot go green
without them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from fskit.online import DiskcacheBackend, OnlineBackend, RedisBackend

# "diskcache-get" is diskcache with its SQL reads turned off: the fallback to Cache.get.
BACKENDS = ["diskcache", "diskcache-get", "redis"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RedisServer:
    """A running ``redis-server`` child process."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        reason = (
            "redis-server is not installed, so the Redis backend tests cannot run "
            "(Debian/Ubuntu: `apt-get install redis-server`; macOS: `brew install redis`)"
        )
        if os.environ.get("FSKIT_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason}; FSKIT_REQUIRE_SERVICES=1 requires it")
        pytest.skip(reason)
    return binary


def start_redis(directory: Path) -> RedisServer:
    """Start ``redis-server`` on 127.0.0.1 and a free port, without persistence; wait for PING."""
    binary = _redis_binary()
    directory.mkdir(parents=True, exist_ok=True)
    for _attempt in range(3):  # the free port may be taken between probe and bind
        port = _free_port()
        with open(directory / f"redis-{port}.log", "wb") as log:
            process = subprocess.Popen(
                [
                    binary,
                    "--port", str(port),
                    "--bind", "127.0.0.1",
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", str(directory),
                    "--daemonize", "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        client = redis.Redis(port=port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            try:
                client.ping()
            except redis.ConnectionError:
                time.sleep(0.02)
                continue
            client.close()
            return RedisServer(process, port)
        client.close()
        RedisServer(process, port).stop()
    log_text = (directory / f"redis-{port}.log").read_text(errors="replace")
    pytest.fail(f"redis-server did not answer PING on port {port}; its log:\n{log_text}")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real redis-server shared by the session's tests."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    """Start extra redis-servers a test may stop; any left running are stopped afterwards."""
    servers: list[RedisServer] = []

    def start() -> RedisServer:
        server = start_redis(tmp_path / f"redis-{len(servers)}")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def make_backend(kind: str, request: pytest.FixtureRequest, path: Path) -> OnlineBackend:
    if kind.startswith("diskcache"):
        store = DiskcacheBackend(path)
        store._sql_reads = kind == "diskcache"
        return store
    # A namespace per test keeps tests apart on the shared server.
    return RedisBackend(request.getfixturevalue("redis_server"), namespace=f"t{uuid.uuid4().hex}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineBackend]:
    """Each backend in turn: diskcache in a temp dir (both read paths), Redis on the
    session's server."""
    store = make_backend(request.param, request, tmp_path / "online")
    try:
        yield store
    finally:
        store.close()
