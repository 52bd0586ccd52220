"""A serial instrument on a pseudo-terminal: a driver opens ``link`` as it would /dev/ttyUSB0.

    sim = SerialSimulator(load_instrument(Path("scale.yaml")), Path("/tmp/ttySCALE"))
    async with sim:
        ...                               # a module with connection.port: /tmp/ttySCALE
        await sim.inject(b"\\x00\\xffgarbage")  # noise on the wire
        sim.unplug()                      # the adapter is pulled: reads fail, the link is gone
        sim.replug()                      # a new pseudo-terminal behind the same link

The simulator keeps the pseudo-terminal's secondary end open itself, so a driver closing and
reopening the port sees no hang-up; :meth:`unplug` closes both ends and removes the link, which
is what a USB serial adapter's disappearance looks like to a process that had it open (reads
fail with EIO) and to one that opens it afterwards (no such file).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import tty
from pathlib import Path

from hil.serial._instrument import Instrument, InstrumentModel

__all__ = ["SerialSimulator"]


class SerialSimulator:
    def __init__(self, model: InstrumentModel, link: Path, *, seed: int = 1) -> None:
        self.model = model
        self.link = link
        self.instrument = Instrument(model, seed)
        self.received: list[str] = []  # every line a client sent
        self.silent = False  # True: requests are not answered (streams go on)
        self.wrong_answer: str | None = None  # answer every request with this instead
        self.plugged = False
        self._master: int | None = None
        self._secondary: int | None = None
        self._buffer = b""
        self._task: asyncio.Task[None] | None = None
        self._t0 = time.monotonic()
        self._terminator = model.terminator.encode(model.encoding)

    async def __aenter__(self) -> SerialSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self.replug()
        self._task = asyncio.create_task(self._stream_loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
            self._task = None
        self.unplug()

    # -- the cable -------------------------------------------------------------------------------

    def replug(self) -> None:
        """A new pseudo-terminal behind ``link`` (the port is back)."""
        if self.plugged:
            return
        master, secondary = os.openpty()
        tty.setraw(secondary)
        os.set_blocking(master, False)
        self._master, self._secondary = master, secondary
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        self.link.symlink_to(os.ttyname(secondary))
        asyncio.get_running_loop().add_reader(master, self._readable)
        self.plugged = True

    def unplug(self) -> None:
        """Pull the cable: both ends close (an open port's reads fail) and ``link`` goes."""
        if not self.plugged:
            return
        self.plugged = False
        assert self._master is not None
        assert self._secondary is not None
        asyncio.get_running_loop().remove_reader(self._master)
        os.close(self._master)
        os.close(self._secondary)
        self._master = self._secondary = None
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()

    # -- talking -----------------------------------------------------------------------------------

    async def inject(self, data: bytes) -> None:
        """Put raw bytes on the wire (noise, half lines, wrong checksums)."""
        self._send(data)

    async def send_line(self, text: str) -> None:
        self._send(text.encode(self.model.encoding) + self._terminator)

    def set(self, name: str, value: object) -> None:
        """Pin a value (it stops moving) until :meth:`release`."""
        self.instrument.overrides[name] = value

    def release(self, name: str) -> None:
        self.instrument.overrides.pop(name, None)

    def _send(self, data: bytes) -> None:
        if self._master is None:
            return
        with contextlib.suppress(BlockingIOError, OSError):  # nobody reads: the line drops it
            os.write(self._master, data)

    def _readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except OSError:
            return
        self._buffer += data
        while (end := self._buffer.find(self._terminator)) >= 0:
            line = self._buffer[:end].decode(self.model.encoding, errors="replace").strip()
            self._buffer = self._buffer[end + len(self._terminator) :]
            if not line:
                continue
            self.received.append(line)
            self.instrument.advance(time.monotonic() - self._t0)
            answer = None if self.silent else self.wrong_answer or self.instrument.answer(line)
            if answer is not None:
                self._send(answer.encode(self.model.encoding) + self._terminator)

    async def _stream_loop(self) -> None:
        if not self.model.streams:
            return
        while True:
            t = time.monotonic() - self._t0
            self.instrument.advance(t)
            for line in self.instrument.due(t):
                self._send(line.encode(self.model.encoding) + self._terminator)
            due = self.instrument.next_due()
            await asyncio.sleep(max(0.005, (due or t + 1) - (time.monotonic() - self._t0)))
