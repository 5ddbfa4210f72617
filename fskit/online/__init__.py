"""The online store's storage layer: a small backend protocol, two backends, a codec.

The feature store (``FeatureStore.materialize``, ``push``, ``get_online_features``) sits on
top: it names a table per feature view version (``"user_stats@v1"``), encodes entity keys
and rows with this codec, and hands bytes to a backend.

>>> import tempfile
>>> from pathlib import Path
>>> repo = Path(tempfile.mkdtemp())
>>> with backend_from_config({"type": "diskcache", "path": "online"}, repo) as store:
...     store.write("user_stats@v1", [(encode_key(1), encode_row(5, [0.5, "gold"]))])
...     decode_row(store.read("user_stats@v1", [encode_key(1)])[0])
1
(5, [0.5, 'gold'])
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fskit.errors import DefinitionError

# Backends
from fskit.online._base import OnlineBackend, read_many

# Codec
from fskit.online._codec import decode_row, encode_frame, encode_key, encode_row
from fskit.online._diskcache import DiskcacheBackend
from fskit.online._redis import RedisBackend

__all__ = [
    # Backends
    "DiskcacheBackend",
    "OnlineBackend",
    "RedisBackend",
    "backend_from_config",
    "read_many",
    # Codec
    "decode_row",
    "encode_frame",
    "encode_key",
    "encode_row",
]

#: The config keys each backend type accepts (besides ``type``).
BACKEND_OPTIONS: dict[str, tuple[str, ...]] = {
    "diskcache": ("path", "timeout"),
    "redis": ("url", "namespace", "timeout"),
}


def backend_from_config(
    config: Mapping[str, Any], repo_path: str | os.PathLike[str]
) -> OnlineBackend:
    """Build the online backend a feature repo's config describes.

    Parameters
    ----------
    config
        ``{"type": "diskcache", "path": "online"}`` (the default; a relative ``path`` is
        under ``repo_path``) or ``{"type": "redis", "url": "redis://host:6379/0",
        "namespace": "fskit"}``. Both accept ``timeout`` in seconds.
    repo_path
        The feature repo directory.

    Examples
    --------
    >>> backend_from_config({"type": "redis", "url": "redis://127.0.0.1:6399/1"}, ".")
    RedisBackend(url='redis://127.0.0.1:6399/1', namespace='fskit')
    >>> backend_from_config({"type": "memcached"}, ".")
    Traceback (most recent call last):
    ...
    fskit.errors.DefinitionError: online store type 'memcached' is unknown; expected one of ['diskcache', 'redis']...
    """
    if not isinstance(config, Mapping):
        raise DefinitionError(
            f"online store config must be a mapping like {{'type': 'diskcache', 'path': "
            f"'online'}}, got {config!r}"
        )
    options = dict(config)
    kind = options.pop("type", "diskcache")
    if kind not in BACKEND_OPTIONS:
        raise DefinitionError(
            f"online store type {kind!r} is unknown; expected one of {sorted(BACKEND_OPTIONS)}. "
            "Set `type` in the online store config."
        )
    unknown = sorted(set(options) - set(BACKEND_OPTIONS[kind]))
    if unknown:
        raise DefinitionError(
            f"online store config for type {kind!r} has unknown key(s) {unknown}; "
            f"allowed: {['type', *BACKEND_OPTIONS[kind]]}"
        )
    timeout = options.get("timeout", 1.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise DefinitionError(
            f"online store config 'timeout' must be a positive number of seconds, got {timeout!r}"
        )
    if kind == "diskcache":
        path = options.pop("path", "online")
        if not isinstance(path, (str, os.PathLike)):
            raise DefinitionError(
                f"online store config 'path' must be a directory path, got {path!r}"
            )
        return DiskcacheBackend(Path(repo_path) / Path(path).expanduser(), **options)
    url = options.get("url", "redis://127.0.0.1:6379/0")
    if not isinstance(url, str):
        raise DefinitionError(
            f"online store config 'url' must be a string like 'redis://127.0.0.1:6379/0', "
            f"got {url!r}"
        )
    return RedisBackend(**options)
