"""One contract, every backend: the same tests run on diskcache and on a real redis-server."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diskcache
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fskit.errors import DefinitionError, OnlineStoreError, StoreUnavailableError
from fskit.online import (
    DiskcacheBackend,
    OnlineBackend,
    RedisBackend,
    backend_from_config,
    decode_row,
    encode_key,
    encode_row,
    read_many,
)

T1, T2 = "user_stats@v1", "user_stats@v2"


def k(i: int) -> bytes:
    return encode_key((i,))


def v(ts: int, tag: Any) -> bytes:
    return encode_row(ts, [tag])


def tags(backend: OnlineBackend, table: str, keys: list[bytes]) -> list[Any]:
    """The (event time, tag) stored under each key, or None."""
    return [
        None if data is None else (decode_row(data)[0], decode_row(data)[1][0])
        for data in backend.read(table, keys)
    ]


# -- reads and writes ----------------------------------------------------------------------


def test_write_then_read_a_batch_in_key_order(backend: OnlineBackend) -> None:
    assert backend.write(T1, [(k(1), v(10, "a")), (k(2), v(10, "b")), (k(3), v(10, "c"))]) == 3
    assert backend.read(T1, [k(3), k(99), k(1), k(2), k(1)]) == [
        v(10, "c"),
        None,
        v(10, "a"),
        v(10, "b"),
        v(10, "a"),
    ]


def test_empty_batches(backend: OnlineBackend) -> None:
    assert backend.read(T1, []) == []
    assert backend.write(T1, []) == 0
    assert backend.write(T1, iter([])) == 0
    assert backend.tables() == []


def test_missing_keys_and_tables_read_as_none(backend: OnlineBackend) -> None:
    assert backend.read("never_written@v1", [k(1), k(2)]) == [None, None]


def test_items_may_come_from_any_iterable(backend: OnlineBackend) -> None:
    items = ((k(i), v(i, i)) for i in range(3))
    assert backend.write(T1, items) == 3
    assert tags(backend, T1, [k(0), k(2)]) == [(0, 0), (2, 2)]


@given(
    stored=st.dictionaries(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 6)),
        st.integers(0, 100),
        max_size=15,
    ),
    requests=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "never"]), st.lists(st.integers(0, 8), max_size=6)
        ),
        max_size=5,
    ),
)
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_read_many_is_the_reads_of_each_table(backend: OnlineBackend, stored, requests) -> None:
    """One query / MGET for several tables answers exactly what one read per table does."""
    run = uuid.uuid4().hex  # fresh tables for each example on the shared backend
    for (table, key), tag in stored.items():
        backend.write(f"{table}@{run}", [(k(key), v(1, tag))])
    asked = [(f"{t}@{run}", [k(i) for i in keys]) for t, keys in requests]
    expected = [
        [None if (t, i) not in stored else v(1, stored[t, i]) for i in keys] for t, keys in requests
    ]
    assert backend.read_many(asked) == expected
    assert read_many(backend, asked) == expected
    assert [backend.read(t, keys) for t, keys in asked] == expected


def test_read_many_falls_back_to_read_for_other_backends(backend: OnlineBackend) -> None:
    backend.write(T1, [(k(1), v(1, "a"))])

    class OnlyRead:  # a third-party backend with the protocol's read() and nothing more
        def read(self, table, keys):
            return backend.read(table, keys)

    assert read_many(OnlyRead(), [(T1, [k(1), k(2)]), (T2, [k(1)])]) == [
        [v(1, "a"), None],
        [None],
    ]


def test_read_many_checks_every_key_before_reading(backend: OnlineBackend) -> None:
    with pytest.raises(OnlineStoreError, match="key 0 read from 'user_stats@v2' is 3"):
        backend.read_many([(T1, [k(1)]), (T2, [3])])


# -- only_newer and ties -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("older", "newer"),
    [(5, 10), (-1, 0), (255, 256), (-(2**63), 2**63 - 1), (-2, -1), (2**56 - 1, 2**56)],
)
def test_an_older_event_never_overwrites_a_newer_one(
    backend: OnlineBackend, older: int, newer: int
) -> None:
    assert backend.write(T1, [(k(1), v(newer, "new"))]) == 1
    assert backend.write(T1, [(k(1), v(older, "late"))]) == 0
    assert tags(backend, T1, [k(1)]) == [(newer, "new")]
    assert backend.write(T1, [(k(2), v(older, "old"))]) == 1
    assert backend.write(T1, [(k(2), v(newer, "new"))]) == 1
    assert tags(backend, T1, [k(2)]) == [(newer, "new")]


def test_ties_go_to_the_last_write(backend: OnlineBackend) -> None:
    backend.write(T1, [(k(1), v(7, "first"))])
    assert backend.write(T1, [(k(1), v(7, "correction"))]) == 1
    assert tags(backend, T1, [k(1)]) == [(7, "correction")]


def test_only_newer_false_overwrites_whatever_is_there(backend: OnlineBackend) -> None:
    backend.write(T1, [(k(1), v(10, "new"))])
    assert backend.write(T1, [(k(1), v(1, "backfill"))], only_newer=False) == 1
    assert tags(backend, T1, [k(1)]) == [(1, "backfill")]


@pytest.mark.parametrize("prefilled", [False, True], ids=["new-table", "existing-table"])
def test_a_key_twice_in_one_batch_applies_in_order(backend: OnlineBackend, prefilled: bool) -> None:
    if prefilled:
        backend.write(T1, [(k(9), v(0, "other"))])
    batch = [(k(1), v(5, "a")), (k(1), v(3, "stale")), (k(1), v(5, "b")), (k(2), v(1, "x"))]
    assert backend.write(T1, batch) == 3
    assert tags(backend, T1, [k(1), k(2)]) == [(5, "b"), (1, "x")]
    assert backend.write(T2, batch, only_newer=False) == 4
    assert tags(backend, T2, [k(1)]) == [(5, "b")]


# The reference model: a dict, the items applied one by one.
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("write"),
            st.lists(st.tuples(st.integers(0, 3), st.integers(-2, 2)), max_size=6),
            st.booleans(),
        ),
        st.tuples(st.just("delete")),
    ),
    min_size=1,
    max_size=6,
)


@given(ops=operations)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_any_sequence_of_writes_matches_a_dict_model(
    backend: OnlineBackend, ops: list[tuple]
) -> None:
    table = f"model@{uuid.uuid4().hex}"
    model: dict[int, tuple[int, int]] = {}
    serial = itertools.count()
    for op in ops:
        if op[0] == "delete":
            assert backend.delete_table(table) == len(model)
            model.clear()
            continue
        _, writes, only_newer = op
        items, expected = [], 0
        for key, ts in writes:
            tag = next(serial)
            items.append((k(key), v(ts, tag)))
            if only_newer and key in model and model[key][0] > ts:
                continue
            model[key] = (ts, tag)
            expected += 1
        assert backend.write(table, items, only_newer=only_newer) == expected
        assert tags(backend, table, [k(i) for i in range(4)]) == [model.get(i) for i in range(4)]
        assert (table in backend.tables()) == bool(model)
    backend.delete_table(table)


# -- tables --------------------------------------------------------------------------------


def test_tables_are_isolated_and_deleted_one_at_a_time(backend: OnlineBackend) -> None:
    backend.write(T1, [(k(i), v(1, f"v1-{i}")) for i in range(150)])
    backend.write(T2, [(k(i), v(1, f"v2-{i}")) for i in range(3)])
    backend.write("user_stats@v10", [(k(1), v(1, "v10"))])
    assert tags(backend, T1, [k(1)]) == [(1, "v1-1")]
    assert tags(backend, T2, [k(1)]) == [(1, "v2-1")]
    assert backend.tables() == [T1, "user_stats@v10", T2]

    assert backend.delete_table(T1) == 150
    assert backend.read(T1, [k(i) for i in range(150)]) == [None] * 150
    assert tags(backend, T2, [k(0), k(1), k(2)]) == [(1, "v2-0"), (1, "v2-1"), (1, "v2-2")]
    assert tags(backend, "user_stats@v10", [k(1)]) == [(1, "v10")]
    assert backend.tables() == ["user_stats@v10", T2]
    assert backend.delete_table(T1) == 0
    assert backend.delete_table("never_written@v1") == 0


@pytest.mark.parametrize(
    "name", ["", "user stats@v1", "a:b", "a/b", "ünïcode", "a\x00b", "a*", "x" * 201, None, 1]
)
def test_bad_table_names_raise_definition_error(backend: OnlineBackend, name: Any) -> None:
    for call in (
        lambda: backend.write(name, [(k(1), v(1, 1))]),
        lambda: backend.read(name, [k(1)]),
        lambda: backend.delete_table(name),
    ):
        with pytest.raises(DefinitionError, match="online table name .* is invalid"):
            call()


# -- bad input writes nothing --------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (("user-1", v(1, "x")), "its key 'user-1' is a str, not bytes"),
        ((k(3), "value"), "is a str, not bytes"),
        ((k(3), b"short"), "shorter than the 8-byte timestamp prefix"),
        ((k(3),), "expected a .key, value. pair"),
        (None, "expected a .key, value. pair"),
    ],
)
def test_a_bad_item_fails_the_whole_batch(backend: OnlineBackend, bad: Any, message: str) -> None:
    backend.write(T1, [(k(1), v(1, "before"))])
    batch = [(k(1), v(2, "after")), (k(2), v(2, "after")), bad]
    with pytest.raises(OnlineStoreError, match=message) as info:
        backend.write(T1, batch)
    assert "item 2" in str(info.value) and "Nothing was written" in str(info.value)
    assert tags(backend, T1, [k(1), k(2)]) == [(1, "before"), None]


def test_reading_a_key_that_is_not_bytes_says_so(backend: OnlineBackend) -> None:
    with pytest.raises(OnlineStoreError, match="key 1 read from 'user_stats@v1' is 'u2'"):
        backend.read(T1, [k(1), "u2"])


# -- lifecycle -----------------------------------------------------------------------------


def test_protocol_context_manager_and_closing(backend: OnlineBackend) -> None:
    assert isinstance(backend, OnlineBackend)
    backend.ping()
    with backend as same:
        assert same is backend
        same.write(T1, [(k(1), v(1, 1))])
    assert "closed" in repr(backend)
    for call in (backend.ping, backend.tables, lambda: backend.read(T1, [k(1)])):
        with pytest.raises(OnlineStoreError, match="is closed; create a new backend"):
            call()
    backend.close()  # twice is fine


def test_data_outlives_the_backend_object(
    backend: OnlineBackend, request: pytest.FixtureRequest
) -> None:
    backend.write(T1, [(k(1), v(1, "kept"))])
    if isinstance(backend, DiskcacheBackend):
        again: OnlineBackend = DiskcacheBackend(backend.path)
    else:
        assert isinstance(backend, RedisBackend)
        again = RedisBackend(backend.url, namespace=backend.namespace)
    with again:
        assert tags(again, T1, [k(1)]) == [(1, "kept")]
        assert again.tables() == [T1]


# -- diskcache -----------------------------------------------------------------------------


def test_two_diskcache_backends_on_one_directory_see_each_others_writes(tmp_path: Path) -> None:
    with DiskcacheBackend(tmp_path) as one, DiskcacheBackend(tmp_path) as two:
        one.write(T1, [(k(1), v(1, "from one"))])
        assert tags(two, T1, [k(1)]) == [(1, "from one")]
        two.write(T1, [(k(1), v(2, "from two")), (k(2), v(2, "from two"))])
        assert tags(one, T1, [k(1), k(2)]) == [(2, "from two"), (2, "from two")]
        assert one.write(T1, [(k(1), v(1, "stale"))]) == 0  # only_newer sees the other's row
        assert one.tables() == two.tables() == [T1]
        assert two.delete_table(T1) == 2
        assert one.read(T1, [k(1)]) == [None]


def test_diskcache_stores_plain_bytes_and_never_evicts(tmp_path: Path) -> None:
    with DiskcacheBackend(tmp_path) as store:
        store.write(T1, [(k(i), v(i, "x" * 100_000)) for i in range(3)])  # > 32 KB each
    plain = diskcache.Cache(str(tmp_path))
    assert plain.eviction_policy == "none"
    stored = sorted(plain)
    assert stored == sorted([b"\x00tables"] + [T1.encode() + b"\x00" + k(i) for i in range(3)])
    assert plain[T1.encode() + b"\x00" + k(2)] == v(2, "x" * 100_000)  # inline, not pickled
    assert not [p for p in tmp_path.rglob("*.val")]  # no side files outside the transaction
    plain.close()


class _Exploit:
    ran = False

    def __reduce__(self) -> tuple:
        return (_Exploit.mark, ())

    @staticmethod
    def mark() -> None:
        _Exploit.ran = True


def test_diskcache_refuses_to_unpickle_what_someone_else_stored(tmp_path: Path) -> None:
    plain = diskcache.Cache(str(tmp_path))
    plain.set(T1.encode() + b"\x00" + k(1), _Exploit())  # diskcache pickles objects
    plain.close()
    with (
        DiskcacheBackend(tmp_path) as store,
        pytest.raises(OnlineStoreError, match="refusing to load"),
    ):
        store.read(T1, [k(1)])
    assert not _Exploit.ran


def test_diskcache_ping_fails_when_the_directory_is_gone(tmp_path: Path) -> None:
    import shutil

    store = DiskcacheBackend(tmp_path / "online")
    store.ping()
    shutil.rmtree(tmp_path / "online")
    with pytest.raises(StoreUnavailableError, match="online.* is gone"):
        store.ping()
    store.close()


# -- redis ---------------------------------------------------------------------------------


def test_redis_key_layout_is_namespace_table_key(redis_server: str) -> None:
    namespace = f"t{uuid.uuid4().hex}"
    with RedisBackend(redis_server, namespace=namespace) as store:
        store.write(T1, [(k(1), v(1, "x"))])
        raw = redis.Redis.from_url(redis_server)
        assert raw.get(f"{namespace}:{T1}:".encode() + k(1)) == v(1, "x")
        assert raw.smembers(f"{namespace}::tables") == {T1.encode()}
        raw.close()


def test_redis_readers_see_whole_batches_never_half_of_one(redis_server: str) -> None:
    """One write call is one MULTI/EXEC: an MGET lands before it or after it, never inside."""
    import threading

    n = 12_000  # several Lua chunks per write
    keys = [k(i) for i in range(n)]
    probe = [keys[0], keys[n // 2], keys[-1]]
    seen: set[tuple[int, ...]] = set()
    done = threading.Event()
    with RedisBackend(redis_server, namespace=f"t{uuid.uuid4().hex}") as store:
        store.write(T1, [(key, v(0, "x")) for key in keys])

        def watch() -> None:
            with RedisBackend(redis_server, namespace=store.namespace) as reader:
                while not done.is_set():
                    seen.add(tuple(ts for ts, _ in tags(reader, T1, probe)))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            for ts in range(1, 6):
                assert store.write(T1, [(key, v(ts, "x")) for key in keys]) == n
        finally:
            done.set()
            watcher.join()
    assert len(seen) > 1, "the reader never overlapped a write; the test proved nothing"
    assert all(len(set(stamps)) == 1 for stamps in seen), sorted(seen)


def test_redis_down_raises_store_unavailable_with_address_and_fix(
    throwaway_redis: Callable[[], Any],
) -> None:
    server = throwaway_redis()
    store = RedisBackend(server.url)
    store.write(T1, [(k(1), v(1, "x"))])
    server.stop()
    calls = {
        "ping": store.ping,
        "read": lambda: store.read(T1, [k(1)]),
        "write": lambda: store.write(T1, [(k(1), v(2, "y"))]),
        "delete_table": lambda: store.delete_table(T1),
        "tables": store.tables,
    }
    for name, call in calls.items():
        with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{server.port}") as info:
            call()
        assert "Start it" in str(info.value), name
    store.close()


def test_redis_never_started_fails_fast(tmp_path: Path) -> None:
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = RedisBackend(f"redis://127.0.0.1:{port}/0", timeout=1)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="is unreachable"):
        store.ping()
    assert time.monotonic() - started < 2
    store.close()


def test_redis_repr_hides_the_password_and_bad_arguments_raise() -> None:
    store = RedisBackend("redis://admin:s3cret@db.internal:6380/2")
    assert (
        repr(store) == "RedisBackend(url='redis://admin:***@db.internal:6380/2', namespace='fskit')"
    )
    assert "s3cret" not in repr(store)
    with pytest.raises(DefinitionError, match="namespace 'a:b' is invalid"):
        RedisBackend(namespace="a:b")
    with pytest.raises(DefinitionError, match="url 'http://x' is invalid"):
        RedisBackend("http://x")


# -- config --------------------------------------------------------------------------------


def test_backend_from_config(tmp_path: Path, redis_server: str) -> None:
    with backend_from_config({"type": "diskcache", "path": "online"}, tmp_path) as store:
        assert isinstance(store, DiskcacheBackend) and store.path == tmp_path / "online"
    with backend_from_config({}, tmp_path) as store:
        assert isinstance(store, DiskcacheBackend) and store.path == tmp_path / "online"
    elsewhere = tmp_path / "elsewhere"
    config = {"type": "diskcache", "path": str(elsewhere), "timeout": 5}
    with backend_from_config(config, tmp_path) as store:
        assert store.path == elsewhere and store.timeout == 5
    config = {"type": "redis", "url": redis_server, "namespace": "cfg"}
    with backend_from_config(config, tmp_path) as store:
        assert isinstance(store, RedisBackend) and store.namespace == "cfg"
        store.ping()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"type": "memcached"},
            r"type 'memcached' is unknown; expected one of \['diskcache', 'redis'\]",
        ),
        (
            {"type": "diskcache", "pth": "x"},
            r"unknown key\(s\) \['pth'\]; allowed: \['type', 'path', 'timeout'\]",
        ),
        ({"type": "redis", "path": "x"}, r"unknown key\(s\) \['path'\]"),
        ({"type": "redis", "url": 6379}, "'url' must be a string"),
        ({"type": "diskcache", "path": 3}, "'path' must be a directory path"),
        ({"type": "redis", "timeout": "5"}, "'timeout' must be a positive number of seconds"),
        ({"timeout": 0}, "'timeout' must be a positive number"),
        (["diskcache"], "must be a mapping"),
    ],
)
def test_backend_from_config_rejects_bad_configs(tmp_path: Path, config: Any, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        backend_from_config(config, tmp_path)
