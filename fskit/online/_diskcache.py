"""The embedded online backend: one ``diskcache`` directory (SQLite in WAL mode).

Layout and choices, each measured in ``benchmarks/online_backends.py``:

* **Keys** are ``table.encode() + b"\\x00" + key``: plain bytes, so diskcache stores them as
  raw BLOBs. (Tuple keys would be pickled.) Table names cannot hold ``\\x00``, so no table's
  keys can collide with another's. The list of tables lives under the key ``b"\\x00tables"``,
  which no table key can equal.
* **Values** are the codec's bytes, always stored inline in the SQLite row (never in side
  files), so every write is covered by the SQLite transaction. A custom ``Disk`` refuses to
  store or load anything but raw bytes: nothing read from the directory is ever unpickled.
* **No eviction** (``eviction_policy="none"``, ``cull_limit=0``): diskcache's default 1 GB
  limit would silently drop features.
* **One write call = one SQLite transaction** (``Cache.transact``). A process killed mid-write
  leaves the previous values, all of them (``tests/online/test_crash.py``). Readers are not
  blocked (WAL); other writers wait for up to ``timeout`` seconds.
* **delete_table** uses diskcache tags: every entry is tagged with its table and
  ``Cache.evict(tag)`` deletes them in one transaction. There is *no* tag index: it slowed
  first writes by 20-30 % and only saves the SQL scan of the tag column (about 0.1 s per
  million entries), while deleting the rows themselves costs far more. Deleting a version is
  rare; writing is the hot path.
* **Reads go straight to SQLite**: one ``SELECT ... WHERE key IN (...)`` per 500 keys on
  diskcache's ``Cache`` table, over a connection of our own. A batch of 100 keys is one query
  instead of 100 ``Cache.get`` calls (about 4x faster), and a batch is one consistent snapshot.
  ``only_newer`` reads the stored timestamps of a whole write batch the same way, inside the
  write transaction. The table's layout is diskcache's on-disk format; it is checked when the
  backend opens, and if it ever differs the backend falls back to ``Cache.get``.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import diskcache
import msgpack
from diskcache.core import MODE_RAW, UNKNOWN

from fskit.errors import OnlineStoreError, StoreUnavailableError
from fskit.online._base import (
    PREFIX_SIZE,
    BackendBase,
    check_table,
    checked_items,
    prefixed_keys,
)

__all__ = ["DiskcacheBackend"]

SETTINGS_MMAP = 2**30  # address space only; diskcache's own connections use 64 MB

#: diskcache settings, persisted in the directory (so other processes open it the same way).
SETTINGS: dict[str, Any] = {
    "eviction_policy": "none",  # never drop features to stay under a size limit
    "cull_limit": 0,  # no expiry sweep on every set: fskit never sets `expire`
    "statistics": False,  # reads stay read-only (no hit/miss counters to update)
    "tag_index": False,  # see the module docstring
}

_TABLES_KEY = b"\x00tables"
#: keys per SQL query (SQLite allows 32766 parameters; smaller queries plan faster)
QUERY_KEYS = 500
_NEEDED_COLUMNS = {"key", "raw", "mode", "value", "expire_time"}
_STAMP = f"substr(value, 1, {PREFIX_SIZE})"
_SELECT_ONE = {
    what: (
        f"SELECT key, mode, {what} FROM Cache WHERE key = ? AND raw = 1"
        " AND (expire_time IS NULL OR expire_time > ?)"
    )
    for what in ("value", _STAMP)
}


@functools.lru_cache(maxsize=64)
def _select_many(what: str, count: int) -> str:
    return (
        f"SELECT key, mode, {what} FROM Cache WHERE key IN ({','.join('?' * count)})"
        " AND raw = 1 AND (expire_time IS NULL OR expire_time > ?)"
    )


class _BytesDisk(diskcache.Disk):
    """A diskcache ``Disk`` for bytes keys and bytes values only; it never pickles."""

    def put(self, key: Any) -> tuple[bytes, bool]:
        if type(key) is not bytes:
            raise OnlineStoreError(f"diskcache key {key!r:.60} must be bytes")
        return key, True

    def get(self, key: Any, raw: bool) -> bytes:
        if not raw:
            raise OnlineStoreError(
                "refusing to unpickle a key in the online store; the directory holds entries "
                "not written by fskit"
            )
        return bytes(key)

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> tuple[int, int, None, bytes]:
        if read or type(value) is not bytes:
            raise OnlineStoreError(f"diskcache value {value!r:.60} must be bytes")
        return 0, MODE_RAW, None, value

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> bytes:
        if mode == MODE_RAW and isinstance(value, bytes):
            return value
        raise _not_raw(mode)


def _not_raw(mode: int) -> OnlineStoreError:
    return OnlineStoreError(
        f"refusing to load an online store entry stored with diskcache mode {mode} "
        "(pickle or file): fskit writes raw bytes only, so something else wrote it. "
        "Delete the table and materialize it again."
    )


class DiskcacheBackend(BackendBase):
    """Online store in a local ``diskcache`` directory; several processes may share it.

    Parameters
    ----------
    path
        The directory; created if missing. ``backend_from_config`` puts it under the repo.
    timeout
        Seconds a write waits for another process's write transaction before giving up.

    Examples
    --------
    >>> import tempfile
    >>> from fskit.online import encode_key, encode_row, decode_row
    >>> with DiskcacheBackend(tempfile.mkdtemp()) as store:
    ...     store.write("user_stats@v1", [(encode_key(7), encode_row(1_000, [2.5]))])
    ...     [decode_row(v) if v else v for v in store.read("user_stats@v1", [encode_key(7), encode_key(8)])]
    1
    [(1000, [2.5]), None]
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 60.0) -> None:
        self.path = Path(path).expanduser().absolute()
        self.timeout = timeout
        self._prefixes: dict[str, bytes] = {}
        self._local = threading.local()
        try:
            self._cache = diskcache.Cache(
                str(self.path), timeout=timeout, disk=_BytesDisk, **SETTINGS
            )
            columns = {row[1] for row in self._connection().execute("PRAGMA table_info(Cache)")}
        except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
            raise StoreUnavailableError(
                f"cannot open the diskcache online store at {str(self.path)!r}: {exc}. "
                "Check that the directory is writable and not on a network file system."
            ) from exc
        self._sql_reads = columns >= _NEEDED_COLUMNS

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        return f"DiskcacheBackend(path={str(self.path)!r}{state})"

    def _prefix(self, table: str) -> bytes:
        prefix = self._prefixes.get(table)
        if prefix is None:
            prefix = self._prefixes[table] = check_table(table).encode() + b"\x00"
        return prefix

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError:
        if isinstance(exc, diskcache.Timeout):
            reason = (
                f"another process held the write lock for more than {self.timeout} s; "
                "retry, or pass a larger `timeout`"
            )
        else:
            reason = f"{exc}; check the directory exists, is writable and the disk is not full"
        return StoreUnavailableError(
            f"diskcache online store at {str(self.path)!r} failed: {reason}"
        )

    # -- reading many keys at once -------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """This thread's read connection to the cache database (reopened after a fork)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.pid, local.con = os.getpid(), None
        if local.con is None:
            con = sqlite3.connect(
                self.path / diskcache.core.DBNAME,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            con.execute(f"PRAGMA mmap_size = {SETTINGS_MMAP}")
            local.con = con
        return local.con

    def _lookup(self, keys: list[bytes], *, stamps: bool = False) -> dict[bytes, bytes]:
        """The stored value of each of ``keys`` present, or only its 8-byte timestamp."""
        if not self._sql_reads:  # diskcache changed its table layout: use its public API
            get = self._cache.get
            values = {key: get(key) for key in keys}
            end = PREFIX_SIZE if stamps else None
            return {key: value[:end] for key, value in values.items() if value is not None}
        con = self._connection()
        what = _STAMP if stamps else "value"
        now = time.time()
        if len(keys) == 1:
            rows = con.execute(_SELECT_ONE[what], (keys[0], now)).fetchall()
        else:
            rows = []
            for start in range(0, len(keys), QUERY_KEYS):
                part = keys[start : start + QUERY_KEYS]
                query = _select_many(what, len(part))
                rows += con.execute(query, (*part, now)).fetchall()
        found: dict[bytes, bytes] = {}
        for key, mode, value in rows:
            if mode != MODE_RAW or not isinstance(value, bytes):
                raise _not_raw(mode)
            found[key] = value
        return found

    # -- the registry of tables, kept in the same transactions as the data ---------------

    def _read_tables(self) -> list[str]:
        data = self._cache.get(_TABLES_KEY)
        if data is None:
            return []
        try:
            names = msgpack.unpackb(data, raw=False)
        except (ValueError, TypeError) as exc:
            raise OnlineStoreError(
                f"the table list in {str(self.path)!r} is corrupt ({exc})"
            ) from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise OnlineStoreError(f"the table list in {str(self.path)!r} is corrupt")
        return names

    def _write_tables(self, names: Iterable[str]) -> None:
        self._cache.set(_TABLES_KEY, msgpack.packb(sorted(names)))

    # -- the protocol --------------------------------------------------------------------

    def write(
        self,
        table: str,
        items: Iterable[tuple[bytes, bytes]],
        *,
        only_newer: bool = True,
    ) -> int:
        """Write ``(key, value)`` items into ``table`` in one transaction; see
        :class:`~fskit.online.OnlineBackend` for the rules. Returns the number written."""
        self._check_open()
        prefix = self._prefix(table)
        batch = checked_items(table, prefix, items)
        if not batch:
            return 0
        cache = self._cache
        put = cache.set
        written = 0
        try:
            with cache.transact():
                # We hold the write lock, so what the read connection sees is current; items
                # of this batch are compared through `latest` as they are written.
                latest = self._lookup([k for k, _ in batch], stamps=True) if only_newer else {}
                for key, value in batch:
                    if only_newer:
                        stamp = value[:PREFIX_SIZE]
                        seen = latest.get(key)
                        if seen is not None and seen > stamp:
                            continue
                        latest[key] = stamp
                    put(key, value, tag=table)
                    written += 1
                names = self._read_tables()
                if written and table not in names:
                    self._write_tables([*names, table])
        except (sqlite3.Error, diskcache.Timeout, OSError) as exc:
            raise self._unavailable(exc) from exc
        return written

    def read(self, table: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """Return the value of each key in ``table`` (``None`` where missing).

        Up to 500 keys are one SQL query, so one consistent snapshot."""
        return self.read_many([(table, keys)])[0]

    def read_many(
        self, requests: Sequence[tuple[str, Sequence[bytes]]]
    ) -> list[list[bytes | None]]:
        """:meth:`read` of several ``(table, keys)`` at once: up to 500 keys in all are one
        SQL query, so the tables are read from one consistent snapshot."""
        self._check_open()
        groups, every = prefixed_keys(requests, self._prefix)
        if not every:
            return [[] for _ in groups]
        try:
            found = self._lookup(every)
        except (sqlite3.Error, OSError) as exc:
            raise self._unavailable(exc) from exc
        get = found.get
        return [[get(key) for key in full] for full in groups]

    def delete_table(self, table: str) -> int:
        """Delete all entries of ``table`` in one transaction; return how many there were."""
        self._check_open()
        check_table(table)
        cache = self._cache
        try:
            with cache.transact():
                count = cache.evict(table)
                names = self._read_tables()
                if table in names:
                    self._write_tables(n for n in names if n != table)
        except (sqlite3.Error, diskcache.Timeout, OSError) as exc:
            raise self._unavailable(exc) from exc
        return count

    def tables(self) -> list[str]:
        """The tables holding entries, sorted."""
        self._check_open()
        try:
            return self._read_tables()
        except (sqlite3.Error, OSError) as exc:
            raise self._unavailable(exc) from exc

    def ping(self) -> None:
        """Check the directory is there and its database answers."""
        self._check_open()
        if not self.path.is_dir():
            raise StoreUnavailableError(
                f"diskcache online store directory {str(self.path)!r} is gone; "
                "create a new backend (it recreates the directory) and materialize again"
            )
        try:
            self._cache.get(_TABLES_KEY)
        except (sqlite3.Error, OSError) as exc:
            raise self._unavailable(exc) from exc

    def close(self) -> None:
        """Close this thread's SQLite connections. Safe to call twice."""
        if not self._closed:
            self._cache.close()
            con = getattr(self._local, "con", None)
            if con is not None and getattr(self._local, "pid", None) == os.getpid():
                con.close()
            self._local.con = None
        super().close()
