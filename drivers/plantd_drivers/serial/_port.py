"""The port: pyserial behind a reader thread, frames handed to the event loop.

pyserial blocks, so one thread per open port reads: it waits for bytes (``read`` with a short
timeout, so that it notices ``close``), feeds them to the :class:`Framer` and hands each frame
to the loop with ``call_soon_threadsafe``. Writes go through ``asyncio.to_thread``. When the
port fails — the USB adapter was unplugged, the pseudo-terminal's other end closed — the
reader thread hands the error to the loop instead (once) and ends; the driver turns it into
DeviceUnavailable and the runtime reopens the port with backoff until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from plantd.errors import DeviceFault, DeviceUnavailable
from plantd_drivers.serial._config import SerialConnection
from plantd_drivers.serial._framing import Framer

__all__ = ["SerialPort"]

log = logging.getLogger(__name__)

_PARITY = {"none": "N", "even": "E", "odd": "O", "mark": "M", "space": "S"}


def _serial() -> Any:
    """pyserial, imported when a port opens (it ships no type information)."""
    import serial  # type: ignore[import-untyped]
    import serial.rs485  # type: ignore[import-untyped]

    return serial


class SerialPort:
    def __init__(
        self,
        connection: SerialConnection,
        on_frame: Callable[[str], None],
        on_error: Callable[[DeviceUnavailable], None],
    ) -> None:
        self.connection = connection
        self.framer = Framer(
            connection.terminator.encode(connection.encoding),
            start=connection.start.encode(connection.encoding) if connection.start else None,
            max_frame=connection.max_frame,
            encoding=connection.encoding,
        )
        self.bytes_in = 0
        self.bytes_out = 0
        self._on_frame = on_frame
        self._on_error = on_error
        self._serial: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    async def open(self) -> None:
        self._serial = await asyncio.to_thread(self._open)
        loop = asyncio.get_running_loop()
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._read_loop, args=(loop,), name=f"serial {self.connection.port}", daemon=True
        )
        self._thread.start()

    def _open(self) -> Any:
        serial = _serial()
        c = self.connection
        settings: dict[str, Any] = {
            "baudrate": c.baudrate,
            "bytesize": c.bytesize,
            "parity": _PARITY[c.parity],
            "stopbits": c.stopbits,
            "xonxoff": c.xonxoff,
            "rtscts": c.rtscts,
            "timeout": 0.1,
            "write_timeout": c.timeout,
        }
        cls = serial.Serial
        if c.rs485 is not None and c.rs485.mode == "software":
            cls = serial.rs485.RS485
        try:
            port = cls(**settings)
            port.port = c.port
            port.open()
        except (serial.SerialException, OSError) as exc:
            raise DeviceUnavailable(f"cannot open {c.port}: {exc}") from exc
        except ValueError as exc:
            raise DeviceFault(f"{c.port}: the port refuses these settings: {exc}") from exc
        if c.rs485 is not None:
            self._rs485(port, serial)
        port.reset_input_buffer()
        return port

    def _rs485(self, port: Any, serial: Any) -> None:
        rs485 = self.connection.rs485
        assert rs485 is not None
        settings = serial.rs485.RS485Settings(
            rts_level_for_tx=rs485.rts_level_for_tx,
            rts_level_for_rx=rs485.rts_level_for_rx,
            delay_before_tx=rs485.delay_before_tx or None,
            delay_before_rx=rs485.delay_before_rx or None,
        )
        try:
            port.rs485_mode = settings
        except (ValueError, OSError, NotImplementedError) as exc:
            port.close()
            raise DeviceFault(
                f"{self.connection.port}: RS-485 {rs485.mode} mode is not supported here ({exc}); "
                + ("try rs485: {mode: software}" if rs485.mode == "kernel" else "")
            ) from exc

    def _read_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        port = self._serial
        try:
            while not self._stopping.is_set():
                data = port.read(max(1, port.in_waiting))
                if not data:
                    continue
                self.bytes_in += len(data)
                for frame in self.framer.feed(data):
                    loop.call_soon_threadsafe(self._on_frame, frame)
        except Exception as exc:  # any failure of the port ends reading; the driver reopens
            if not self._stopping.is_set():
                error = DeviceUnavailable(f"{self.connection.port}: {exc or type(exc).__name__}")
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(self._on_error, error)

    async def write(self, data: bytes) -> None:
        port = self._serial
        if port is None:
            raise DeviceUnavailable(f"{self.connection.port} is not open")
        try:
            await asyncio.to_thread(self._write, port, data)
        except Exception as exc:
            raise DeviceUnavailable(f"{self.connection.port}: writing failed: {exc}") from exc
        self.bytes_out += len(data)

    @staticmethod
    def _write(port: Any, data: bytes) -> None:
        port.write(data)
        port.flush()

    async def close(self) -> None:
        self._stopping.set()
        port, self._serial = self._serial, None
        thread, self._thread = self._thread, None
        if port is not None:
            try:
                port.cancel_read()
            except Exception:  # not every platform or port type has it; the timeout ends it
                log.debug("cancel_read failed", exc_info=True)
        if thread is not None:
            await asyncio.to_thread(thread.join, 2.0)
        if port is not None:
            try:
                await asyncio.to_thread(port.close)
            except Exception:  # a vanished port may fail to close; it is gone either way
                log.debug("closing %s failed", self.connection.port, exc_info=True)
