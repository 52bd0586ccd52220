"""Simulated Modbus devices: a register-map device model, fault injection, and servers over TCP
(Modbus TCP or RTU over TCP) and over a pseudo-terminal (RTU, as on an RS-485 line).

    from hil.modbus import Device, Simulator, TcpServer

    meter = Device()
    meter.map("input", 0, 64)
    meter.set_value("input", 0, "float32", 230.1, order="CDAB")
    sim = Simulator({1: meter})
    async with TcpServer(sim, port=5020) as server:
        ...                      # point a plantd module at 127.0.0.1:5020, unit 1
        sim.fail(1, "silent")    # and watch what it does when the meter stops answering

The protocol side is written from the Modbus specification, not with a Modbus library, so a
client tested against it is not only tested against itself.
"""

from __future__ import annotations

from hil.modbus._device import Device, Table
from hil.modbus._framing import Framing, RequestFramer, crc16
from hil.modbus._server import PtyServer, TcpServer
from hil.modbus._simulator import Fault, Request, Simulator
from hil.modbus._values import from_registers, to_registers

__all__ = [
    "Device",
    "Fault",
    "Framing",
    "PtyServer",
    "Request",
    "RequestFramer",
    "Simulator",
    "Table",
    "TcpServer",
    "crc16",
    "from_registers",
    "to_registers",
]
