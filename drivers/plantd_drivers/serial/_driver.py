"""The serial instrument driver: the module door over a :class:`SerialPort`.

Theory of operation. Every frame the port delivers goes to :meth:`SerialDriver._on_frame`:

1. if a query is waiting for its answer and the frame is its group's, it is the answer;
2. otherwise every stream group whose ``match`` finds the frame takes it: its points' last
   values are updated and the readings are handed to the group's stream;
3. a frame nobody takes is counted (``unmatched``): an echo, a prompt, or noise.

Queries are one at a time per port (a lock): send, then wait up to ``timeout`` for a frame of
the group. No frame at all in that time means the instrument is not answering:
DeviceUnavailable (the port is reopened after backoff, which also clears a confused
adapter). Frames that came but were not the answer mean it answered something else:
DeviceFault with what it said. A frame that matches but fails its checksum is never used
(``rejected``); a query that only got such frames fails with DeviceFault.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from plantd.bus import SampleValue
from plantd.errors import DeviceFault, DeviceUnavailable
from plantd.module import ModuleConfig, Reading
from plantd.streams import Fanout
from plantd_drivers.serial._config import SerialGroup, SerialModule, SerialPoint
from plantd_drivers.serial._extract import Extractor, Rejected
from plantd_drivers.serial._port import SerialPort

__all__ = ["SerialDriver"]


class _Query:
    def __init__(self, extractor: Extractor) -> None:
        self.extractor = extractor
        self.answer: asyncio.Future[dict[str, Reading]] = asyncio.get_running_loop().create_future()
        self.other: list[str] = []


class SerialDriver:
    """The ``serial`` driver: an ASCII instrument on a serial port (scale, gas analyser, GPS
    receiver, SCPI meter), its frames turned into points.

    Config (:class:`SerialModule`): ``connection`` is the port and its framing (``port``,
    ``baudrate``, ``parity``, ``terminator``, ``rs485``…); each group is ``mode: query`` (a
    ``query`` sent every interval, the answer awaited) or ``stream`` (frames the instrument
    sends by itself), and its points take values from a frame that matches the group's
    ``match`` by ``capture`` group or ``field`` (see :mod:`plantd_drivers.serial._config`).

    - read: a query group asks now and waits for the answer; a stream group answers the last
      frame's values (bad until one came since the port opened).
    - write: none; every point is read from the instrument.
    - stream (``stream`` groups): each matching frame's readings as it comes; a stalled
      consumer loses the oldest (1000 kept). The stream raises DeviceUnavailable when the port
      fails or is closed.
    """

    config_type: ClassVar[type[ModuleConfig]] = SerialModule

    def __init__(self, config: SerialModule) -> None:
        self.config = config
        # A relative port is relative to the module file, as every path in it is.
        port = config.resolve_path(config.connection.port)
        self.connection = dataclasses.replace(config.connection, port=port)
        self.extractors = {g.name: Extractor(g) for g in config.groups}
        self.last: dict[str, dict[str, Reading]] = {g.name: {} for g in config.groups}
        self.port: SerialPort | None = None
        self.failure: DeviceUnavailable | None = None
        self.opened = 0
        self.unmatched = 0
        self.rejected = 0
        self.last_rejection: str | None = None
        # Group name → its streams' feeds; a stalled consumer loses the oldest frames' readings
        # (1000 kept each), not the newest, and never holds up the port.
        self._streams: Fanout[str, dict[str, Reading]] = Fanout(maxsize=1000)
        self._query: _Query | None = None
        self._lock = asyncio.Lock()

    # -- the door --------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the port and start reading frames from it (DeviceUnavailable if it cannot)."""
        await self.close()
        port = SerialPort(self.connection, self._on_frame, self._on_error)
        await port.open()
        self.port, self.failure = port, None
        self.opened += 1

    async def close(self) -> None:
        """Close the port; a waiting query and the streams end with DeviceUnavailable.
        Idempotent."""
        port, self.port = self.port, None
        if port is not None:
            self._fail(DeviceUnavailable(f"{self.connection.port} was closed"))
            await port.close()

    async def read(self, group: SerialGroup) -> dict[str, Reading]:
        """A query group: send its query and wait (``timeout``) for the answer —
        DeviceUnavailable if nothing came, DeviceFault if only other frames did. A stream
        group: the values of the last frames it took."""
        self._check()
        if group.mode == "stream":
            return self.last[group.name] or {
                p.name: Reading.bad("no frame of this group received since the port opened")
                for p in group.points
            }
        return await self._ask(group)

    async def write(self, point: SerialPoint, value: Any) -> SampleValue:
        """Always ValueError: serial points are read, never written."""
        raise ValueError(f"point {point.name!r} is read from the instrument and cannot be written")

    def pushes(self, group: SerialGroup) -> bool:
        """``stream`` groups are streamed; ``query`` groups are asked every interval."""
        return group.mode == "stream"

    async def stream(self, group: SerialGroup) -> AsyncIterator[dict[str, Reading]]:
        """The readings of each frame of ``group`` as it arrives (frames that fail their
        checksum are dropped and counted); raises DeviceUnavailable when the port fails or
        closes."""
        self._check()
        with self._streams.subscribe(group.name) as feed:
            async for batch in feed:
                yield batch
        self._check()  # the feed ended: the port was closed or failed, say which

    def status(self) -> dict[str, Any]:
        """The port, how often it was opened, frames and bytes through it, and frames that
        matched no group or were rejected (the last rejection's reason)."""
        port = self.port
        return {
            "port": self.connection.port,
            "open": port is not None,
            "opened": self.opened,
            "frames": port.framer.frames if port else 0,
            "discarded_bytes": port.framer.discarded if port else 0,
            "bytes_in": port.bytes_in if port else 0,
            "bytes_out": port.bytes_out if port else 0,
            "unmatched_frames": self.unmatched,
            "rejected_frames": self.rejected,
            "last_rejection": self.last_rejection,
            "failure": str(self.failure) if self.failure else None,
        }

    # -- queries ---------------------------------------------------------------------------------

    async def _ask(self, group: SerialGroup) -> dict[str, Reading]:
        assert group.query is not None
        timeout = group.timeout or self.connection.timeout
        async with self._lock:
            port = self._check()
            query = self._query = _Query(self.extractors[group.name])
            try:
                await port.write(group.query.encode(self.connection.encoding))
                async with asyncio.timeout(timeout):
                    readings = await query.answer
            except TimeoutError:
                if query.other:
                    raise DeviceFault(
                        f"query {group.query!r}: the answer did not match the group "
                        f"({len(query.other)} frame(s), the last {query.other[-1][:80]!r})"
                    ) from None
                raise DeviceUnavailable(
                    f"{self.connection.port}: no answer to {group.query!r} within {timeout:g} s"
                ) from None
            finally:
                self._query = None
        self.last[group.name] = readings
        return readings

    # -- frames from the port (called in the event loop) ------------------------------------------

    def _on_frame(self, frame: str) -> None:
        query = self._query
        if query is not None and not query.answer.done():
            result = query.extractor.extract(frame)
            if isinstance(result, dict):
                query.answer.set_result(result)
                return
            if isinstance(result, Rejected):
                self._rejected(result)
                query.other.append(frame)
                return
        if self._to_streams(frame):
            return
        if query is not None and not query.answer.done():
            query.other.append(frame)  # an answer, but not the one asked for
        else:
            self.unmatched += 1

    def _to_streams(self, frame: str) -> bool:
        """Hand ``frame`` to every stream group it belongs to; False if none takes it."""
        taken = False
        for group in self.config.groups:
            if group.mode != "stream":
                continue
            result = self.extractors[group.name].extract(frame)
            if result is None:
                continue
            taken = True
            if isinstance(result, Rejected):
                self._rejected(result)
                continue
            self.last[group.name] = {**self.last[group.name], **result}
            self._streams.publish(group.name, result)
        return taken

    def _rejected(self, rejected: Rejected) -> None:
        self.rejected += 1
        self.last_rejection = rejected.reason

    def _on_error(self, error: DeviceUnavailable) -> None:
        self._fail(error)

    def _fail(self, error: DeviceUnavailable) -> None:
        if self.failure is None:
            self.failure = error
        query = self._query
        if query is not None and not query.answer.done():
            query.answer.set_exception(error)
        self._streams.end()

    def _check(self) -> SerialPort:
        if self.failure is not None:
            raise self.failure
        if self.port is None:
            raise DeviceUnavailable(f"{self.connection.port} is not open")
        return self.port
