"""The chip as the kernel has it: python-periphery's ``CdevGPIO`` on ``/dev/gpiochipN``.

Edge events come from the character device and ``poll`` waits for them without busy polling.
periphery asks the kernel (GPIO uAPI v2) to stamp them with CLOCK_REALTIME; on the old v1
uAPI they are CLOCK_MONOTONIC (kernels from 5.7), and :class:`CdevChip` reads the same clock.
This is also what the kernel's gpio-sim module presents, so the same code is tested against
it where the kernel has gpio-sim.
"""

from __future__ import annotations

import time
from typing import Any

from plantd.errors import DeviceFault, DeviceUnavailable
from plantd_drivers.gpio._chip import Bias, Drive, Edge, EdgeKind

__all__ = ["CdevChip"]


class CdevLine:
    def __init__(self, gpio: Any) -> None:
        self._gpio = gpio

    def read(self) -> bool:
        return bool(self._gpio.read())

    def write(self, value: bool) -> None:
        self._gpio.write(value)

    def wait_edge(self, timeout: float) -> Edge | None:
        if not self._gpio.poll(timeout):
            return None
        event = self._gpio.read_event()
        return Edge(event.edge == "rising", int(event.timestamp))

    def close(self) -> None:
        self._gpio.close()


class CdevChip:
    def __init__(self, path: str) -> None:
        from periphery import gpio

        self.path = path
        self.realtime = gpio.CdevGPIO.__name__ == "Cdev2GPIO"

    def now_ns(self) -> int:
        return time.time_ns() if self.realtime else time.monotonic_ns()

    def to_unix(self, timestamp_ns: int) -> float:
        if self.realtime:
            return timestamp_ns / 1e9
        return time.time() - (time.monotonic_ns() - timestamp_ns) / 1e9

    def request_input(
        self, offset: int, *, edge: EdgeKind, bias: Bias, active_low: bool, label: str
    ) -> CdevLine:
        return self._request(offset, "in", edge=edge, bias=bias, inverted=active_low, label=label)

    def request_output(
        self, offset: int, *, value: bool, drive: Drive, active_low: bool, label: str
    ) -> CdevLine:
        # periphery's "high"/"low" directions are physical; the logical value is what we hold.
        physical = value != active_low
        return self._request(
            offset,
            "high" if physical else "low",
            drive="default" if drive == "push_pull" else drive,
            inverted=active_low,
            label=label,
        )

    def _request(self, offset: int, direction: str, **options: Any) -> CdevLine:
        from periphery import GPIOError
        from periphery.gpio import CdevGPIO

        try:
            return CdevLine(CdevGPIO(self.path, offset, direction, **options))
        except GPIOError as exc:
            if exc.errno == 16:  # EBUSY: another consumer holds the line
                raise DeviceFault(f"{self.path} line {offset} is in use: {exc}") from exc
            raise DeviceUnavailable(f"{self.path} line {offset}: {exc}") from exc

    def close(self) -> None:
        """Lines are released one by one (``Line.close``); the chip holds nothing itself."""
