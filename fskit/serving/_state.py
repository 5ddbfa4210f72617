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
instant. Every change is also appended to ``<repo>/serving/<model>.events.jsonl``, one JSON
line with the action and the state it produced; :func:`history` reads it as a frame.

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
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from fskit.serving._errors import DeploymentError, ServingError
from fskit.serving._models import check_model_name, model_registry

if TYPE_CHECKING:
    from fskit.store import FeatureStore

__all__ = ["Deployment", "bucket", "deploy", "history", "promote", "rollback", "status"]

SERVING_DIR = "serving"
_SCALE = float(1 << 64)

#: The columns of :func:`history`, one row per deployment change.
HISTORY_SCHEMA = pl.Schema(
    {
        "time": pl.Datetime("us", "UTC"),
        "action": pl.String,
        "stable": pl.Int64,
        "canary": pl.Int64,
        "canary_share": pl.Float64,
        "shadow": pl.Boolean,
        "previous_stable": pl.Int64,
        "history": pl.List(pl.Int64),
        "route_by": pl.List(pl.String),
    }
)


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
    The hash is of ``route_by``, the join keys routing is sticky on (empty: all the stable
    version's join keys, so with ``user_id`` and ``merchant_id`` a user may meet both versions;
    ``route_by=("user_id",)`` keeps each user on one).
    """

    model: str
    stable: int | None = None
    canary: int | None = None
    canary_share: float = 0.0
    shadow: bool = False
    history: tuple[int, ...] = ()
    updated_at: str | None = None
    route_by: tuple[str, ...] = ()
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
        out["route_by"] = list(self.route_by)
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
            route_by=tuple(data.get("route_by") or ()),
        )

    def __str__(self) -> str:
        if self.stable is None:
            return f"{self.model}: not deployed"
        text = f"{self.model}: stable v{self.stable}"
        if self.canary is not None:
            mode = "shadow" if self.shadow else "canary"
            text += f", {mode} v{self.canary} on {self.canary_share:.0%} of entities"
            if self.route_by:
                text += f" (by {', '.join(self.route_by)})"
        if self.previous_stable is not None:
            text += f" (rollback to v{self.previous_stable})"
        return text


def state_path(repo_path: Path, model: str) -> Path:
    return Path(repo_path) / SERVING_DIR / f"{check_model_name(model)}.json"


def events_path(repo_path: Path, model: str) -> Path:
    return state_path(repo_path, model).with_suffix(".events.jsonl")


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
    with open(events_path(repo_path, state.model), "a") as fh:
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


def history(store: FeatureStore | str | os.PathLike[str], model: str) -> pl.DataFrame:
    """Every deployment change of ``model``, oldest first: what was done and what it produced.

    One row per ``deploy``, ``promote``, ``rollback`` (from Python, the CLI or a server's
    ``/deployment`` endpoints) and per first ``serve``, read from the append-only
    ``<repo>/serving/<model>.events.jsonl``.

    Returns
    -------
    polars.DataFrame
        ``time`` (UTC), ``action`` (what happened, e.g. ``"deploy v2 as canary on 10%"``),
        then the state it produced: ``stable``, ``canary``, ``canary_share``, ``shadow``,
        ``previous_stable`` and ``history`` (the stack of promoted versions). No rows, with
        the same columns, when the model was never deployed.

    Examples
    --------
    >>> import tempfile
    >>> import fskit as fk
    >>> store = fk.FeatureStore(tempfile.mkdtemp())
    >>> events = history(store, "fraud")  # never deployed: no rows, the same columns
    >>> events.height
    0
    >>> events.columns  # doctest: +NORMALIZE_WHITESPACE
    ['time', 'action', 'stable', 'canary', 'canary_share', 'shadow', 'previous_stable',
     'history', 'route_by']

    Each row says what was done, when, and the deployment it left (a canary tried, promoted,
    then rolled back):

    >>> history(store, "fraud").select("time", "action", "stable", "canary")  # doctest: +SKIP
    shape: (4, 4)
    ┌─────────────────────────────┬────────────────────────────┬────────┬────────┐
    │ time                        ┆ action                     ┆ stable ┆ canary │
    │ ---                         ┆ ---                        ┆ ---    ┆ ---    │
    │ datetime[μs, UTC]           ┆ str                        ┆ i64    ┆ i64    │
    ╞═════════════════════════════╪════════════════════════════╪════════╪════════╡
    │ 2026-03-01 12:00:34.434 UTC ┆ deploy v1 as stable        ┆ 1      ┆ null   │
    │ 2026-03-01 12:10:39.196 UTC ┆ deploy v2 as canary on 25% ┆ 1      ┆ 2      │
    │ 2026-03-01 12:30:39.205 UTC ┆ promote v2                 ┆ 2      ┆ null   │
    │ 2026-03-01 12:45:39.208 UTC ┆ rollback v2 to v1          ┆ 1      ┆ null   │
    └─────────────────────────────┴────────────────────────────┴────────┴────────┘
    """
    repo, _ = _repo(store)
    path = events_path(repo, check_model_name(model))
    try:
        text = path.read_text()
    except FileNotFoundError:
        return pl.DataFrame(schema=HISTORY_SCHEMA)
    lines = text.split("\n")
    rows = []
    # the last piece is "" after the final newline, or an append still in progress: skip it
    for number, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            rows.append(
                {
                    "time": datetime.fromisoformat(event["time"]),
                    "action": event["action"],
                    "stable": event.get("stable"),
                    "canary": event.get("canary"),
                    "canary_share": float(event.get("canary_share") or 0.0),
                    "shadow": bool(event.get("shadow", False)),
                    "previous_stable": event.get("previous_stable"),
                    "history": list(event.get("history") or ()),
                    "route_by": list(event.get("route_by") or ()),
                }
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ServingError(
                f"line {number} of the deployment history {str(path)!r} is not a deployment "
                f"event ({type(exc).__name__}: {exc}); the file is appended to by deploy, "
                "promote and rollback: restore it from a backup or delete that line"
            ) from None
    return pl.DataFrame(rows, schema=HISTORY_SCHEMA)


def deploy(
    store: FeatureStore | str | os.PathLike[str],
    model: str,
    version: int,
    *,
    share: float | None = None,
    shadow: bool = False,
    as_stable: bool = False,
    route_by: str | Sequence[str] | None = None,
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
    as_stable
        Make ``version`` the stable version at once, for every entity, like
        ``promote(store, model, version=version)``: the old stable becomes
        ``previous_stable`` (an instant :func:`rollback` returns to it) and a canary is
        dropped. Refused together with ``share`` or ``shadow``, and when ``version`` is
        already stable.
    route_by
        The join key(s) the canary split is sticky on, e.g. ``"user_id"``: every row of a
        user then goes to the same version whatever its other keys (a merchant). Default:
        all of the model's join keys. Each must be a join key of ``version``; only for a
        canary (or shadow) deployment.

    The version is loaded once here, so a model whose feature views changed is refused
    before any server sees it. Running servers pick the change up on their next request.
    """
    repo, store = _repo(store)
    check_model_name(model)
    if not isinstance(as_stable, bool):
        raise DeploymentError(f"as_stable must be True or False, got {as_stable!r}")
    if as_stable and (share is not None or shadow):
        raise DeploymentError(
            f"deploy(as_stable=True) makes v{version} of {model!r} stable for every entity, so "
            f"the canary options do not apply (got share={share!r}, shadow={shadow!r}): drop "
            "share= and shadow=, or drop as_stable=True to deploy it as a canary"
        )
    version = _check_version(store, model, version)
    keys = _route_keys(store, model, version, route_by)
    if keys and as_stable:
        raise DeploymentError(
            f"route_by={route_by!r} splits traffic between a stable version and a canary; "
            "deploy(as_stable=True) sends every entity to one version: drop route_by="
        )
    if share is None:
        share = 1.0 if shadow else 0.1
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise DeploymentError(f"share must be a number in [0, 1] like 0.1, got {share!r}")
    with _locked(repo, model):
        state = read_state(repo, model)
        if state.stable is None:
            if keys:
                raise DeploymentError(
                    f"model {model!r} has no stable version yet, so v{version} becomes stable "
                    "for every entity and route_by= has nothing to split: drop it, and pass "
                    "it when you deploy the next version as a canary"
                )
            new = replace(state, stable=version, history=(version,))
            return _write(repo, new, f"deploy v{version} as stable")
        if version == state.stable:
            raise DeploymentError(
                f"model {model!r} v{version} is already the stable version; deploy another "
                "version as the canary, or rollback"
            )
        if as_stable:
            new = replace(
                state,
                stable=version,
                canary=None,
                canary_share=0.0,
                shadow=False,
                route_by=(),
                history=(*state.history, version),
            )
            action = f"deploy v{version} as stable, replacing v{state.stable}"
            if state.canary is not None and state.canary != version:
                action += f"; canary v{state.canary} dropped"
            return _write(repo, new, action)
        new = replace(
            state, canary=version, canary_share=float(share), shadow=bool(shadow), route_by=keys
        )
        mode = "shadow" if shadow else "canary"
        by = f" by {', '.join(keys)}" if keys else ""
        return _write(repo, new, f"deploy v{version} as {mode} on {share:.0%}{by}")


