"""Every time rule in one place: UTC, millisecond precision, and the forms AppStack sends.

Event times arrive as epoch milliseconds (a number or a numeric string) or ISO-8601 with an
offset; the API answers ISO-8601 UTC with ``Z``; query and command-line times without an offset
are read as UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NUMERIC = re.compile(r"^-?\d+$")


def truncate_ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def now_utc() -> datetime:
    """Now, as the journal stores it: UTC, millisecond precision."""
    return truncate_ms(datetime.now(UTC))


def as_utc(value: datetime) -> datetime:
    """A time given without an offset (a query parameter, a command-line option) is read as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def month_text(value: datetime) -> str:
    """``YYYY-MM``, the year in four digits even before 1000 (``%Y`` writes year 1 as ``1``)."""
    return f"{value.year:04d}-{value.month:02d}"


def iso_utc(value: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and ``Z``: how every time is served."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_epoch_ms(value: int) -> datetime:
    try:
        return EPOCH + timedelta(milliseconds=value)
    except OverflowError:
        msg = f"time: {value} is out of range for epoch milliseconds"
        raise ValueError(msg) from None


def to_epoch_ms(value: datetime) -> int:
    """Whole milliseconds since the epoch, exactly (through a float, some times lost one)."""
    return (value - EPOCH) // timedelta(milliseconds=1)


def parse_event_time(value: object) -> datetime:
    """An event's ``time``: epoch ms (number or numeric string) or ISO-8601 with an offset."""
    if isinstance(value, bool):
        msg = "time: must be epoch milliseconds or ISO-8601 with an offset, got a boolean"
        raise ValueError(msg)
    if isinstance(value, int):
        return from_epoch_ms(value)
    if isinstance(value, float) and value.is_integer():
        return from_epoch_ms(int(value))
    if isinstance(value, str):
        text = value.strip()
        if _NUMERIC.match(text):
            return from_epoch_ms(int(text))
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            msg = f"time: {value!r} is neither epoch milliseconds nor ISO-8601"
            raise ValueError(msg) from None
        if parsed.tzinfo is None:
            msg = f"time: {value!r} has no UTC offset"
            raise ValueError(msg)
        try:
            return truncate_ms(parsed.astimezone(UTC))
        except OverflowError:
            msg = f"time: {value!r} is out of range once converted to UTC"
            raise ValueError(msg) from None
    msg = f"time: must be epoch milliseconds or ISO-8601 with an offset, got {type(value).__name__}"
    raise ValueError(msg)
