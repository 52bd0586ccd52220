"""A simulated GPIO chip at the driver's seam (:class:`plantd_drivers.gpio.Chip`).

    chip = SimulatedChip()                        # a clock that moves only when told to
    driver = GpioDriver(module, chip=chip)
    chip.set_input(17, False)                     # the physical level on line 17
    chip.bounce(17, True, edges=7, spacing=0.0005)  # a contact closing: 7 edges, 0.5 ms apart
    chip.advance(0.05)                            # 50 ms pass: the debounce settles
    chip.output(22)                               # the physical level the driver drives

Levels set and read here are *physical* (what a probe would measure); a line requested with
``active_low`` sees them inverted, as on a real chip. With the default virtual clock every
edge carries an exact timestamp and time passes only in :meth:`advance`, so debounce tests are
deterministic; ``realtime=True`` uses the monotonic clock instead (for demos). :meth:`fail`
makes every line fail as if the chip had gone away.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from plantd_drivers.gpio import Edge

from plantd.errors import DeviceFault

__all__ = ["SimulatedChip", "realtime_chip"]


@dataclass
class _Request:
    offset: int
    output: bool
    edge: str
    active_low: bool
    events: deque[Edge] = field(default_factory=deque)


class SimulatedLine:
    def __init__(self, chip: SimulatedChip, request: _Request) -> None:
        self._chip = chip
        self._request = request

    def read(self) -> bool:
        with self._chip._cond:
            self._chip._check()
            return self._chip.physical.get(self._request.offset, False) != self._request.active_low

    def write(self, value: bool) -> None:
        with self._chip._cond:
            self._chip._check()
            if not self._request.output:
                raise OSError("cannot write an input line")
            self._chip.physical[self._request.offset] = value != self._request.active_low
            self._chip.writes.append((self._request.offset, value != self._request.active_low))

    def wait_edge(self, timeout: float) -> Edge | None:
        chip = self._chip
        with chip._cond:
            chip._check()
            if not self._request.events:
                chip._cond.wait(timeout)  # woken by an edge, by advance(), or by fail()
                chip._check()
            return self._request.events.popleft() if self._request.events else None

    def close(self) -> None:
        with self._chip._cond:
            self._chip.requests.pop(self._request.offset, None)


class SimulatedChip:
    def __init__(self, lines: int = 64, *, realtime: bool = False) -> None:
        self.lines = lines
        self.realtime = realtime
        self.physical: dict[int, bool] = {}
        self.requests: dict[int, _Request] = {}
        self.writes: list[tuple[int, bool]] = []  # (offset, physical level), in order
        self.failure: str | None = None
        self._cond = threading.Condition()
        self._now = 1_000_000_000
        self._unix0 = time.time()

    # -- the seam ----------------------------------------------------------------------------------

    def now_ns(self) -> int:
        return time.monotonic_ns() if self.realtime else self._now

    def to_unix(self, timestamp_ns: int) -> float:
        if self.realtime:
            return time.time() - (time.monotonic_ns() - timestamp_ns) / 1e9
        return self._unix0 + (timestamp_ns - 1_000_000_000) / 1e9

    def request_input(
        self, offset: int, *, edge: str, bias: str, active_low: bool, label: str
    ) -> SimulatedLine:
        with self._cond:
            if offset not in self.physical:
                self.physical[offset] = bias == "pull_up"
            return self._request(_Request(offset, False, edge, active_low))

    def request_output(
        self, offset: int, *, value: bool, drive: str, active_low: bool, label: str
    ) -> SimulatedLine:
        with self._cond:
            line = self._request(_Request(offset, True, "none", active_low))
            self.physical[offset] = value != active_low
            self.writes.append((offset, value != active_low))
            return line

    def close(self) -> None:
        """Nothing to release: lines are released one by one."""

    # -- the test's side ---------------------------------------------------------------------------

    def set_input(self, offset: int, level: bool) -> None:
        """Drive input ``offset`` to physical ``level`` now (an edge if it changes)."""
        with self._cond:
            self._set(offset, level, self.now_ns())
            self._cond.notify_all()

    def bounce(self, offset: int, final: bool, *, edges: int, spacing: float) -> None:
        """A bouncing contact: ``edges`` alternating edges ``spacing`` s apart, ending at
        ``final`` (``edges`` odd for a real change, even for a glitch that settles back)."""
        with self._cond:
            level = not final if edges % 2 else final
            for index in range(edges):
                level = not level
                if index:
                    self._tick(spacing)
                self._set(offset, level, self.now_ns())
            self._cond.notify_all()

    def pulses(self, offset: int, count: int, *, period: float, high: float) -> None:
        """``count`` clean pulses (rising then falling) every ``period`` s, ``high`` s wide."""
        with self._cond:
            for _ in range(count):
                self._set(offset, True, self.now_ns())
                self._tick(high)
                self._set(offset, False, self.now_ns())
                self._tick(period - high)
            self._cond.notify_all()

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of (virtual) time pass."""
        with self._cond:
            self._tick(seconds)
            self._cond.notify_all()

    def output(self, offset: int) -> bool:
        """The physical level of line ``offset``."""
        with self._cond:
            return self.physical.get(offset, False)

    def fail(self, reason: str = "the chip went away") -> None:
        with self._cond:
            self.failure = reason
            self._cond.notify_all()

    def repair(self) -> None:
        with self._cond:
            self.failure = None
            self.requests.clear()

    # -- inside ------------------------------------------------------------------------------------

    def _request(self, request: _Request) -> SimulatedLine:
        self._check()
        if not 0 <= request.offset < self.lines:
            raise OSError(f"line {request.offset} does not exist (the chip has {self.lines})")
        if request.offset in self.requests:
            raise DeviceFault(f"line {request.offset} is in use")
        self.requests[request.offset] = request
        return SimulatedLine(self, request)

    def _set(self, offset: int, level: bool, at_ns: int) -> None:
        if self.physical.get(offset, False) == level:
            return
        self.physical[offset] = level
        request = self.requests.get(offset)
        if request is None or request.output or request.edge == "none":
            return
        rising = level != request.active_low
        if request.edge == "both" or (request.edge == "rising") == rising:
            request.events.append(Edge(rising, at_ns))

    def _tick(self, seconds: float) -> None:
        if self.realtime:
            time.sleep(seconds)
        else:
            self._now += round(seconds * 1e9)

    def _check(self) -> None:
        if self.failure is not None:
            raise OSError(self.failure)


def realtime_chip(path: str) -> SimulatedChip:
    """The ``simulated`` GPIO back end (entry point ``plantd.gpio_chips``): a simulated chip on
    the monotonic clock, for demos and tests that run a whole module; ``path`` is not used."""
    return SimulatedChip(realtime=True)
