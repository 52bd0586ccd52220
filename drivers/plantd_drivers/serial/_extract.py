"""A frame → the Readings of its group's points (sans-IO).

:meth:`Extractor.extract` answers None for a frame that is not the group's (``match`` does not
find it), :class:`Rejected` for one that is but cannot be trusted (a wrong NMEA checksum), and
otherwise a Reading for every point: good when its capture or field converted, bad (saying
why) when it is missing, empty or not of its type. One bad field spoils one point.

Numbers are read the way instruments print them: a sign may stand apart from the digits,
padded to a fixed width (``+  12.345``, ``-   0.5``), as scales and counters do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from plantd.bus import SampleValue
from plantd.module import Reading
from plantd_drivers.serial import _nmea
from plantd_drivers.serial._config import SerialGroup, SerialPoint

__all__ = ["Extractor", "Rejected", "convert"]

_DETACHED_SIGN = re.compile(r"^([+-])\s+(?=\S)")


@dataclass(frozen=True)
class Rejected:
    reason: str


class Extractor:
    def __init__(self, group: SerialGroup) -> None:
        self.group = group
        self.pattern = re.compile(group.match)

    def extract(self, frame: str) -> dict[str, Reading] | Rejected | None:
        match = self.pattern.search(frame)
        if match is None:
            return None
        text = frame
        if self.group.checksum == "nmea":
            try:
                text = _nmea.verify(frame)
            except ValueError as exc:
                return Rejected(str(exc))
        fields = text.split(self.group.separator) if self.group.separator else []
        readings: dict[str, Reading] = {}
        for point in self.group.points:
            if point.capture is not None:
                raw = match.group(point.capture)
                where = f"group {point.capture!r}"
            else:
                assert point.field is not None
                raw = fields[point.field] if point.field < len(fields) else None
                where = f"field {point.field}"
            if raw is None or raw.strip() == "":
                readings[point.name] = Reading.bad(f"{where} is empty in {frame[:60]!r}")
                continue
            try:
                value = convert(raw.strip(), point, fields)
            except ValueError as exc:
                readings[point.name] = Reading.bad(f"{where}: {exc}")
                continue
            readings[point.name] = Reading(value)
        return readings


def convert(raw: str, point: SerialPoint, fields: list[str]) -> SampleValue:
    kind = point.type
    if kind == "str":
        return raw
    if kind == "bool":
        return raw.lower() in {t.lower() for t in point.true_values}
    digits = _DETACHED_SIGN.sub(r"\1", raw)
    try:
        if kind == "int":
            number: float = int(digits, 10)
        elif kind == "hex":
            number = int(digits, 16)
        elif kind == "nmea_angle":
            number = _nmea_angle(raw, point, fields)
        else:
            number = float(digits)
    except ValueError:
        raise ValueError(f"{raw!r} is not {_NOUNS[kind]}") from None
    if point.scale == 1.0 and point.offset == 0.0:
        return number
    scaled = number * point.scale + point.offset
    return round(scaled) if kind in ("int", "hex") and float(scaled).is_integer() else scaled


_NOUNS = {
    "int": "an integer",
    "hex": "a hex integer",
    "float": "a number",
    "nmea_angle": "ddmm.mmmm",
}


def _nmea_angle(raw: str, point: SerialPoint, fields: list[str]) -> float:
    value = float(raw)
    degrees = int(value // 100)
    angle = degrees + (value - degrees * 100) / 60
    if point.sign_field is not None:
        sign = fields[point.sign_field].strip().upper() if point.sign_field < len(fields) else ""
        if sign not in ("N", "S", "E", "W"):
            raise ValueError(f"hemisphere field {point.sign_field} is {sign!r}, not N/S/E/W")
        if sign in ("S", "W"):
            angle = -angle
    return angle
