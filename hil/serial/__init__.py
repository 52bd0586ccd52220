"""Simulated serial instruments on pseudo-terminal pairs (scales, analysers, GPS receivers).

    from hil.serial import SerialSimulator, load_instrument

    async with SerialSimulator(load_instrument(Path("hil/serial/examples/gps.yaml")),
                               Path("/tmp/ttyGPS")) as gps:
        gps.unplug(); gps.replug()        # the USB adapter pulled and put back

From a shell: ``python -m hil.serial FILE.yaml /tmp/ttyX``.
"""

from __future__ import annotations

from hil.serial._instrument import (
    Instrument,
    InstrumentModel,
    Reply,
    Stream,
    Value,
    load_instrument,
    nmea,
)
from hil.serial._simulator import SerialSimulator

__all__ = [
    "Instrument",
    "InstrumentModel",
    "Reply",
    "SerialSimulator",
    "Stream",
    "Value",
    "load_instrument",
    "nmea",
]
