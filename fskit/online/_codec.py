"""Bytes for the online store: entity keys and feature rows, without pickle.

A stored **value** is an 8-byte event-timestamp prefix followed by a msgpack array of the
feature values::

    [ts + 2**63 : 8 bytes, big-endian unsigned][msgpack array: v1, v2, ...]

Adding ``2**63`` maps the signed microseconds since the epoch onto unsigned integers in the
same order, so comparing two values' first 8 bytes bytewise compares their event times.
A backend can keep the newest row per key without decoding anything (``only_newer``).

An entity **key** is the msgpack array of the key values: ``encode_key((42,)) == b"\\x91*"``.
Integers pack to the shortest msgpack form whatever their Python or numpy type, so ``42``,
``numpy.int32(42)`` and a polars ``Int64`` cell give the same bytes.

Types msgpack lacks travel as msgpack *ext* types with fixed, big-endian layouts, so that any
language can read them:

====  ==========================  ==================================================
code  Python type                 payload
====  ==========================  ==================================================
1     aware ``datetime``          int64 microseconds since 1970-01-01 UTC
2     naive ``datetime``          int64 microseconds since 1970-01-01 (wall clock)
3     ``date``                    int32 days since 1970-01-01
4     ``timedelta``               int32 days, int64 microseconds within the day
5     naive ``time``              int64 microseconds since midnight
6     ``int`` outside 64 bits     signed two's-complement, as few bytes as needed
7     ``decimal.Decimal``         ASCII text, ``str(value)``
====  ==========================  ==================================================

Aware datetimes come back in UTC (the same instant); naive ones stay naive, as polars keeps
them. Decoding runs no code from the data: garbage raises :class:`~fskit.errors.OnlineStoreError`.

>>> value = encode_row(1_700_000_000_000_000, [3, 12.5, None, "gold"])
>>> decode_row(value)
(1700000000000000, [3, 12.5, None, 'gold'])
>>> encode_row(-1, []) < encode_row(0, []) < encode_row(1, [])
True
"""

from __future__ import annotations

import numbers
import struct
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import msgpack
import numpy as np

from fskit.errors import OnlineStoreError, SchemaError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["decode_row", "encode_frame", "encode_key", "encode_row"]

# The event timestamp prefix: signed microseconds + 2**63, as 8 big-endian unsigned bytes.
PREFIX_SIZE = 8
_OFFSET = 1 << 63
_PREFIX = struct.Struct(">Q")

EXT_DATETIME_UTC = 1
EXT_DATETIME_NAIVE = 2
EXT_DATE = 3
EXT_TIMEDELTA = 4
EXT_TIME = 5
EXT_BIGINT = 6
EXT_DECIMAL = 7

_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_TIMEDELTA = struct.Struct(">iq")
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_EPOCH_DATE = date(1970, 1, 1)
_US = timedelta(microseconds=1)
_MIN_US = (datetime.min - _EPOCH_NAIVE) // _US
_MAX_US = (datetime.max - _EPOCH_NAIVE) // _US
_US_PER_DAY = 86_400_000_000

_VALUE_TYPES = (
    "None, bool, int, float, str, bytes, datetime, date, time, timedelta, Decimal, "
    "and lists or str-keyed dicts of these"
)
_KEY_TYPES = "int, str, bool, bytes, date or datetime"


def _default(obj: Any) -> Any:
    """msgpack's hook for what it cannot pack itself; never falls back to pickle."""
    if isinstance(obj, datetime):
        if obj.tzinfo is None:
            return msgpack.ExtType(EXT_DATETIME_NAIVE, _I64.pack((obj - _EPOCH_NAIVE) // _US))
        if obj.utcoffset() is None:
            raise OnlineStoreError(f"cannot encode {obj!r}: its tzinfo gives no UTC offset")
        us = (obj - _EPOCH_UTC) // _US
        if not _MIN_US <= us <= _MAX_US:
            raise OnlineStoreError(
                f"cannot encode {obj!r}: the instant falls outside the years 1-9999 in UTC"
            )
        return msgpack.ExtType(EXT_DATETIME_UTC, _I64.pack(us))
    if isinstance(obj, date):
        return msgpack.ExtType(EXT_DATE, _I32.pack((obj - _EPOCH_DATE).days))
    if isinstance(obj, timedelta):
        in_day = obj.seconds * 1_000_000 + obj.microseconds
        return msgpack.ExtType(EXT_TIMEDELTA, _TIMEDELTA.pack(obj.days, in_day))
    if isinstance(obj, time):
        if obj.tzinfo is not None:
            raise OnlineStoreError(
                f"cannot encode {obj!r}: times with a tzinfo are not supported; "
                "store a naive time or a full datetime"
            )
        us = ((obj.hour * 60 + obj.minute) * 60 + obj.second) * 1_000_000 + obj.microsecond
        return msgpack.ExtType(EXT_TIME, _I64.pack(us))
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, int):  # only reached when the int does not fit in 64 bits
        size = (obj.bit_length() + 8) // 8
        return msgpack.ExtType(EXT_BIGINT, obj.to_bytes(size, "big", signed=True))
    if isinstance(obj, numbers.Integral):  # numpy integers and friends
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, Decimal):
        return msgpack.ExtType(EXT_DECIMAL, str(obj).encode("ascii"))
    raise OnlineStoreError(
        f"cannot encode {obj!r} of type {type(obj).__name__!r} for the online store; "
        f"supported types are {_VALUE_TYPES}. Convert the column (for example with "
        "`pl.col(...).cast(...)`) before materializing."
    )


