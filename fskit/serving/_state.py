"""Deployment state: which model versions serve, shared by every worker through the repo.

One small JSON file per model, ``<repo>/serving/<model>.json``::

    {"model": "fraud", "stable": 2, "canary": 3, "canary_share": 0.1, "shadow": false,
     "history": [1, 2], "updated_at": "2026-03-01T12:00:00+00:00"}

It is written atomically (a temporary file, then ``os.replace``) under a lock file, so
concurrent ``deploy`` / ``promote`` / ``rollback`` calls from several processes never lose an
update. A server worker stats the file on every request (a few microseconds) and re-reads it
when its inode or mtime changed, so a change takes effect at once in every worker and every
replica sharing the repo, without a restart.

``history`` is the stack of fully promoted versions, oldest first; ``stable`` is its top, and
the one beneath (``previous_stable``) stays loaded in every worker so that ``rollback`` is
instant. Every change is also appended to ``<repo>/serving/<model>.events.jsonl``.

Routing is sticky: an entity key always lands in the same bucket in ``[0, 1)`` (BLAKE2b of
the model name and the encoded key, not Python's salted ``hash``), and goes to the canary
when its bucket is below ``canary_share``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fskit.serving._errors import DeploymentError
from fskit.serving._models import check_model_name, model_registry

if TYPE_CHECKING:
    from fskit.store import FeatureStore

__all__ = ["Deployment", "bucket", "deploy", "promote", "rollback", "status"]

SERVING_DIR = "serving"
_SCALE = float(1 << 64)


def bucket(model: str, key: bytes) -> float:
    """The sticky routing bucket of an encoded entity key, in ``[0, 1)``.

    >>> from fskit.online import encode_key
    >>> b = bucket("fraud", encode_key((42,)))
    >>> 0 <= b < 1 and b == bucket("fraud", encode_key((42,)))
    True
    """
    digest = hashlib.blake2b(key, digest_size=8, person=model.encode()[:16]).digest()
    return int.from_bytes(digest, "big") / _SCALE


@dataclass(frozen=True, kw_only=True)
class Deployment:
    """Which versions of a model serve: ``stable``, and optionally a ``canary``.

    ``canary_share`` of the entities (by key hash) go to the canary; with ``shadow=True``
    the canary scores them too but its answers are only logged, the stable one is returned.
    """

    model: str
    stable: int | None = None
    canary: int | None = None
    canary_share: float = 0.0
    shadow: bool = False
    history: tuple[int, ...] = ()
    updated_at: str | None = None
    _extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def previous_stable(self) -> int | None:
        """The version ``rollback`` returns to when no canary is deployed."""
        return self.history[-2] if len(self.history) >= 2 else None

    @property
    def active_versions(self) -> tuple[int, ...]:
        """The versions a worker keeps loaded: stable, canary and the previous stable."""
        out = [v for v in (self.stable, self.canary, self.previous_stable) if v is not None]
        return tuple(dict.fromkeys(out))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("_extra")
        out["history"] = list(self.history)
        out["previous_stable"] = self.previous_stable
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Deployment:
        return cls(
            model=data["model"],
            stable=data.get("stable"),
            canary=data.get("canary"),
            canary_share=float(data.get("canary_share") or 0.0),
            shadow=bool(data.get("shadow", False)),
            history=tuple(data.get("history") or ()),
            updated_at=data.get("updated_at"),
        )

    def __str__(self) -> str:
        if self.stable is None:
            return f"{self.model}: not deployed"
        text = f"{self.model}: stable v{self.stable}"
        if self.canary is not None:
            mode = "shadow" if self.shadow else "canary"
            text += f", {mode} v{self.canary} on {self.canary_share:.0%} of entities"
        if self.previous_stable is not None:
            text += f" (rollback to v{self.previous_stable})"
        return text


def state_path(repo_path: Path, model: str) -> Path:
    return Path(repo_path) / SERVING_DIR / f"{check_model_name(model)}.json"


def read_state(repo_path: Path, model: str) -> Deployment:
    """The deployment of ``model`` (``stable=None`` when it was never deployed)."""
    path = state_path(repo_path, model)
    try:
        return Deployment.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return Deployment(model=model)


@contextlib.contextmanager
def _locked(repo_path: Path, model: str) -> Iterator[None]:
    path = state_path(repo_path, model)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write(repo_path: Path, state: Deployment, action: str) -> Deployment:
    state = replace(state, updated_at=datetime.now(UTC).isoformat(timespec="milliseconds"))
    path = state_path(repo_path, state.model)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(state.to_dict(), fh, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    event = {"time": state.updated_at, "action": action, **state.to_dict()}
    with open(path.with_suffix(".events.jsonl"), "a") as fh:
        fh.write(json.dumps(event) + "\n")
    return state


def _repo(store: FeatureStore | str | os.PathLike[str]) -> tuple[Path, Any]:
    from fskit.store import FeatureStore

    if not isinstance(store, FeatureStore):
        store = FeatureStore(store)
    return store.repo_path, store


def _check_version(store: FeatureStore, model: str, version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise DeploymentError(f"version must be an int >= 1, got {version!r}")
    registry = model_registry(store)
    registry.get(model, version)  # raises if unknown
    registry.load(model, version)  # raises ModelLoadError if its feature views changed
    return version


def status(store: FeatureStore | str | os.PathLike[str], model: str) -> Deployment:
    """The current deployment of ``model``: stable, canary, share, shadow, history."""
    repo, _ = _repo(store)
    return read_state(repo, check_model_name(model))


def deploy(
    store: FeatureStore | str | os.PathLike[str],
    model: str,
    version: int,
    *,
    share: float | None = None,
    shadow: bool = False,
) -> Deployment:
    """Deploy ``version`` of ``model``: as stable if nothing serves yet, else as the canary.

    Parameters
    ----------
    share
        The share of entities (by sticky key hash) routed to the canary, in ``[0, 1]``;
        default 0.1, or 1.0 in shadow mode. Deploying the current canary again changes it.
    shadow
        The canary scores its share of traffic, but only the stable answers are returned;
        the canary's answers go to the prediction log.

    The version is loaded once here, so a model whose feature views changed is refused
    before any server sees it. Running servers pick the change up on their next request.
    """
    repo, store = _repo(store)
    check_model_name(model)
    version = _check_version(store, model, version)
    if share is None:
        share = 1.0 if shadow else 0.1
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise DeploymentError(f"share must be a number in [0, 1] like 0.1, got {share!r}")
    with _locked(repo, model):
        state = read_state(repo, model)
        if state.stable is None:
            new = replace(state, stable=version, history=(version,))
            return _write(repo, new, f"deploy v{version} as stable")
        if version == state.stable:
            raise DeploymentError(
                f"model {model!r} v{version} is already the stable version; deploy another "
                "version as the canary, or rollback"
            )
        new = replace(state, canary=version, canary_share=float(share), shadow=bool(shadow))
        mode = "shadow" if shadow else "canary"
        return _write(repo, new, f"deploy v{version} as {mode} on {share:.0%}")


def promote(
    store: FeatureStore | str | os.PathLike[str], model: str, version: int | None = None
) -> Deployment:
    """Make the canary (or ``version``, directly) the stable version of ``model``.

    The old stable stays loaded as ``previous_stable`` for an instant :func:`rollback`.
    """
    repo, store = _repo(store)
    check_model_name(model)
    if version is not None:
        version = _check_version(store, model, version)
    with _locked(repo, model):
        state = read_state(repo, model)
        target = state.canary if version is None else version
        if target is None:
            raise DeploymentError(
                f"model {model!r} has no canary to promote ({state}); deploy a version first "
                "or pass version="
            )
        if target == state.stable:
            raise DeploymentError(f"model {model!r} v{target} is already stable")
        new = replace(
            state,
            stable=target,
            canary=None,
            canary_share=0.0,
            shadow=False,
            history=(*state.history, target),
        )
        return _write(repo, new, f"promote v{target}")


def rollback(store: FeatureStore | str | os.PathLike[str], model: str) -> Deployment:
    """Drop the canary if there is one; otherwise return to the previous stable version."""
    repo, _ = _repo(store)
    check_model_name(model)
    with _locked(repo, model):
        state = read_state(repo, model)
        if state.canary is not None:
            new = replace(state, canary=None, canary_share=0.0, shadow=False)
            return _write(repo, new, f"rollback canary v{state.canary}")
        if state.previous_stable is None:
            raise DeploymentError(
                f"model {model!r} has nothing to roll back to ({state}): no canary and no "
                "earlier promoted version"
            )
        new = replace(state, stable=state.previous_stable, history=state.history[:-1])
        return _write(repo, new, f"rollback v{state.stable} to v{state.previous_stable}")


def ensure_deployed(store: FeatureStore, model: str) -> Deployment:
    """The deployment of ``model``; the latest registered version becomes stable if none."""
    repo = store.repo_path
    with _locked(repo, model):
        state = read_state(repo, model)
        if state.stable is not None:
            return state
        latest = model_registry(store).get(model)
        version = int(latest.version)
        return _write(repo, replace(state, stable=version, history=(version,)), "serve latest")


class StateWatcher:
    """Re-reads a deployment file when it changes; one ``stat`` per :meth:`current` call."""

    def __init__(self, repo_path: Path, model: str) -> None:
        self.path = state_path(repo_path, model)
        self.model = model
        self._stamp: tuple[int, int] | None = None
        self.state = Deployment(model=model)

    def current(self) -> tuple[Deployment, bool]:
        """The state and whether it changed since the last call."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            changed = self._stamp is not None
            self._stamp, self.state = None, Deployment(model=self.model)
            return self.state, changed
        stamp = (st.st_ino, st.st_mtime_ns)
        if stamp == self._stamp:
            return self.state, False
        try:
            self.state = Deployment.from_dict(json.loads(self.path.read_text()))
        except (OSError, ValueError, KeyError):  # replaced under us: keep the old, retry next time
            return self.state, False
        self._stamp = stamp
        return self.state, True
