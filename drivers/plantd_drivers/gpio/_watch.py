"""Watching an input line: one thread per line waits for edges and debounces them.

The thread blocks in ``Line.wait_edge`` (the kernel wakes it: no busy polling) for at most the
time until the debouncer's deadline, feeds every raw edge queued so far to the
:class:`Debouncer`, then asks it for a settled change (the deadline passed), and hands each
change to the event loop with ``call_soon_threadsafe``. A failing line ends the thread after
handing the loop the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

from plantd.errors import DeviceUnavailable
from plantd_drivers.gpio._chip import Chip, Line
from plantd_drivers.gpio._config import GpioPoint
from plantd_drivers.gpio._debounce import Change, Debouncer, RateWindow

__all__ = ["Watcher"]

_IDLE_WAIT = 0.25  # seconds: how often an idle thread looks at its stop flag


class Watcher:
    def __init__(self, point: GpioPoint, line: Line, chip: Chip, level: bool) -> None:
        self.point = point
        self.line = line
        self.chip = chip
        self.debouncer = Debouncer(round(point.debounce * 1e9), level)
        self.count = 0  # counted pulses (counters)
        self.windows: list[tuple[GpioPoint, RateWindow]] = []  # rates derived from it
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        on_change: Callable[[Watcher, Change], None],
        on_error: Callable[[DeviceUnavailable], None],
    ) -> None:
        self._thread = threading.Thread(
            target=self._run,
            args=(loop, on_change, on_error),
            name=f"gpio {self.point.name}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> threading.Thread | None:
        self._stopping.set()
        return self._thread

    def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        on_change: Callable[[Watcher, Change], None],
        on_error: Callable[[DeviceUnavailable], None],
    ) -> None:
        debouncer, chip, line = self.debouncer, self.chip, self.line
        try:
            while not self._stopping.is_set():
                deadline = debouncer.deadline()
                wait = _IDLE_WAIT
                if deadline is not None:
                    wait = min(wait, max(0.0, (deadline - chip.now_ns()) / 1e9))
                edge = line.wait_edge(wait)
                while edge is not None:
                    change = debouncer.edge(edge.rising, edge.timestamp_ns)
                    if change is not None:
                        loop.call_soon_threadsafe(on_change, self, change)
                    # Take every edge already queued before asking whether the level settled:
                    # a burst read one edge at a time would look settled after its first edge.
                    edge = line.wait_edge(0)
                change = debouncer.poll(chip.now_ns())
                if change is not None:
                    loop.call_soon_threadsafe(on_change, self, change)
        except Exception as exc:  # the line or the chip failed: the driver reopens
            if not self._stopping.is_set():
                error = DeviceUnavailable(f"line {self.point.line} ({self.point.name}): {exc}")
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(on_error, error)
