"""The seam between the GPIO driver and the hardware: a chip that hands out lines.

Two implementations: :class:`~plantd_drivers.gpio._periphery.CdevChip` (python-periphery on the
Linux GPIO character device, also what the kernel's gpio-sim presents) and the rig's
``hil.gpio.SimulatedChip`` (in-process, with a clock the test moves, so that bounce tests
are exact); a module file picks one by ``connection.backend`` through the ``plantd.gpio_chips``
entry points (:mod:`plantd_drivers.gpio._backends`), a test hands its own to the driver. Both
take the same requests and report edges the same way:

- values are *logical*: with ``active_low`` the chip inverts, so ``True`` means active;
- an :class:`Edge` says whether the logical level rose or fell, and when, in nanoseconds of
  the chip's clock (``CLOCK_MONOTONIC`` for the character device), which :meth:`Chip.now_ns`
  reads and :meth:`Chip.to_unix` converts to a Unix time for samples;
- calls block (a real chip's do, briefly): the driver calls them from its own threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["Bias", "Chip", "Drive", "Edge", "EdgeKind", "Line"]

Bias = Literal["default", "pull_up", "pull_down", "disable"]
Drive = Literal["push_pull", "open_drain", "open_source"]
EdgeKind = Literal["none", "rising", "falling", "both"]


@dataclass(frozen=True, slots=True)
class Edge:
    rising: bool
    timestamp_ns: int


class Line(Protocol):
    def read(self) -> bool: ...

    def write(self, value: bool) -> None: ...

    def wait_edge(self, timeout: float) -> Edge | None:
        """The next edge, or None when ``timeout`` seconds passed (or the chip's clock moved)."""
        ...

    def close(self) -> None: ...


class Chip(Protocol):
    def now_ns(self) -> int: ...

    def to_unix(self, timestamp_ns: int) -> float: ...

    def request_input(
        self, offset: int, *, edge: EdgeKind, bias: Bias, active_low: bool, label: str
    ) -> Line: ...

    def request_output(
        self, offset: int, *, value: bool, drive: Drive, active_low: bool, label: str
    ) -> Line: ...

    def close(self) -> None: ...
