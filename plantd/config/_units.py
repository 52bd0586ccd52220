"""Durations and sizes as people write them: ``"250ms"``, ``"2.5s"``, ``"512KiB"``, ``"1MB"``.

Durations are returned as float seconds, sizes as int bytes. A bare number (``2.5``, ``"2.5"``)
is seconds or bytes. These functions only read text; range rules (``> 0``) belong to the schema.
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["DURATION_UNITS", "SIZE_UNITS", "parse_duration", "parse_size"]

DURATION_UNITS: dict[str, Fraction] = {
    "ms": Fraction(1, 1000),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
    "d": Fraction(86400),
}

# Decimal (kB, MB, GB) and binary (KiB, MiB, GiB) multiples; "KB" is read as 1000 like "kB".
SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}

# Exact arithmetic (Fraction) so that "250ms" is 0.25 to the last bit; the exponent is kept short
# so that no config value makes a giant integer.
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d{1,3})?"
_DURATION = re.compile(rf"\s*(?P<number>{_NUMBER})\s*(?P<unit>ms|s|m|h|d)?\s*", re.ASCII)
_SIZE = re.compile(rf"\s*(?P<number>{_NUMBER})\s*(?P<unit>[kKmMgG]i?[bB]|[bB])?\s*", re.ASCII)


def parse_duration(text: str) -> float | None:
    """Seconds from ``"250ms"``, ``"2.5s"``, ``"1m"``, ``"1h"``, ``"7d"`` or ``"2.5"``; None if not
    one."""
    match = _DURATION.fullmatch(text)
    if match is None:
        return None
    try:
        return float(Fraction(match["number"]) * DURATION_UNITS[match["unit"] or "s"])
    except (ValueError, OverflowError):
        return None


def parse_size(text: str) -> int | None:
    """Bytes from ``"512KiB"``, ``"1MiB"``, ``"1MB"``, ``"1.5kB"`` or ``"4096"``.

    None if it is not a size, or not a whole number of bytes (``"1.5B"``).
    """
    match = _SIZE.fullmatch(text)
    if match is None:
        return None
    try:
        exact = Fraction(match["number"]) * SIZE_UNITS[(match["unit"] or "b").lower()]
    except ValueError:
        return None
    return int(exact) if exact.denominator == 1 else None
