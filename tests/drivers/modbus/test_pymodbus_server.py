"""Interoperation with pymodbus's own servers (TCP, and RTU on a pair of pseudo-terminals).

The other tests run against ``hil.modbus``, which is written from the specification and can
inject faults; these check that the driver also reads and writes a third implementation. They
import pymodbus's server API, which moves between minor releases: when pymodbus is upgraded,
this file is expected to need attention, and that is its point.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import AsyncIterator
from typing import Any

import pytest
from plantd_drivers.modbus import ModbusDriver
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from plantd.bus import Quality

from .conftest import make_module

pytestmark = pytest.mark.timeout(30)

# registers 0…9: float32 230.1 CDAB at 0, uint32 0x11223344 ABCD at 2, int16 -2 at 4
REGISTERS = [0x199A, 0x4366, 0x1122, 0x3344, 0xFFFE, 0, 0, 0, 0, 0]
POINTS: list[dict[str, Any]] = [
    {"name": "voltage", "address": 0, "type": "float32", "order": "CDAB"},
    {"name": "counter", "address": 2, "type": "uint32"},
    {"name": "setpoint", "address": 4, "type": "int16", "writable": True, "read_back": True},
]


def device() -> SimDevice:
    return SimDevice(1, simdata=[SimData(0, values=REGISTERS, datatype=DataType.REGISTERS)])


@pytest.fixture
async def tcp_server() -> AsyncIterator[int]:
    server = ModbusTcpServer(device(), address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    # Port 0: the system picks; the listening socket says which.
    port = int(server.transport.sockets[0].getsockname()[1])
    try:
        yield port
    finally:
        await server.shutdown()


@pytest.fixture
async def serial_server() -> AsyncIterator[str]:
    """pymodbus's serial server on one pty, the driver on another, the masters bridged."""
    pairs = [os.openpty(), os.openpty()]
    for master, slave in pairs:
        tty.setraw(slave)
        os.set_blocking(master, False)
    (m1, s1), (m2, s2) = pairs
    loop = asyncio.get_running_loop()

    def pump(source: int, sink: int) -> None:
        with contextlib.suppress(OSError):
            os.write(sink, os.read(source, 4096))

    loop.add_reader(m1, pump, m1, m2)
    loop.add_reader(m2, pump, m2, m1)
    server = ModbusSerialServer(
        device(), framer=FramerType.RTU, port=os.ttyname(s1), baudrate=115200
    )
    await server.serve_forever(background=True)
    try:
        yield os.ttyname(s2)
    finally:
        await server.shutdown()
        for fd in (m1, m2):
            loop.remove_reader(fd)
        for fd in (m1, s1, m2, s2):
            os.close(fd)


async def exercise(connection: dict[str, Any]) -> None:
    module = make_module(connection, [{"name": "g", "points": POINTS}])
    driver = ModbusDriver(module)
    await driver.open()
    try:
        readings = await driver.read(module.groups[0])
        assert all(r.quality is Quality.GOOD for r in readings.values()), readings
        assert readings["voltage"].value == pytest.approx(230.1, rel=1e-6)
        assert readings["counter"].value == 0x11223344
        assert readings["setpoint"].value == -2
        assert await driver.write(module.groups[0].points[2], 1234) == 1234
        assert (await driver.read(module.groups[0]))["setpoint"].value == 1234
        assert driver.status()["requests_per_cycle"] == {"g": 1}
    finally:
        await driver.close()


async def test_pymodbus_tcp_server(tcp_server: int) -> None:
    await exercise({"host": "127.0.0.1", "port": tcp_server, "timeout": 1})


async def test_pymodbus_serial_server_on_a_pty(serial_server: str) -> None:
    connection = {"transport": "rtu", "device": serial_server, "baudrate": 115200}
    await exercise(connection | {"parity": "none", "timeout": 1})
