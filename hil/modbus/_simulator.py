"""The devices behind one connection (a TCP device, a gateway, a serial line) and their faults.

    sim = Simulator({1: meter, 2: plc})
    sim.fail(2, "silent")        # unit 2 stops answering; unit 1 goes on
    sim.fail(1, 4)               # unit 1 answers everything with exception 4 (device failure)
    sim.fail(1, "bad-crc", count=5)   # a burst: the next 5 answers of unit 1 are corrupted
    sim.slow(1, 0.3)             # unit 1 answers 0.3 s late (the servers hold the answer back)
    sim.heal()                   # every unit answers normally again
    sim.hang = True              # nobody answers, though connections stay open

Faults a unit can have:

- ``"silent"``: no answer, as a dead slave on an RS-485 line;
- an exception code (``2``, ``4``, ``0x0B``…): every request answered with that exception;
- ``"garbage"``: the answer's bytes are replaced by noise of the same length (broken framing,
  a bad CRC on RTU);
- ``"short"``: a well-formed answer carrying fewer registers or bits than asked for;
- ``"malformed"``: an answer whose byte count promises more data than the frame carries;
- ``"bad-crc"``: a correct answer whose last byte is flipped: on RTU framings a CRC error (on
  Modbus TCP it would silently change a value, so use it with RTU and RTU over TCP);
- ``"swapped"``: register reads answered with each pair of registers swapped, as a device
  configured with the other word order (values decode wrong, and nothing says so).

``fail(unit, fault, count=N)`` limits the fault to the next ``N`` answers (a burst); then the
unit heals by itself. ``slow(unit, seconds)`` delays the unit's answers: :meth:`delay_for` tells
the servers how long to hold an answer back.

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

Fault = Literal["silent", "garbage", "short", "malformed", "bad-crc", "swapped"] | int


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
        self.delays: dict[int, float] = {}
        """Seconds each unit's answers are held back (see :meth:`slow`)."""
        self._remaining: dict[int, int] = {}
        self._noise = random.Random(0)

    def fail(self, unit: int, fault: Fault, *, count: int | None = None) -> None:
        """Give ``unit`` a fault, for good or (``count``) for its next ``count`` answers."""
        self.faults[unit] = fault
        if count is None:
            self._remaining.pop(unit, None)
        else:
            self._remaining[unit] = count

    def slow(self, unit: int, seconds: float) -> None:
        """Answer ``unit``'s requests ``seconds`` late (0: on time again)."""
        if seconds > 0:
            self.delays[unit] = seconds
        else:
            self.delays.pop(unit, None)

    def delay_for(self, unit: int) -> float:
        return self.delays.get(unit, 0.0)

    def heal(self, unit: int | None = None) -> None:
        """Clear the fault and delay of ``unit`` (of every unit if None) and stop hanging."""
        if unit is None:
            self.faults.clear()
            self.delays.clear()
            self._remaining.clear()
            self.hang = False
        else:
            self.faults.pop(unit, None)
            self.delays.pop(unit, None)
            self._remaining.pop(unit, None)

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
        if self.hang:
            return None
        fault = self._take_fault(unit)
        if fault == "silent":
            return None
        if isinstance(fault, int):
            return frame(bytes(((pdu[0] | 0x80) & 0xFF, fault)))
        response = device.respond(pdu)
        if fault == "garbage":
            framed = frame(response)
            return bytes(self._noise.randrange(256) for _ in framed)
        if fault == "bad-crc":
            framed = frame(response)
            return framed[:-1] + bytes((framed[-1] ^ 0xFF,))
        if fault == "swapped" and pdu[0] in (3, 4) and len(response) > 3:
            data = response[2:]
            pairs = len(data) // 4 * 4
            swapped = b"".join(data[i + 2 : i + 4] + data[i : i + 2] for i in range(0, pairs, 4))
            response = response[:2] + swapped + data[pairs:]
        if fault in ("short", "malformed") and pdu[0] <= 4 and len(response) > 3:
            data = response[2:]
            keep = len(data) // 2 if pdu[0] <= 2 else len(data) // 2 & ~1
            size = keep if fault == "short" else response[1]
            response = bytes((pdu[0], size)) + data[:keep]
        return frame(response)

    def _take_fault(self, unit: int) -> Fault | None:
        """The unit's fault for this answer, counting down a burst."""
        fault = self.faults.get(unit)
        remaining = self._remaining.get(unit)
        if fault is not None and remaining is not None:
            if remaining <= 1:
                self.faults.pop(unit, None)
                self._remaining.pop(unit, None)
            else:
                self._remaining[unit] = remaining - 1
        return fault


def _address_and_count(pdu: bytes) -> tuple[int, int]:
    if len(pdu) < 5:
        return 0, 0
    address = int.from_bytes(pdu[1:3], "big")
    count = 1 if pdu[0] in (5, 6) else int.from_bytes(pdu[3:5], "big")
    return address, count
