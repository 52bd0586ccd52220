"""Serial instrument driver (``driver: serial``, extra ``plantd[serial]``, pyserial).

Line- or delimiter-framed ASCII instruments (scales, gas analysers, GPS receivers, SCPI
meters): points taken by regular expression or field position, typed and scaled; request/
response polling and free-running streams; NMEA checksums; a port that vanishes and comes back
is survived. See ``docs/drivers/serial.md``.
"""

from __future__ import annotations

from plantd_drivers.serial._config import (
    Rs485,
    SerialConnection,
    SerialGroup,
    SerialModule,
    SerialPoint,
)
from plantd_drivers.serial._driver import SerialDriver

__all__ = [
    "Rs485",
    "SerialConnection",
    "SerialDriver",
    "SerialGroup",
    "SerialModule",
    "SerialPoint",
]
