"""Fixtures: the tiny repo of ``serving_world`` (built once) and real server processes."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import fskit as fk
from fskit.serving import ServerHandle, serve
from tests.serving.serving_world import build_repo, free_port


@pytest.fixture(scope="session")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repo directory (built once per session)."""
    root = tmp_path_factory.mktemp("serving")
    return build_repo(root).repo_path


@pytest.fixture(scope="session")
def store(repo: Path) -> fk.FeatureStore:
    return fk.FeatureStore(repo)


@pytest.fixture(scope="session")
def down_repo(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repo whose online store is a Redis nobody listens on."""
    target = tmp_path_factory.mktemp("down") / "repo"
    shutil.copytree(repo, target, ignore=shutil.ignore_patterns("serving"))
    fk.FeatureStore(
        target, online_store={"type": "redis", "url": f"redis://127.0.0.1:{free_port()}/0"}
    )
    return target


@pytest.fixture(scope="session")
def servers() -> Iterator[Callable[..., ServerHandle]]:
    """Start servers with ``servers(store, model, **options)``; all stopped at the end."""
    started: list[ServerHandle] = []

    def start(store: Any, model: str, **options: Any) -> ServerHandle:
        handle = serve(store, model, **options)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


@pytest.fixture(scope="session")
def fraud_server(store: fk.FeatureStore, servers: Callable[..., ServerHandle]) -> ServerHandle:
    """A one-worker server of model ``fraud``, v1 stable; tests must not change its deployment."""
    return servers(store, "fraud")
