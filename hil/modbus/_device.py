"""A simulated Modbus device: four tables, the addresses it serves, and how it answers a PDU.

    meter = Device()
    meter.map("input", 0, 100)                          # serves input registers 0…99
    meter.set_value("input", 0, "float32", 230.1, order="CDAB")
    meter.map("coil", 0, 8)
    meter.bits["coil"][3] = True

Only mapped addresses exist: a request touching an unmapped one is answered with exception 2
(illegal data address), as real devices answer reads across holes in their register map.
``max_registers``/``max_bits`` model devices that serve fewer values per request than the
protocol allows (they refuse larger requests with exception 2 as well).

``on_write`` (a callable ``(table, address, count)``) hears of every write a client made, after
it was stored: how a simulated process learns that a controller moved a setpoint.

:meth:`Device.respond` is sans-IO: a request PDU (function code and data) in, the response PDU
out. Faults (silence, garbage, exception answers) are the :class:`~hil.modbus.Simulator`'s job.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from plantd_drivers.modbus import Table

from hil.modbus._values import from_registers, to_registers

__all__ = ["Device", "Table"]

# The table names are the driver's (one vocabulary); the encoding stays this package's own.
_READ_TABLE: dict[int, Table] = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}

ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE = 1, 2, 3


class Device:
    """Values of one unit id. ``registers``/``bits`` are plain dicts: address → value."""

    def __init__(self, *, max_registers: int = 125, max_bits: int = 2000) -> None:
        self.registers: dict[Table, dict[int, int]] = {"holding": {}, "input": {}}
        self.bits: dict[Table, dict[int, bool]] = {"coil": {}, "discrete": {}}
        self.max_registers = max_registers
        self.max_bits = max_bits
        self.ignore_writes: set[tuple[Table, int]] = set()
        """(table, address) pairs whose writes are acknowledged but not kept, as by a PLC in
        local mode: what a client's read-back check is for."""
        self.on_write: Callable[[Table, int, int], None] | None = None
        """Called as ``on_write(table, address, count)`` after a client's write was stored."""

    # -- the model ------------------------------------------------------------------------------

    def map(self, table: Table, address: int, count: int) -> None:
        """Serve ``count`` addresses of ``table`` from ``address`` (values start at 0/False)."""
        if table in self.bits:
            for a in range(address, address + count):
                self.bits[table].setdefault(a, False)
        else:
            for a in range(address, address + count):
                self.registers[table].setdefault(a, 0)

    def set_registers(self, table: Table, address: int, values: Sequence[int]) -> None:
        """Set (and map) registers of ``holding`` or ``input``."""
        for offset, value in enumerate(values):
            if not 0 <= value <= 0xFFFF:
                raise ValueError(f"a register holds 0…65535, got {value}")
            self.registers[table][address + offset] = value

    def get_registers(self, table: Table, address: int, count: int) -> list[int]:
        return [self.registers[table][a] for a in range(address, address + count)]

    def set_value(
        self,
        table: Table,
        address: int,
        value_type: str,
        value: object,
        *,
        order: str = "ABCD",
        length: int | None = None,
    ) -> None:
        """Store ``value`` as ``value_type`` in ``order`` (see :mod:`hil.modbus._values`)."""
        if table in self.bits:
            self.bits[table][address] = bool(value)
            return
        self.set_registers(table, address, to_registers(value_type, value, order, length=length))

    def get_value(
        self, table: Table, address: int, value_type: str, *, order: str = "ABCD", count: int = 0
    ) -> object:
        if table in self.bits:
            return self.bits[table][address]
        size = count or {"int32": 2, "uint32": 2, "float32": 2, "int48": 3, "uint48": 3}.get(
            value_type, 4 if value_type.endswith("64") else 1
        )
        return from_registers(value_type, self.get_registers(table, address, size), order)

    # -- the protocol ---------------------------------------------------------------------------

    def respond(self, pdu: bytes) -> bytes:
        """The response PDU to a request PDU (an exception response if it cannot be served)."""
        function = pdu[0] if pdu else 0
        try:
            if function in _READ_TABLE and len(pdu) == 5:
                return self._read(function, *struct.unpack(">HH", pdu[1:5]))
            if function in (5, 6) and len(pdu) == 5:
                return self._write_single(function, *struct.unpack(">HH", pdu[1:5]))
            if function in (15, 16) and len(pdu) >= 6:
                address, count, size = struct.unpack(">HHB", pdu[1:6])
                return self._write_multiple(function, address, count, pdu[6 : 6 + size])
        except _Refusal as refusal:
            return bytes((function | 0x80, refusal.code))
        return bytes(((function | 0x80) & 0xFF, ILLEGAL_FUNCTION))

    def _read(self, function: int, address: int, count: int) -> bytes:
        table = _READ_TABLE[function]
        if table in self.bits:
            if not 1 <= count <= 2000:
                raise _Refusal(ILLEGAL_VALUE)
            values = self._bits(table, address, count)
            packed = bytearray((count + 7) // 8)
            for i, bit in enumerate(values):
                if bit:
                    packed[i // 8] |= 1 << (i % 8)
            return bytes((function, len(packed))) + bytes(packed)
        if not 1 <= count <= 125:
            raise _Refusal(ILLEGAL_VALUE)
        if count > self.max_registers:
            raise _Refusal(ILLEGAL_ADDRESS)
        store = self.registers[table]
        if any(a not in store for a in range(address, address + count)):
            raise _Refusal(ILLEGAL_ADDRESS)
        data = struct.pack(f">{count}H", *(store[a] for a in range(address, address + count)))
        return bytes((function, len(data))) + data

    def _bits(self, table: Table, address: int, count: int) -> list[bool]:
        store = self.bits[table]
        if count > self.max_bits or any(a not in store for a in range(address, address + count)):
            raise _Refusal(ILLEGAL_ADDRESS)
        return [store[a] for a in range(address, address + count)]

    def _write_single(self, function: int, address: int, value: int) -> bytes:
        if function == 5:
            if value not in (0x0000, 0xFF00):
                raise _Refusal(ILLEGAL_VALUE)
            self._bits("coil", address, 1)
            self._store_bits(address, [value == 0xFF00])
        else:
            if address not in self.registers["holding"]:
                raise _Refusal(ILLEGAL_ADDRESS)
            self._store_registers(address, [value])
        return struct.pack(">BHH", function, address, value)

    def _write_multiple(self, function: int, address: int, count: int, data: bytes) -> bytes:
        if function == 15:
            if not 1 <= count <= 1968 or len(data) != (count + 7) // 8:
                raise _Refusal(ILLEGAL_VALUE)
            self._bits("coil", address, count)
            self._store_bits(address, [bool(data[i // 8] >> (i % 8) & 1) for i in range(count)])
        else:
            if not 1 <= count <= 123 or len(data) != 2 * count:
                raise _Refusal(ILLEGAL_VALUE)
            store = self.registers["holding"]
            if any(a not in store for a in range(address, address + count)):
                raise _Refusal(ILLEGAL_ADDRESS)
            self._store_registers(address, struct.unpack(f">{count}H", data))
        return struct.pack(">BHH", function, address, count)

    def _store_bits(self, address: int, values: Sequence[bool]) -> None:
        for offset, value in enumerate(values):
            if ("coil", address + offset) not in self.ignore_writes:
                self.bits["coil"][address + offset] = value
        if self.on_write is not None:
            self.on_write("coil", address, len(values))

    def _store_registers(self, address: int, values: Sequence[int]) -> None:
        for offset, value in enumerate(values):
            if ("holding", address + offset) not in self.ignore_writes:
                self.registers["holding"][address + offset] = value
        if self.on_write is not None:
            self.on_write("holding", address, len(values))


class _Refusal(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code
