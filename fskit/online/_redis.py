"""The shared online backend: a real ``redis-server``, for many readers on many machines.

Layout and choices:

* **Keys** are ``namespace:table:key`` (``b"fskit:user_stats@v1:" + key``), one Redis string
  per entity, holding the codec's value bytes. Neither namespaces nor table names may hold
  ``:``, so tables cannot collide. The set ``namespace::tables`` lists the tables.
* **Reads** are one ``MGET``: one round trip, one atomic snapshot of the batch.
* **Writes** are one ``MULTI``/``EXEC`` transaction of Lua calls (chunks of
  ``CHUNK`` items each). With ``only_newer`` the script reads each stored value's 8-byte
  prefix (``GETRANGE key 0 7``) and compares it as two unsigned 32-bit halves
  (``struct.unpack('>I4I4', ...)``), not with Lua's string ``<``: that uses ``strcoll``, and
  Redis sets ``LC_COLLATE`` from its environment, so under a UTF-8 locale it would not
  compare bytes. (Halves, because Lua numbers are doubles: exact to 2**53 only.)
  A client killed before ``EXEC`` leaves nothing applied; ``EXEC`` runs the whole batch
  without any other client's command in between.
* **delete_table** has no index to use: it walks the keyspace with ``SCAN MATCH
  namespace:table:*`` and ``UNLINK``s what it finds, in batches. It is not atomic; delete a
  version after its readers and writers moved on.
* **Connection problems** raise :class:`~fskit.errors.StoreUnavailableError` fast: one retry
  (for a pooled connection the server closed), then the error, naming the address and fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from fskit.errors import DefinitionError, OnlineStoreError, StoreUnavailableError
from fskit.online._base import (
    TABLE_PATTERN,
    BackendBase,
    check_table,
    checked_items,
    prefixed_keys,
)

__all__ = ["RedisBackend"]

#: items per Lua call inside one write transaction (keeps each call's argument list small)
CHUNK = 5_000
_SCAN_COUNT = 1_000

# KEYS: the full keys. ARGV: the values, in the same order. Returns the number written.
_WRITE_NEWER = """
local written = 0
for i = 1, #KEYS do
  local new = ARGV[i]
  local old = redis.call('GETRANGE', KEYS[i], 0, 7)
  local skip = false
  if #old == 8 then
    local old_hi, old_lo = struct.unpack('>I4I4', old)
    local new_hi, new_lo = struct.unpack('>I4I4', new)
    skip = old_hi > new_hi or (old_hi == new_hi and old_lo > new_lo)
  end
  if not skip then
    redis.call('SET', KEYS[i], new)
    written = written + 1
  end
end
return written
"""


def _redact(url: str) -> str:
    """The url without its password, for messages and repr."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


