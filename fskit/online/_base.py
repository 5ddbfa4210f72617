"""The contract every online backend keeps, and the checks they share.

An online backend is a dumb, fast map from ``(table, key bytes)`` to value bytes. It knows
nothing of feature views: the layer above names the table (``"user_stats@v1"``), encodes keys
and rows with :mod:`fskit.online._codec`, and decodes what comes back. The one thing a backend
understands about values is their first 8 bytes, the event-timestamp prefix, which it compares
bytewise to keep the newest row per key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from fskit.errors import DefinitionError, OnlineStoreError

__all__ = ["OnlineBackend", "read_many"]

TABLE_PATTERN = re.compile(r"[A-Za-z0-9_\-@.]{1,200}")
PREFIX_SIZE = 8

_B = TypeVar("_B", bound="BackendBase")


@runtime_checkable
class OnlineBackend(Protocol):
    """What the feature store needs from an online store backend.

    Semantics every backend keeps (``tests/online/test_backends.py`` checks them on each):

    * **Items are atomic.** A reader sees a key's old value or its new one, never a mix.
    * **A write call is one transaction** where the backend supports it (diskcache: one
      SQLite transaction; Redis: one ``MULTI``/``EXEC``): it lands whole or not at all, and an
      invalid item anywhere in the batch means nothing is written.
    * **only_newer** (the default): an item is skipped when the stored value's 8-byte
      timestamp prefix is *greater* than the new one, so a late, out-of-order push cannot
      overwrite newer data. **Ties go to the last write**: a row re-sent for the same event
      time (a correction, created later) replaces the stored one. Items in one call apply in
      order, so a batch holding a key twice behaves like two calls.
    * **Tables are isolated**: the same key bytes in ``"v@1"`` and ``"v@2"`` are two entries.
    """

    def write(
        self,
        table: str,
        items: Iterable[tuple[bytes, bytes]],
        *,
        only_newer: bool = True,
    ) -> int:
        """Store ``(key, value)`` pairs in ``table``; return how many were written."""
        ...

    def read(self, table: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """Return the stored value of each key, in order, or ``None`` where there is none.

        A backend may also offer ``read_many(requests)``, the reads of several tables in one
        query or round trip (see :func:`read_many`); the built-in backends do.
        """
        ...

    def delete_table(self, table: str) -> int:
        """Delete every entry of ``table``; return how many there were."""
        ...

    def tables(self) -> list[str]:
        """The names of the tables holding entries, sorted."""
        ...

    def ping(self) -> None:
        """Return if the store answers; raise ``StoreUnavailableError`` saying how to fix it."""
        ...

    def close(self) -> None:
        """Release connections; the backend cannot be used afterwards."""
        ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc_info: object) -> None: ...


class BackendBase:
    """Shared plumbing: context manager and the closed flag. Not part of the public API."""

    _closed: bool = False

    def __enter__(self: _B) -> _B:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise OnlineStoreError(f"{self!r} is closed; create a new backend to use the store")


def read_many(
    backend: OnlineBackend, requests: Sequence[tuple[str, Sequence[bytes]]]
) -> list[list[bytes | None]]:
    """``[backend.read(table, keys) for table, keys in requests]``, in one go where it can.

    The built-in backends read every table of a request in one SQLite query (diskcache) or
    one ``MGET`` (Redis): one round trip, and the views of one online request come from one
    consistent snapshot. Any other backend is read table by table.
    """
    many = getattr(backend, "read_many", None)
    if many is not None:
        return many(requests)
    return [backend.read(table, keys) for table, keys in requests]


def prefixed_keys(
    requests: Sequence[tuple[str, Sequence[bytes]]], prefix: Any
) -> tuple[list[list[bytes]], list[bytes]]:
    """Each request's keys with its table's ``prefix(table)``, and all of them in one list."""
    groups: list[list[bytes]] = []
    every: list[bytes] = []
    for table, keys in requests:
        head = prefix(table)
        try:
            full = [head + key for key in keys]
        except TypeError:
            for index, key in enumerate(keys):
                if not isinstance(key, bytes):
                    raise bad_key(table, index, key) from None
            raise
        groups.append(full)
        every.extend(full)
    return groups, every


def check_table(table: Any) -> str:
    """Return ``table`` if it is a valid online table name, else raise ``DefinitionError``.

    >>> check_table("user_stats@v1")
    'user_stats@v1'
    >>> check_table("user stats")
    Traceback (most recent call last):
    ...
    fskit.errors.DefinitionError: online table name 'user stats' is invalid: ...
    """
    if isinstance(table, str) and TABLE_PATTERN.fullmatch(table):
        return table
    raise DefinitionError(
        f"online table name {table!r} is invalid: use 1-200 letters, digits and '_-@.', "
        "like 'user_stats@v1' (the feature view's name and version)"
    )


def checked_items(
    table: str, prefix: bytes, items: Iterable[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """Validate a whole write batch before anything is written; keys get ``prefix``.

    Raises :class:`OnlineStoreError` (see :func:`bad_item`) on the first malformed item.
    """
    batch: list[tuple[bytes, bytes]] = []
    for index, item in enumerate(items):
        try:
            key, value = item
        except (TypeError, ValueError):
            raise bad_item(table, index, item) from None
        if not isinstance(key, bytes) or not isinstance(value, bytes) or len(value) < PREFIX_SIZE:
            raise bad_item(table, index, item)
        batch.append((prefix + key, value))
    return batch


def bad_item(table: str, index: int, item: Any) -> OnlineStoreError:
    """The error for a malformed ``(key, value)`` item at ``index`` of a write batch."""
    try:
        key, value = item
    except (TypeError, ValueError):
        return OnlineStoreError(
            f"item {index} written to {table!r} is {item!r:.100}; expected a (key, value) pair "
            "of bytes. Nothing was written."
        )
    if not isinstance(key, bytes):
        problem = f"its key {key!r:.60} is a {type(key).__name__}, not bytes (use encode_key)"
    elif not isinstance(value, bytes):
        problem = f"its value {value!r:.60} is a {type(value).__name__}, not bytes (use encode_row)"
    else:
        problem = (
            f"its value {value!r:.60} is shorter than the {PREFIX_SIZE}-byte timestamp "
            "prefix (use encode_row)"
        )
    return OnlineStoreError(
        f"item {index} written to {table!r} is invalid: {problem}. Nothing was written."
    )


def bad_key(table: str, index: int, key: Any) -> OnlineStoreError:
    """The error for a key at ``index`` of a read batch that is not bytes."""
    return OnlineStoreError(
        f"key {index} read from {table!r} is {key!r:.60}, a {type(key).__name__}; keys are "
        "bytes from encode_key"
    )