def _ext_hook(code: int, data: bytes) -> Any:
    """Rebuild the ext types written by :func:`_default`; anything else is an error."""
    try:
        if code == EXT_DATETIME_UTC:
            return _EPOCH_UTC + timedelta(microseconds=_I64.unpack(data)[0])
        if code == EXT_DATETIME_NAIVE:
            return _EPOCH_NAIVE + timedelta(microseconds=_I64.unpack(data)[0])
        if code == EXT_DATE:
            return _EPOCH_DATE + timedelta(days=_I32.unpack(data)[0])
        if code == EXT_TIMEDELTA:
            days, in_day = _TIMEDELTA.unpack(data)
            if not 0 <= in_day < _US_PER_DAY:
                raise ValueError("microseconds within the day out of range")
            return timedelta(days=days, microseconds=in_day)
        if code == EXT_TIME:
            (us,) = _I64.unpack(data)
            if not 0 <= us < _US_PER_DAY:
                raise ValueError("microseconds since midnight out of range")
            seconds, micro = divmod(us, 1_000_000)
            return time(seconds // 3600, seconds // 60 % 60, seconds % 60, micro)
        if code == EXT_BIGINT:
            if not data:
                raise ValueError("empty integer")
            return int.from_bytes(data, "big", signed=True)
        if code == EXT_DECIMAL:
            return Decimal(data.decode("ascii"))
    except (struct.error, ValueError, OverflowError, InvalidOperation) as exc:
        raise OnlineStoreError(
            f"corrupt online value: ext type {code} holds {bytes(data[:32])!r} ({exc})"
        ) from None
    raise OnlineStoreError(
        f"corrupt online value: unknown msgpack ext type {code}; fskit writes only types 1-7. "
        "Was this store written by another program or a newer fskit?"
    )


def _packer() -> msgpack.Packer:
    # A Packer is not thread-safe, so each call that reuses one makes its own.
    return msgpack.Packer(default=_default, use_bin_type=True, datetime=False)


# -- keys -----------------------------------------------------------------------------------


def _key_part(value: Any, values: Any) -> Any:
    kind = type(value)
    if kind is int or kind is str or kind is bool or kind is bytes:
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, (str, bytes, date)):  # subclasses; datetime is a date
        return value
    hint = ""
    if value is None:
        hint = " Drop rows with null keys before writing or reading."
    elif isinstance(value, numbers.Real):
        hint = " Floats make poor keys; cast the key column to an integer or a string."
    raise OnlineStoreError(
        f"cannot encode entity key {values!r}: part {value!r} has type "
        f"{type(value).__name__!r}; key parts must be {_KEY_TYPES}.{hint}"
    )


def encode_key(values: Any) -> bytes:
    """Encode an entity key, one value per join key, as deterministic bytes.

    Parameters
    ----------
    values
        A tuple of key values (``int``, ``str``, ``bool``, ``bytes``, ``date``, ``datetime``);
        a single value is taken as a one-part key.

    Returns
    -------
    bytes
        The msgpack array of the values. The same key always gives the same bytes, whatever
        integer type (Python or numpy) carries it.

    Examples
    --------
    >>> import numpy as np
    >>> encode_key((42,))
    b'\\x91*'
    >>> encode_key(42) == encode_key((np.int32(42),)) == encode_key([42])
    True
    >>> encode_key((7, "eu"))
    b'\\x92\\x07\\xa2eu'
    """
    if type(values) is not tuple and (
        isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray))
    ):
        values = (values,)
    if len(values) == 0:
        raise OnlineStoreError(
            "cannot encode an empty entity key (); pass one value per join key, e.g. (42,)"
        )
    parts = tuple(_key_part(value, values) for value in values)
    return msgpack.packb(parts, default=_default, use_bin_type=True, datetime=False)