class RedisBackend(BackendBase):
    """Online store in Redis, shared by every process that can reach the server.

    Parameters
    ----------
    url
        A redis-py URL, e.g. ``"redis://127.0.0.1:6379/0"`` or ``"unix:///run/redis.sock"``.
    namespace
        Prefix of every key, so several feature repos can share one Redis database.
    timeout
        Seconds to wait for a connection or a reply before raising
        :class:`~fskit.errors.StoreUnavailableError`.

    Nothing is sent to the server until the first call (use :meth:`ping` to check early).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "fskit",
        timeout: float = 5.0,
    ) -> None:
        if not isinstance(namespace, str) or not TABLE_PATTERN.fullmatch(namespace):
            raise DefinitionError(
                f"RedisBackend namespace {namespace!r} is invalid: use 1-200 letters, digits "
                "and '_-@.', e.g. 'fskit' or 'shop-prod'"
            )
        self.url = url
        self.namespace = namespace
        self.timeout = timeout
        try:
            self._client = redis.Redis.from_url(
                url,
                decode_responses=False,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 1),
            )
        except ValueError as exc:
            raise DefinitionError(
                f"RedisBackend url {_redact(url)!r} is invalid ({exc}); expected e.g. "
                "'redis://127.0.0.1:6379/0'"
            ) from None
        self._write_newer = self._client.register_script(_WRITE_NEWER)
        self._tables_key = f"{namespace}::tables".encode()
        self._prefixes: dict[str, bytes] = {}

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        return f"RedisBackend(url={_redact(self.url)!r}, namespace={self.namespace!r}{state})"

    def _prefix(self, table: str) -> bytes:
        prefix = self._prefixes.get(table)
        if prefix is None:
            check_table(table)
            prefix = self._prefixes[table] = f"{self.namespace}:{table}:".encode()
        return prefix

    def _error(self, exc: redis.RedisError) -> OnlineStoreError:
        where = _redact(self.url)
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            return StoreUnavailableError(
                f"Redis at {where!r} is unreachable ({exc}). Start it (e.g. "
                "`redis-server --port 6379`) or fix the online store's `url` in the repo config."
            )
        return OnlineStoreError(f"Redis at {where!r} refused the operation: {exc}")

    # -- the protocol --------------------------------------------------------------------

    def write(
        self,
        table: str,
        items: Iterable[tuple[bytes, bytes]],
        *,
        only_newer: bool = True,
    ) -> int:
        """Write ``(key, value)`` items into ``table`` in one ``MULTI``/``EXEC``; see
        :class:`~fskit.online.OnlineBackend` for the rules. Returns the number written."""
        self._check_open()
        prefix = self._prefix(table)
        batch = checked_items(table, prefix, items)
        keys = [key for key, _ in batch]
        values = [value for _, value in batch]
        if not keys:
            return 0
        try:
            with self._client.pipeline(transaction=True) as pipe:
                for start in range(0, len(keys), CHUNK):
                    chunk_keys = keys[start : start + CHUNK]
                    chunk_values = values[start : start + CHUNK]
                    if only_newer:
                        self._write_newer(keys=chunk_keys, args=chunk_values, client=pipe)
                    else:
                        pipe.mset(dict(zip(chunk_keys, chunk_values, strict=True)))
                pipe.sadd(self._tables_key, table)
                results = pipe.execute()
        except redis.RedisError as exc:
            raise self._error(exc) from exc
        if not only_newer:
            return len(keys)
        return sum(results[:-1])

    def read(self, table: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """Return the value of each key in ``table`` (``None`` where missing), by one MGET."""
        return self.read_many([(table, keys)])[0]

    def read_many(
        self, requests: Sequence[tuple[str, Sequence[bytes]]]
    ) -> list[list[bytes | None]]:
        """:meth:`read` of several ``(table, keys)`` at once, by one MGET."""
        self._check_open()
        groups, every = prefixed_keys(requests, self._prefix)
        if not every:
            return [[] for _ in groups]
        try:
            values = self._client.mget(every)
        except redis.RedisError as exc:
            raise self._error(exc) from exc
        out: list[list[bytes | None]] = []
        start = 0
        for full in groups:
            out.append(values[start : start + len(full)])
            start += len(full)
        return out

    def delete_table(self, table: str) -> int:
        """Delete every key of ``table`` (SCAN + UNLINK); return how many there were."""
        self._check_open()
        pattern = self._prefix(table) + b"*"
        client = self._client
        count = 0
        try:
            batch: list[bytes] = []
            for key in client.scan_iter(match=pattern, count=_SCAN_COUNT):
                batch.append(key)
                if len(batch) >= _SCAN_COUNT:
                    count += client.unlink(*batch)
                    batch = []
            if batch:
                count += client.unlink(*batch)
            client.srem(self._tables_key, table)
        except redis.RedisError as exc:
            raise self._error(exc) from exc
        return count

    def tables(self) -> list[str]:
        """The tables written through this namespace and not deleted, sorted."""
        self._check_open()
        try:
            members = self._client.smembers(self._tables_key)
        except redis.RedisError as exc:
            raise self._error(exc) from exc
        return sorted(member.decode() for member in members)

    def ping(self) -> None:
        """Round-trip a PING; raise :class:`~fskit.errors.StoreUnavailableError` if down."""
        self._check_open()
        try:
            self._client.ping()
        except redis.RedisError as exc:
            raise self._error(exc) from exc

    def close(self) -> None:
        """Close the connection pool. Safe to call twice."""
        if not self._closed:
            self._client.close()
        super().close()