def _route_keys(
    store: FeatureStore, model: str, version: int, route_by: str | Sequence[str] | None
) -> tuple[str, ...]:
    """``route_by`` as a tuple of join keys of ``version``; a clear error otherwise."""
    if route_by is None:
        return ()
    keys = (route_by,) if isinstance(route_by, str) else route_by
    if (
        not isinstance(keys, Sequence)
        or not keys
        or not all(isinstance(k, str) and k for k in keys)
    ):
        raise DeploymentError(
            f"route_by must be a join key name like 'user_id' or a list of them, got {route_by!r}"
        )
    from fskit.serving._predictor import build_spec

    join_keys = build_spec(store, model, model_registry(store).load(model, version)).join_keys
    unknown = [k for k in keys if k not in join_keys]
    if unknown:
        raise DeploymentError(
            f"route_by={list(keys)!r}: {unknown} not join key(s) of {model!r} v{version}; "
            f"its join keys are {list(join_keys)}"
        )
    return tuple(dict.fromkeys(keys))


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
            route_by=(),
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
            new = replace(state, canary=None, canary_share=0.0, shadow=False, route_by=())
            return _write(repo, new, f"rollback canary v{state.canary}")
        if state.previous_stable is None:
            raise DeploymentError(
                f"model {model!r} has nothing to roll back to ({state}): no canary and no "
                "earlier promoted version"
            )
        new = replace(state, stable=state.previous_stable, history=state.history[:-1])
        return _write(repo, new, f"rollback v{state.stable} to v{state.previous_stable}")


def ensure_deployed(store: FeatureStore, model: str, version: int | None = None) -> Deployment:
    """The deployment of ``model``, deploying it first if it never was (what a server runs).

    A model never deployed gets ``version`` as its stable version (default: the latest
    registered one). With ``version`` given and another version already stable, raise
    :class:`DeploymentError` and change nothing: starting a server must not change what the
    running servers of the model answer.
    """
    repo = store.repo_path
    if version is not None:
        version = _check_version(store, model, version)
    with _locked(repo, model):
        state = read_state(repo, model)
        if state.stable is not None:
            if version is None or version == state.stable:
                return state
            raise DeploymentError(
                f"model {model!r} is serving v{state.stable} as its stable version, so serving "
                f"version={version} would change the answers of every running server of it. To "
                f"make v{version} stable, call fk.serving.promote(store, {model!r}, "
                f"version={version}) or fk.serving.deploy(store, {model!r}, {version}, "
                f"as_stable=True) (shell: fskit promote --model {model} --version {version}), "
                f"or deploy it as a canary first; then serve without version="
            )
        if version is None:
            version, action = int(model_registry(store).get(model).version), "serve latest"
        else:
            action = f"serve v{version}"
        return _write(repo, replace(state, stable=version, history=(version,)), action)


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
