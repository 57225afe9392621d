"""The JSON forms of logical types, shared by Avro and Kafka Connect JSON (docs/payloads.md, "Rendering"):
exact decimals, ISO-8601 dates and times, base64 bytes."""

from __future__ import annotations

import base64
import datetime
from decimal import Decimal

_EPOCH = datetime.date(1970, 1, 1)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decimal_from_unscaled(unscaled: int, scale: int) -> Decimal:
    """Exactly ``unscaled * 10**-scale`` with ``scale`` fraction digits, built from the digit tuple so that
    no decimal context (28 digits by default) rounds it."""
    sign, digits, _ = Decimal(unscaled).as_tuple()
    return Decimal((sign, digits, -scale))


def iso_date(days: int) -> str:
    """Days since 1970-01-01 as ``YYYY-MM-DD`` (OverflowError outside years 1..9999)."""
    return (_EPOCH + datetime.timedelta(days=days)).isoformat()


def iso_time(ticks: int, per_second: int) -> str:
    """Time of day from ``ticks`` (``per_second`` of them a second: 1000 for ms, 10**6 for µs) as
    ``HH:MM:SS.fff`` with as many fraction digits as the unit has."""
    seconds, fraction = divmod(ticks, per_second)
    minutes, s = divmod(seconds, 60)
    h, m = divmod(minutes, 60)
    return f"{h:02d}:{m:02d}:{s:02d}.{fraction:0{len(str(per_second)) - 1}d}"