# -- rows -----------------------------------------------------------------------------------


def _prefix(event_ts_us: Any) -> bytes:
    if isinstance(event_ts_us, bool) or not isinstance(event_ts_us, numbers.Integral):
        raise OnlineStoreError(
            f"event timestamp {event_ts_us!r} must be an int of microseconds since the epoch "
            "(UTC), e.g. `pl.col(ts).dt.epoch('us')`"
        )
    ts = int(event_ts_us)
    if not -_OFFSET <= ts < _OFFSET:
        raise OnlineStoreError(
            f"event timestamp {ts!r} does not fit in a signed 64-bit count of microseconds"
        )
    return _PREFIX.pack(ts + _OFFSET)


def encode_row(event_ts_us: int, values: Sequence[Any]) -> bytes:
    """Encode one feature row: its event time and its values in column order.

    Parameters
    ----------
    event_ts_us
        Event time in microseconds since 1970-01-01 UTC (negative before 1970).
    values
        The feature values, in the feature view's column order. See the module docstring for
        the supported types.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> data = encode_row(0, [1, None, float("inf"), datetime(2024, 5, 1, tzinfo=UTC)])
    >>> data[:8].hex()
    '8000000000000000'
    >>> decode_row(data)
    (0, [1, None, inf, datetime.datetime(2024, 5, 1, 0, 0, tzinfo=datetime.timezone.utc)])
    """
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, (Sequence, np.ndarray)):
        raise OnlineStoreError(
            f"row values {values!r} must be a list or tuple of feature values, "
            "one per feature in column order"
        )
    if isinstance(values, np.ndarray):
        values = values.tolist()
    prefix = _prefix(event_ts_us)
    return prefix + msgpack.packb(values, default=_default, use_bin_type=True, datetime=False)


