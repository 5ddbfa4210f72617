"""The online codec: exact round trips, byte order = time order, no pickle, loud garbage."""

from __future__ import annotations

import math
import pickle
import struct
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import fskit.online
from fskit.errors import OnlineStoreError, SchemaError
from fskit.online import decode_row, encode_frame, encode_key, encode_row

PREFIX0 = bytes.fromhex("8000000000000000")  # event time 0
I64 = (-(2**63), 2**63 - 1)

# -- strategies and an exact comparison ----------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.integers(min_value=-(2**300), max_value=2**300),  # beyond 64 bits: ext type 6
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.binary(),
    st.datetimes(),
    st.datetimes(timezones=st.just(UTC)),
    st.dates(),
    st.timedeltas(),
    st.times(),
    st.decimals(allow_nan=True, allow_infinity=True),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)
rows = st.lists(values, max_size=8)
timestamps = st.integers(*I64)


def same(a: Any, b: Any) -> bool:
    """Equal in type and value: NaN equals NaN, -0.0 differs from 0.0, True differs from 1."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, Decimal):
        return str(a) == str(b)
    if isinstance(a, datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


# -- round trips ---------------------------------------------------------------------------


@given(ts=timestamps, row=rows)
@settings(max_examples=150)
@example(ts=-(2**63), row=[float("nan"), float("-inf"), -0.0, None])
@example(ts=2**63 - 1, row=["héllo ☃ \U0001f600", b"\x00\xff", 2**64 - 1, -(2**63), 2**64])
@example(ts=-1, row=[datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), date(1, 1, 1)])
@example(ts=0, row=[timedelta.max, timedelta.min, time.max, datetime.min, datetime.max])
def test_every_supported_value_round_trips_exactly(ts: int, row: list[Any]) -> None:
    decoded_ts, decoded = decode_row(encode_row(ts, row))
    assert decoded_ts == ts
    assert same(decoded, row), (decoded, row)


@given(
    moment=st.datetimes(
        timezones=st.builds(timezone, st.integers(-1380, 1380).map(lambda m: timedelta(minutes=m)))
    )
)
def test_aware_datetimes_come_back_as_the_same_instant_in_utc(moment: datetime) -> None:
    try:
        data = encode_row(0, [moment])
    except OnlineStoreError:  # the instant is outside datetime's range once moved to UTC
        with pytest.raises(OverflowError):
            moment.astimezone(UTC)
        return
    (decoded,) = decode_row(data)[1]
    assert decoded == moment
    assert decoded.utcoffset() == timedelta(0)


def test_tuples_and_numpy_scalars_decode_as_plain_python() -> None:
    row = (np.int8(-3), np.uint64(2**64 - 1), np.float32(1.5), np.bool_(True), (1, "a"))
    assert decode_row(encode_row(np.int64(7), row)) == (7, [-3, 2**64 - 1, 1.5, True, [1, "a"]])
    assert decode_row(encode_row(0, np.array([1.0, 2.0]))) == (0, [1.0, 2.0])


def test_the_byte_layout_is_pinned() -> None:
    """Stored bytes outlive the code: a change here breaks every existing online store."""
    assert encode_key((42,)) == b"\x91\x2a"
    assert encode_key((7, "eu", True)) == b"\x93\x07\xa2eu\xc3"
    assert encode_row(0, [1.5]) == PREFIX0 + b"\x91\xcb" + struct.pack(">d", 1.5)
    assert encode_row(-1, [])[:8] == b"\x7f" + b"\xff" * 7
    one_us = datetime(1970, 1, 1, 0, 0, 0, 1)
    assert encode_row(0, [one_us.replace(tzinfo=UTC)]) == PREFIX0 + b"\x91\xd7\x01" + struct.pack(
        ">q", 1
    )
    assert encode_row(0, [one_us]) == PREFIX0 + b"\x91\xd7\x02" + struct.pack(">q", 1)
    assert encode_row(0, [date(1969, 12, 31)]) == PREFIX0 + b"\x91\xd6\x03" + struct.pack(">i", -1)
    assert encode_row(0, [timedelta(days=-1, microseconds=5)]) == (
        PREFIX0 + b"\x91\xc7\x0c\x04" + struct.pack(">iq", -1, 5)
    )
    assert encode_row(0, [time(0, 0, 1)]) == PREFIX0 + b"\x91\xd7\x05" + struct.pack(">q", 10**6)
    assert encode_row(0, [2**64]) == PREFIX0 + b"\x91\xc7\x09\x06\x01" + b"\x00" * 8
    assert encode_row(0, [Decimal("1.50")]) == PREFIX0 + b"\x91\xd6\x071.50"


# -- order ---------------------------------------------------------------------------------


@given(
    a=timestamps,
    b=timestamps,
    row_a=st.lists(scalars, max_size=2),
    row_b=st.lists(scalars, max_size=2),
)
@example(a=-1, b=0, row_a=[], row_b=[])
@example(a=255, b=256, row_a=["zzz"], row_b=[])
@example(a=-(2**63), b=2**63 - 1, row_a=[], row_b=[])
def test_byte_order_of_values_is_event_time_order(a: int, b: int, row_a: list, row_b: list) -> None:
    value_a, value_b = encode_row(a, row_a), encode_row(b, row_b)
    assert (value_a[:8] < value_b[:8]) == (a < b)
    assert (value_a[:8] == value_b[:8]) == (a == b)
    if a != b:
        assert (value_a < value_b) == (a < b)


# -- keys ----------------------------------------------------------------------------------

key_parts = st.one_of(
    st.integers(-2, 2),
    st.booleans(),
    st.sampled_from(["", "a", "b"]),
    st.sampled_from([b"", b"a"]),
    st.sampled_from([date(2024, 1, 1), datetime(2024, 1, 1), datetime(2024, 1, 1, tzinfo=UTC)]),
)


@given(a=st.lists(key_parts, min_size=1, max_size=3), b=st.lists(key_parts, min_size=1, max_size=3))
def test_keys_are_equal_bytes_exactly_when_equal_values_of_equal_types(a: list, b: list) -> None:
    equal = len(a) == len(b) and all(
        type(x) is type(y) and x == y and getattr(x, "tzinfo", None) == getattr(y, "tzinfo", None)
        for x, y in zip(a, b, strict=True)
    )
    assert (encode_key(tuple(a)) == encode_key(tuple(b))) == equal


@given(st.integers(-(2**7), 2**7 - 1))
def test_a_key_is_the_same_bytes_from_any_integer_type(n: int) -> None:
    expected = encode_key((n,))
    types = [np.int8, np.int16, np.int32, np.int64] + ([np.uint8, np.uint64] if n >= 0 else [])
    for kind in types:
        assert encode_key((kind(n),)) == expected
        assert encode_key(kind(n)) == expected
    for dtype in (pl.Int8, pl.Int32, pl.Int64, pl.UInt64 if n >= 0 else pl.Int16):
        frame = pl.DataFrame(
            {"k": [n], "ts": [datetime(2024, 1, 1)]}, schema_overrides={"k": dtype}
        )
        assert encode_frame(frame, "k", "ts", [])[0] == [expected]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ((1.5,), "Floats make poor keys"),
        ((None,), "null keys"),
        ((1, [2]), "key parts must be"),
        ((), "empty entity key"),
        ((object(),), "key parts must be"),
    ],
)
def test_bad_keys_are_refused_with_the_fix(key: tuple, message: str) -> None:
    with pytest.raises(OnlineStoreError, match=message):
        encode_key(key)


# -- refusing to encode --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "row", "message"),
    [
        (0, [object()], "cannot encode <object object"),
        (0, [{1, 2}], "type 'set'"),
        (0, [time(1, tzinfo=UTC)], "times with a tzinfo"),
        (0, {"a": 1}, "must be a list or tuple"),
        (0, "abc", "must be a list or tuple"),
        (1.5, [], "must be an int of microseconds"),
        (True, [], "must be an int of microseconds"),
        (2**63, [], "does not fit in a signed 64-bit"),
        (-(2**63) - 1, [], "does not fit in a signed 64-bit"),
    ],
)
def test_unencodable_rows_raise_online_store_error(ts: Any, row: Any, message: str) -> None:
    with pytest.raises(OnlineStoreError, match=message):
        encode_row(ts, row)


# -- refusing to decode --------------------------------------------------------------------


def _ext(code: int, payload: bytes) -> bytes:
    return b"\xc7" + bytes([len(payload), code & 0xFF]) + payload


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80" * 7,
        PREFIX0,  # prefix without payload
        PREFIX0 + b"\xc1",  # the byte msgpack never uses
        PREFIX0 + b"\x92\x01",  # array of 2 with 1 element
        PREFIX0 + b"\x01",  # not an array
        PREFIX0 + b"\x91\x01\x02",  # trailing bytes
        PREFIX0 + b"\x91\xa2\xff\xfe",  # invalid UTF-8
        PREFIX0 + b"\x91" + _ext(99, b"\x00"),  # unknown ext type
        PREFIX0 + b"\x91" + _ext(1, b"\x00" * 4),  # datetime of the wrong length
        PREFIX0 + b"\x91" + _ext(1, struct.pack(">q", 2**62)),  # datetime out of range
        PREFIX0 + b"\x91" + _ext(4, struct.pack(">iq", 0, 86_400_000_000)),  # bad timedelta
        PREFIX0 + b"\x91" + _ext(4, struct.pack(">iq", 2**31 - 1, 0)),  # timedelta overflow
        PREFIX0 + b"\x91" + _ext(5, struct.pack(">q", -1)),  # time before midnight
        PREFIX0 + b"\x91" + _ext(6, b""),  # empty big int
        PREFIX0 + b"\x91" + _ext(7, b"one"),  # not a decimal
        PREFIX0 + b"\x91" + _ext(7, b"\xff"),  # not ASCII
        PREFIX0 + b"\x91\x81\x91\x01\x02",  # map with an array (unhashable) key
        PREFIX0 + b"\x91" * 100_000 + b"\x90",  # nested deeper than msgpack allows
        PREFIX0 + b"\xdd\xff\xff\xff\xff",  # claims 4 billion elements
    ],
)
def test_garbage_raises_online_store_error(data: bytes) -> None:
    with pytest.raises(OnlineStoreError, match="corrupt online value"):
        decode_row(data)


def test_standard_msgpack_timestamps_from_other_writers_decode_as_utc_datetimes() -> None:
    data = PREFIX0 + b"\x91" + _ext(-1, struct.pack(">I", 86_400))
    assert decode_row(data) == (0, [datetime(1970, 1, 2, tzinfo=UTC)])


@pytest.mark.parametrize("data", ["text", None, 12])
def test_decoding_something_other_than_bytes_says_so(data: Any) -> None:
    with pytest.raises(OnlineStoreError, match="must be bytes"):
        decode_row(data)


@given(st.binary(max_size=64))
@example(PREFIX0 + b"\x90")
def test_random_bytes_decode_or_raise_online_store_error_only(data: bytes) -> None:
    try:
        ts, row = decode_row(data)
    except OnlineStoreError:
        return
    assert isinstance(ts, int) and isinstance(row, list)


_RAN: list[str] = []


def _record(what: str) -> None:
    _RAN.append(what)


class _Exploit:
    def __reduce__(self) -> tuple:
        return (_record, ("pwned",))


def test_a_pickle_payload_is_never_executed() -> None:
    payload = pickle.dumps(_Exploit())
    pickle.loads(payload)  # the payload is live: unpickling it runs code
    assert _RAN == ["pwned"]
    _RAN.clear()
    for data in (payload, PREFIX0 + payload, PREFIX0 + pickle.dumps([_Exploit()], protocol=0)):
        with pytest.raises(OnlineStoreError):
            decode_row(data)
    assert _RAN == []
    with pytest.raises(OnlineStoreError, match="cannot encode"):
        encode_row(0, [_Exploit()])  # and the encoder has no pickle fallback


# -- frames --------------------------------------------------------------------------------


def _all_types_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": [1, 2, 3],
            "region": ["eu", "us", "eu"],
            "ts": [datetime(2024, 1, 1), datetime(1960, 5, 1, 12), datetime(2024, 1, 3)],
            "f_float": [1.5, float("nan"), None],
            "f_int": [None, -(2**40), 7],
            "f_bool": [True, None, False],
            "f_str": ["ä", "", None],
            "f_bin": [b"\x00", None, b"xyz"],
            "f_list": [[1, 2], [], None],
            "f_struct": [{"a": 1, "b": "x"}, None, {"a": None, "b": "z"}],
            "f_when": [datetime(2024, 1, 1, tzinfo=UTC), None, datetime(1900, 1, 1, tzinfo=UTC)],
            "f_day": [date(2024, 2, 29), None, date(1, 1, 1)],
            "f_dur": [timedelta(seconds=-1), timedelta(0), None],
            "f_time": [time(23, 59), None, time(0)],
            "f_dec": [Decimal("1.25"), None, Decimal("-3.50")],
            "f_cat": ["a", "b", None],
        },
        schema_overrides={
            "f_when": pl.Datetime("ns", "UTC"),
            "f_dec": pl.Decimal(10, 2),
            "f_cat": pl.Categorical,
        },
    )


FEATURES = [c for c in _all_types_frame().columns if c.startswith("f_")]


def test_encode_frame_gives_the_bytes_of_encode_key_and_encode_row() -> None:
    frame = _all_types_frame()
    keys, vals = encode_frame(frame, ["user_id", "region"], "ts", FEATURES)
    epoch = datetime(1970, 1, 1)
    for i, row in enumerate(frame.iter_rows(named=True)):
        assert keys[i] == encode_key((row["user_id"], row["region"]))
        ts_us = (row["ts"] - epoch) // timedelta(microseconds=1)
        assert vals[i] == encode_row(ts_us, [row[c] for c in FEATURES])
    assert decode_row(vals[1])[0] == (datetime(1960, 5, 1, 12) - epoch) // timedelta(microseconds=1)
    lazy_keys, lazy_vals = encode_frame(frame.lazy(), ["user_id", "region"], "ts", FEATURES)
    assert (lazy_keys, lazy_vals) == (keys, vals)


def test_encode_frame_timestamps_are_utc_instants_whatever_the_unit_or_zone() -> None:
    moment = datetime(2024, 3, 1, 12, tzinfo=UTC)
    expected = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    for dtype in (pl.Datetime("ns", "UTC"), pl.Datetime("ms", "Asia/Kolkata"), pl.Datetime("us")):
        column = pl.Series("ts", [moment]).dt.convert_time_zone("UTC")
        column = column.dt.replace_time_zone(None) if dtype.time_zone is None else column
        frame = pl.DataFrame({"k": [1], "ts": column.cast(dtype)})
        assert decode_row(encode_frame(frame, "k", "ts", [])[1][0])[0] == expected
    day = pl.DataFrame({"k": [1], "ts": [date(2024, 3, 1)]})
    assert decode_row(encode_frame(day, "k", "ts", [])[1][0])[0] == expected - 12 * 3600 * 10**6


@given(
    st.lists(
        st.tuples(
            st.integers(*I64),
            st.integers(-(10**15), 10**15),
            st.none() | st.floats(allow_nan=True),
            st.none() | st.text(max_size=5),
        ),
        max_size=20,
    )
)
def test_encode_frame_matches_row_by_row_encoding(records: list[tuple]) -> None:
    frame = pl.DataFrame(
        records,
        schema={"k": pl.Int64, "t": pl.Int64, "x": pl.Float64, "s": pl.String},
        orient="row",
    ).with_columns(pl.col("t").cast(pl.Datetime("us")))
    keys, vals = encode_frame(frame, ["k"], "t", ["x", "s"])
    assert keys == [encode_key(k) for k, *_ in records]
    assert vals == [encode_row(t, [x, s]) for _, t, x, s in records]


def test_encode_frame_of_an_empty_frame_is_empty() -> None:
    frame = _all_types_frame().clear()
    assert encode_frame(frame, ["user_id"], "ts", FEATURES) == ([], [])


@pytest.mark.parametrize(
    ("change", "args", "error", "message"),
    [
        (None, (["nope"], "ts", ["f_int"]), SchemaError, r"no column\(s\) \['nope'\]"),
        (None, (["user_id"], "ts", ["f_int", "f_int"]), SchemaError, "names a column twice"),
        (None, (["f_float"], "ts", []), SchemaError, "cannot be entity keys"),
        (None, (["user_id"], "region", []), SchemaError, "expected Datetime or Date"),
        (None, ([], "ts", []), SchemaError, "key_columns is empty"),
        (
            pl.col("user_id").replace(2, None),
            (["user_id"], "ts", []),
            OnlineStoreError,
            "null counts {'user_id': 1}",
        ),
        (pl.col("ts").shift(1), (["user_id"], "ts", []), OnlineStoreError, "{'ts': 1}"),
        (
            pl.Series("f_obj", [object()] * 3, dtype=pl.Object),
            (["user_id"], "ts", ["f_obj"]),
            OnlineStoreError,
            "cannot encode",
        ),
    ],
)
def test_encode_frame_errors_name_the_column_and_the_fix(
    change: pl.Expr | pl.Series | None, args: tuple, error: type, message: str
) -> None:
    frame = _all_types_frame()
    if change is not None:
        frame = frame.with_columns(change)
    with pytest.raises(error, match=message):
        encode_frame(frame, *args)


def test_the_package_exports_what_it_says() -> None:
    expected = {
        "DiskcacheBackend",
        "OnlineBackend",
        "RedisBackend",
        "backend_from_config",
        "decode_row",
        "encode_frame",
        "encode_key",
        "encode_row",
        "read_many",
    }
    assert set(fskit.online.__all__) == expected
    for name in expected:
        assert getattr(fskit.online, name) is not None
