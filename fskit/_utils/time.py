"""Instants as fskit handles them: aware UTC datetimes, or integer microseconds since 1970.

A naive datetime means UTC everywhere in fskit.

>>> to_us(as_utc(datetime(1970, 1, 1, 0, 0, 1), "t"))
1000000
>>> from_us(1_000_000)
datetime.datetime(1970, 1, 1, 0, 0, 1, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fskit.errors import DefinitionError

__all__ = ["EPOCH", "as_utc", "from_us", "td_us", "to_us"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def as_utc(value: object, what: str) -> datetime:
    """``value`` as an aware UTC datetime; ``what`` names it in the error."""
    if not isinstance(value, datetime):
        raise DefinitionError(f"{what} must be a datetime, got {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_us(value: datetime) -> int:
    """Microseconds since the epoch (exact: no float rounding)."""
    return td_us(value - EPOCH)


def td_us(value: timedelta) -> int:
    return (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))
