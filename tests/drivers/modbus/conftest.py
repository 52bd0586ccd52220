"""Simulated Modbus devices for the driver's tests: in-process servers on loopback and on a
pseudo-terminal, and a helper that builds a module config the way a YAML file would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from plantd_drivers.modbus import ModbusModule

from hil.modbus import PtyServer, Simulator, TcpServer
from plantd.config import parse_dataclass

TRANSPORTS = ("tcp", "rtu", "rtu-over-tcp")


def make_module(connection: dict[str, Any], groups: list[dict[str, Any]]) -> ModbusModule:
    data = {"driver": "modbus", "connection": connection, "groups": groups}
    return parse_dataclass(ModbusModule, data, source="test")


class Rig:
    """A simulator behind one server, and the connection settings that reach it."""

    def __init__(self, transport: str, simulator: Simulator) -> None:
        self.transport = transport
        self.sim = simulator
        self.tcp: TcpServer | None = None
        self.pty: PtyServer | None = None

    async def start(self) -> None:
        if self.transport == "rtu":
            self.pty = PtyServer(self.sim)
            await self.pty.start()
        else:
            framing = "mbap" if self.transport == "tcp" else "rtu"
            self.tcp = TcpServer(self.sim, framing=framing)
            await self.tcp.start()

    async def stop(self) -> None:
        if self.pty is not None:
            await self.pty.stop()
        if self.tcp is not None:
            await self.tcp.stop()

    def connection(self, **settings: Any) -> dict[str, Any]:
        base: dict[str, Any] = {"transport": self.transport, "timeout": 0.2, "retries": 0}
        if self.pty is not None:
            # a pty carries no parity bits, and Linux refuses PARENB on some ptys (EINVAL)
            base |= {"device": self.pty.device, "baudrate": 115200, "parity": "none"}
        else:
            assert self.tcp is not None
            base |= {"host": "127.0.0.1", "port": self.tcp.port}
        return base | settings

    def module(self, groups: list[dict[str, Any]], **settings: Any) -> ModbusModule:
        return make_module(self.connection(**settings), groups)


@pytest.fixture
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    transport = getattr(request, "param", "tcp")
    rig = Rig(transport, Simulator())
    await rig.start()
    try:
        yield rig
    finally:
        await rig.stop()
