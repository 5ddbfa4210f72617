"""Polars dtypes to and from the strings stored in the registry file.

The registry is a human-readable JSON file, so dtypes are written the way polars prints them
(``"Int64"``, ``"Datetime(time_unit='us', time_zone='UTC')"``) and parsed back by a small,
closed parser: nothing read from disk is ever evaluated.
"""

from __future__ import annotations

import re

import polars as pl

__all__ = ["dtype_from_str", "dtype_to_str", "normalize_dtype"]

_SIMPLE: dict[str, pl.DataType] = {
    name: getattr(pl, name)()
    for name in (
        "Boolean",
        "Int8",
        "Int16",
        "Int32",
        "Int64",
        "UInt8",
        "UInt16",
        "UInt32",
        "UInt64",
        "Float32",
        "Float64",
        "String",
        "Binary",
        "Date",
        "Time",
        "Categorical",
        "Null",
    )
}
_SIMPLE["Utf8"] = pl.String()

_DATETIME = re.compile(r"^Datetime\(time_unit='(ns|us|ms)', time_zone=(None|'[^']+')\)$")
_DURATION = re.compile(r"^Duration\(time_unit='(ns|us|ms)'\)$")
_LIST = re.compile(r"^List\((.+)\)$")


def normalize_dtype(dtype: pl.DataType | type[pl.DataType]) -> pl.DataType:
    """Return a dtype *instance* (``pl.Int64`` → ``pl.Int64()``)."""
    if isinstance(dtype, type) and issubclass(dtype, pl.DataType):
        return dtype()
    if isinstance(dtype, pl.DataType):
        return dtype
    raise TypeError(f"expected a polars dtype such as pl.Int64, got {dtype!r}")


def dtype_to_str(dtype: pl.DataType | type[pl.DataType]) -> str:
    """Write a dtype as polars prints it.

    >>> dtype_to_str(pl.Datetime("us", "UTC"))
    "Datetime(time_unit='us', time_zone='UTC')"
    """
    dtype = normalize_dtype(dtype)
    if isinstance(dtype, pl.Datetime):
        tz = "None" if dtype.time_zone is None else f"'{dtype.time_zone}'"
        return f"Datetime(time_unit='{dtype.time_unit}', time_zone={tz})"
    if isinstance(dtype, pl.Duration):
        return f"Duration(time_unit='{dtype.time_unit}')"
    if isinstance(dtype, pl.List):
        return f"List({dtype_to_str(dtype.inner)})"
    if isinstance(dtype, pl.Categorical):
        return "Categorical"
    text = str(dtype)
    if text not in _SIMPLE:
        raise TypeError(f"dtype {dtype!r} is not supported in a feature schema")
    return text


def dtype_from_str(text: str) -> pl.DataType:
    """Parse what :func:`dtype_to_str` wrote.

    >>> dtype_from_str("List(Float64)")
    List(Float64)
    """
    if text in _SIMPLE:
        return _SIMPLE[text]
    if m := _DATETIME.match(text):
        tz = None if m.group(2) == "None" else m.group(2)[1:-1]
        return pl.Datetime(m.group(1), tz)  # type: ignore[arg-type]
    if m := _DURATION.match(text):
        return pl.Duration(m.group(1))  # type: ignore[arg-type]
    if m := _LIST.match(text):
        return pl.List(dtype_from_str(m.group(1)))
    raise ValueError(f"unknown dtype {text!r} in the registry file")
