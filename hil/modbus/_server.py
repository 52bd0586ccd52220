"""Servers that carry a :class:`Simulator`'s bytes: TCP (Modbus TCP, or RTU over TCP as serial
device servers speak it) and RTU on a pseudo-terminal pair.

    async with TcpServer(sim) as server:            # 127.0.0.1, a free port
        ...  # connect a client to server.port
        await server.restart(downtime=0.5)          # as a device reboot: connections drop
        server.drop()                               # connections cut; still listening

    async with PtyServer(sim, link=Path("/tmp/ttySIM")) as line:   # a serial line, no hardware
        ...  # open line.device (/dev/pts/N), or the stable symlink line.link, with any client

The pty server holds both ends of the pair, so a client may open and close the device as often
as it likes; a real RS-485 adapter behaves the same way. The pty's own name changes from run to
run; ``link`` is a symlink to it under a name that does not (replaced atomically at start,
removed at stop).

Both servers hold an answer back for :meth:`Simulator.delay_for` seconds (a slow device).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from functools import partial
from pathlib import Path
from types import TracebackType

from hil.modbus._framing import Framing, RequestFramer
from hil.modbus._simulator import Simulator

__all__ = ["PtyServer", "TcpServer"]


class TcpServer:
    def __init__(
        self,
        simulator: Simulator,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        framing: Framing = "mbap",
    ) -> None:
        self.simulator = simulator
        self.host = host
        self.port = port
        self.framing: Framing = framing
        self.connections = 0
        """Connections accepted so far (a client that reconnects counts again)."""
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every connection (clients see a reset or an end of file)."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        if self._handlers:
            await asyncio.wait(self._handlers)
        self._server = None

    def drop(self) -> None:
        """Cut every open connection (clients see a reset); keep listening for new ones."""
        for writer in list(self._writers):
            writer.close()

    async def restart(self, downtime: float = 0.0) -> None:
        """Stop, stay away ``downtime`` seconds, listen again on the same port."""
        await self.stop()
        await asyncio.sleep(downtime)
        await self.start()

    async def __aenter__(self) -> TcpServer:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        self.connections += 1
        framer = RequestFramer(self.framing)
        loop = asyncio.get_running_loop()
        try:
            while data := await reader.read(4096):
                for transaction, unit, pdu in framer.receive(data):
                    out = self.simulator.answer(unit, pdu, partial(framer.frame, transaction, unit))
                    delay = self.simulator.delay_for(unit)
                    if out and delay > 0:
                        loop.call_later(delay, _late_write, writer, out)
                    elif out:
                        writer.write(out)
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def _late_write(writer: asyncio.StreamWriter, data: bytes) -> None:
    if not writer.is_closing():
        writer.write(data)


class PtyServer:
    """RTU on the master side of a pseudo-terminal; clients open :attr:`device` (or ``link``)."""

    def __init__(self, simulator: Simulator, *, link: Path | None = None) -> None:
        self.simulator = simulator
        self.link = link
        self.device = ""
        self._fds: tuple[int, int] | None = None
        self._framer = RequestFramer("rtu")

    async def start(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._fds = master, slave
        self.device = os.ttyname(slave)
        if self.link is not None:
            self.link.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.link.with_name(f".{self.link.name}.{os.getpid()}")
            temporary.unlink(missing_ok=True)
            temporary.symlink_to(self.device)
            temporary.replace(self.link)  # atomic: a client never finds the name missing
        asyncio.get_running_loop().add_reader(master, self._readable, master)

    async def stop(self) -> None:
        if self._fds is None:
            return
        master, slave = self._fds
        asyncio.get_running_loop().remove_reader(master)
        os.close(master)
        os.close(slave)
        self._fds = None
        if self.link is not None:
            with contextlib.suppress(OSError):
                if os.readlink(self.link) == self.device:
                    self.link.unlink()

    async def __aenter__(self) -> PtyServer:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _readable(self, master: int) -> None:
        try:
            data = os.read(master, 4096)
        except (BlockingIOError, OSError):
            return  # EIO while no client holds the device open: nothing to read
        for _, unit, pdu in self._framer.receive(data):
            out = self.simulator.answer(unit, pdu, partial(self._framer.frame, 0, unit))
            delay = self.simulator.delay_for(unit)
            if out and delay > 0:
                asyncio.get_running_loop().call_later(delay, self._late_write, master, out)
            elif out:
                os.write(master, out)

    def _late_write(self, master: int, data: bytes) -> None:
        if self._fds is not None and self._fds[0] == master:
            with contextlib.suppress(OSError):
                os.write(master, data)
