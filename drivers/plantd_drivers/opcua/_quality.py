"""OPC UA status codes → sample quality, and a DataValue's parts → a Reading (sans-IO).

A status code is 32 bits; its top two bits are the severity (OPC 10000-4, 7.39):

    00  Good        → Quality.GOOD       the value is used as it is
    01  Uncertain   → Quality.UNCERTAIN  the value is kept (a sensor out of calibration, a
                                         last usable value…); the sample says it is doubtful
    10  Bad         → Quality.BAD        no value: the reading carries the code's name as error
    11  (reserved)  → Quality.BAD

Timestamps: the source timestamp (when the device measured) is kept; without one, the server
timestamp; without either, None (the runtime stamps the moment it received the value).

Nothing here imports asyncua: codes are ints, timestamps are ``datetime`` or None, and the
caller passes a function that names a code (``asyncua.ua.status_codes.get_name_and_doc``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from plantd.bus import Quality
from plantd.module import Reading
from plantd_drivers.opcua._values import to_sample_value

__all__ = ["quality_of", "reading_of"]

_SEVERITY = {0: Quality.GOOD, 1: Quality.UNCERTAIN, 2: Quality.BAD, 3: Quality.BAD}


def quality_of(code: int) -> Quality:
    """The quality of status code ``code``, from its severity bits."""
    return _SEVERITY[(code >> 30) & 0b11]


def reading_of(
    value: Any,
    code: int,
    source: datetime | None,
    server: datetime | None,
    name_of: Callable[[int], str],
) -> Reading:
    """A Reading from a DataValue's Variant value, status code and timestamps."""
    quality = quality_of(code)
    stamp = source or server
    timestamp = stamp.timestamp() if stamp is not None else None
    if quality is Quality.BAD:
        return Reading(None, Quality.BAD, timestamp, f"{name_of(code)} (0x{code:08X})")
    try:
        return Reading(to_sample_value(value), quality, timestamp)
    except ValueError as exc:
        return Reading(None, Quality.BAD, timestamp, str(exc))