def decode_row(data: bytes) -> tuple[int, list[Any]]:
    """Decode a value written by :func:`encode_row` into ``(event_ts_us, values)``.

    Raises :class:`~fskit.errors.OnlineStoreError` on anything that is not such a value;
    no code in the data runs (there is no pickle anywhere in the codec).

    Examples
    --------
    >>> decode_row(encode_row(-86_400_000_000, ["before 1970"]))
    (-86400000000, ['before 1970'])
    >>> decode_row(b"not a row")
    Traceback (most recent call last):
    ...
    fskit.errors.OnlineStoreError: corrupt online value b'not a row': ...
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise OnlineStoreError(
            f"online value must be bytes, got {type(data).__name__!r}: {data!r:.80}"
        )
    if len(data) <= PREFIX_SIZE:
        raise OnlineStoreError(
            f"corrupt online value {bytes(data)!r}: shorter than the 8-byte timestamp "
            "prefix plus a payload"
        )
    try:
        values = msgpack.unpackb(
            data[PREFIX_SIZE:], ext_hook=_ext_hook, raw=False, strict_map_key=False, timestamp=3
        )
    except OnlineStoreError:
        raise
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        raise OnlineStoreError(
            f"corrupt online value {bytes(data[:40])!r}: {exc}. Values are written by "
            "fskit.online.encode_row; was the store written by something else?"
        ) from None
    if type(values) is not list:
        raise OnlineStoreError(
            f"corrupt online value {bytes(data[:40])!r}: the payload is of type "
            f"{type(values).__name__!r}, expected a msgpack array of feature values"
        )
    return _PREFIX.unpack_from(data)[0] - _OFFSET, values


# -- frames ---------------------------------------------------------------------------------


def _names(columns: str | Sequence[str], what: str) -> list[str]:
    names = [columns] if isinstance(columns, str) else list(columns)
    if not all(isinstance(name, str) for name in names):
        raise SchemaError(f"{what} must be column names (str), got {columns!r}")
    return names


def _key_dtype_ok(dtype: pl.DataType) -> bool:
    import polars as pl

    return dtype.is_integer() or isinstance(
        dtype, (pl.String, pl.Categorical, pl.Enum, pl.Boolean, pl.Date, pl.Datetime, pl.Binary)
    )


def encode_frame(
    frame: pl.DataFrame | pl.LazyFrame,
    key_columns: str | Sequence[str],
    ts_column: str,
    value_columns: str | Sequence[str],
) -> tuple[list[bytes], list[bytes]]:
    """Encode every row of a frame into ``(keys, values)`` for :meth:`OnlineBackend.write`.

    The materialization hot path: the event timestamps are converted in one vectorised step,
    and each row is packed by one reused msgpack packer (the frame's cells are converted to
    Python objects once, in chunks). The bytes equal those of :func:`encode_key` and
    :func:`encode_row` row by row, so pushed and materialized rows are interchangeable.

    Parameters
    ----------
    frame
        The rows to encode; a ``LazyFrame`` is collected once, selecting only the columns used.
    key_columns
        The join key column(s), in the entity's key order.
    ts_column
        The event timestamp column, of dtype ``Datetime`` (any unit; naive means UTC) or ``Date``.
    value_columns
        The feature columns, in the order their values are stored.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime
    >>> frame = pl.DataFrame({
    ...     "user_id": [1, 2],
    ...     "ts": [datetime(2024, 1, 1), datetime(2024, 1, 2)],
    ...     "spend": [9.5, None],
    ... })
    >>> keys, values = encode_frame(frame, "user_id", "ts", ["spend"])
    >>> keys == [encode_key((1,)), encode_key((2,))]
    True
    >>> [decode_row(value) for value in values]
    [(1704067200000000, [9.5]), (1704153600000000, [None])]
    """
    import polars as pl

    keys = _names(key_columns, "key_columns")
    values = _names(value_columns, "value_columns")
    if not keys:
        raise SchemaError("key_columns is empty; name the entity's join key column(s)")
    if not isinstance(ts_column, str):
        raise SchemaError(f"ts_column must be a column name (str), got {ts_column!r}")
    for names, what in ((keys, "key_columns"), (values, "value_columns")):
        if len(set(names)) != len(names):
            raise SchemaError(f"{what} {names!r} names a column twice; name each once")
    needed = list(dict.fromkeys([*keys, ts_column, *values]))

    if isinstance(frame, pl.LazyFrame):
        schema = frame.collect_schema()
    elif isinstance(frame, pl.DataFrame):
        schema = frame.schema
    else:
        raise SchemaError(
            f"frame must be a polars DataFrame or LazyFrame, got {type(frame).__name__!r}"
        )
    missing = [name for name in needed if name not in schema]
    if missing:
        raise SchemaError(
            f"the frame has no column(s) {missing!r}; it has {list(schema.names())!r}. "
            "Check the feature view's join keys, timestamp field and schema."
        )
    bad_keys = {name: schema[name] for name in keys if not _key_dtype_ok(schema[name])}
    if bad_keys:
        raise SchemaError(
            f"key column(s) {bad_keys!r} cannot be entity keys; use integer, String, "
            "Categorical, Boolean, Date, Datetime or Binary columns"
        )
    ts_dtype = schema[ts_column]
    if not isinstance(ts_dtype, (pl.Datetime, pl.Date)):
        raise SchemaError(
            f"timestamp column {ts_column!r} has dtype {ts_dtype}; expected Datetime or Date. "
            "Parse it first, e.g. `pl.col(...).str.to_datetime()`."
        )

    df = frame.select(needed).collect() if isinstance(frame, pl.LazyFrame) else frame
    nulls = df.select(pl.col(keys + [ts_column]).null_count()).row(0)
    null_columns = {name: n for name, n in zip(keys + [ts_column], nulls, strict=True) if n}
    if null_columns:
        raise OnlineStoreError(
            f"cannot write rows with null keys or timestamps: null counts {null_columns!r}. "
            "Drop or fill them before materializing."
        )

    ts = df.get_column(ts_column)
    if isinstance(ts_dtype, pl.Date):
        ts = ts.cast(pl.Datetime("us"))
    micros = ts.dt.epoch("us").to_numpy()
    prefixes = (micros.view(np.uint64) ^ np.uint64(_OFFSET)).astype(">u8").tobytes()

    pack = _packer().pack
    if len(keys) == 1:
        key_bytes = [pack((key,)) for key in df.get_column(keys[0]).to_list()]
    else:
        key_bytes = [pack(key) for key in df.select(keys).iter_rows()]
    rows = df.select(values).iter_rows() if values else ((),) * df.height
    value_bytes = [
        prefixes[start : start + PREFIX_SIZE] + pack(row)
        for start, row in zip(range(0, len(prefixes), PREFIX_SIZE), rows, strict=True)
    ]
    return key_bytes, value_bytes
