"""The devices behind one connection (a TCP device, a gateway, a serial line) and their faults.

    sim = Simulator({1: meter, 2: plc})
    sim.fail(2, "silent")        # unit 2 stops answering; unit 1 goes on
    sim.fail(1, 4)               # unit 1 answers everything with exception 4 (device failure)
    sim.heal()                   # every unit answers normally again
    sim.hang = True              # nobody answers, though connections stay open

Faults a unit can have:

- ``"silent"``: no answer, as a dead slave on an RS-485 line;
- an exception code (``2``, ``4``, ``0x0B``…): every request answered with that exception;
- ``"garbage"``: the answer's bytes are replaced by noise of the same length (broken framing,
  a bad CRC on RTU);
- ``"short"``: a well-formed answer carrying fewer registers or bits than asked for;
- ``"malformed"``: an answer whose byte count promises more data than the frame carries.

A unit id with no device is silent, like an absent slave. Every request addressed to a known
unit is logged in :attr:`Simulator.requests` (whatever the fault), so tests can count what the
client sent. :meth:`answer` is sans-IO; the servers in ``_server`` carry the bytes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from hil.modbus._device import Device

__all__ = ["Fault", "Request", "Simulator"]

Fault = Literal["silent", "garbage", "short", "malformed"] | int


@dataclass(frozen=True, slots=True)
class Request:
    unit: int
    function: int
    address: int
    count: int


class Simulator:
    def __init__(self, devices: Mapping[int, Device] | None = None) -> None:
        self.devices: dict[int, Device] = dict(devices or {})
        self.faults: dict[int, Fault] = {}
        self.hang = False
        """Accept connections and read requests, but answer none (a wedged gateway)."""
        self.requests: list[Request] = []
        self._noise = random.Random(0)

    def fail(self, unit: int, fault: Fault) -> None:
        self.faults[unit] = fault

    def heal(self, unit: int | None = None) -> None:
        """Clear the fault of ``unit`` (of every unit if None) and stop hanging."""
        if unit is None:
            self.faults.clear()
            self.hang = False
        else:
            self.faults.pop(unit, None)

    def count(self, unit: int | None = None, function: int | None = None) -> int:
        """Requests logged for ``unit`` and ``function`` (None: any)."""
        return sum(
            1
            for r in self.requests
            if (unit is None or r.unit == unit) and (function is None or r.function == function)
        )

    def answer(self, unit: int, pdu: bytes, frame: Callable[[bytes], bytes]) -> bytes | None:
        """The bytes to send back for request ``pdu`` to ``unit`` (None: stay silent).

        ``frame`` wraps a response PDU for the transport (MBAP header, or unit id and CRC).
        """
        device = self.devices.get(unit)
        if device is None or not pdu:
            return None
        address, count = _address_and_count(pdu)
        self.requests.append(Request(unit, pdu[0], address, count))
        fault = self.faults.get(unit)
        if self.hang or fault == "silent":
            return None
        if isinstance(fault, int):
            return frame(bytes(((pdu[0] | 0x80) & 0xFF, fault)))
        response = device.respond(pdu)
        if fault == "garbage":
            framed = frame(response)
            return bytes(self._noise.randrange(256) for _ in framed)
        if fault in ("short", "malformed") and pdu[0] <= 4 and len(response) > 3:
            data = response[2:]
            keep = len(data) // 2 if pdu[0] <= 2 else len(data) // 2 & ~1
            size = keep if fault == "short" else response[1]
            response = bytes((pdu[0], size)) + data[:keep]
        return frame(response)


def _address_and_count(pdu: bytes) -> tuple[int, int]:
    if len(pdu) < 5:
        return 0, 0
    address = int.from_bytes(pdu[1:3], "big")
    count = 1 if pdu[0] in (5, 6) else int.from_bytes(pdu[3:5], "big")
    return address, count
