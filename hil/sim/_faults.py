"""Faults a simulated device can be given at run time, as one value whoever asks for it.

The same :class:`Fault` comes from a scenario step (``inject: {device: field, unit: 2, fault:
silent, duration: 3s}``), from the control service (``plant sim inject pump-station field
silent --unit 2 --duration 3s``) or from Python (``runner.inject(Fault(...))``).

==============  =============================================================================
``silent``      the unit (every unit, without ``unit``) stops answering
``exception``   every request answered with exception ``code`` (default 4, device failure)
``slow``        answers held back ``delay`` seconds
``garbage``     answers replaced by noise of the same length
``bad-crc``     answers with a broken CRC (RTU framings only); with ``count``, a burst
``short``       answers carrying fewer registers than asked for
``malformed``   answers whose byte count promises more than they carry
``swapped``     register pairs swapped in every answer (the other word order)
``frozen``      answers, but the values stop moving (a stuck device)
``hang``        the whole device accepts connections and answers nothing
``drop``        open TCP connections are cut (the device keeps listening)
``restart``     the device (or one unit) goes away for ``downtime`` and comes back with its
                written values reset, unless ``retain``
==============  =============================================================================

``count`` limits an answer fault to the next ``count`` answers; ``duration`` heals any fault
after that long. Without either, a fault lasts until healed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Literal

from plantd.config import Duration, Ge, Gt, KeyPath, Le

__all__ = ["ANSWER_FAULTS", "Fault", "FaultKind", "Heal"]

FaultKind = Literal[
    "silent", "exception", "slow", "garbage", "bad-crc", "short", "malformed", "swapped",
    "frozen", "hang", "drop", "restart",
]  # fmt: skip
ANSWER_FAULTS = frozenset({"silent", "garbage", "bad-crc", "short", "malformed", "swapped"})


@dataclass(frozen=True, kw_only=True)
class Fault:
    device: str
    fault: FaultKind
    unit: Annotated[int, Ge(0), Le(255)] | None = None
    code: Annotated[int, Ge(1), Le(255)] | None = None
    delay: Annotated[float, Duration, Gt(0)] | None = None
    count: Annotated[int, Ge(1)] | None = None
    duration: Annotated[float, Duration, Gt(0)] | None = None
    downtime: Annotated[float, Duration, Ge(0)] = 1.0
    retain: bool = False

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if self.code is not None and self.fault != "exception":
            yield ("code",), f"code is for fault exception, not {self.fault}"
        if self.fault == "slow" and self.delay is None:
            yield ("delay",), "fault slow needs delay (seconds each answer is held back)"
        if self.delay is not None and self.fault != "slow":
            yield ("delay",), f"delay is for fault slow, not {self.fault}"
        if self.count is not None and self.fault not in ANSWER_FAULTS | {"exception"}:
            yield ("count",), f"count limits answer faults; {self.fault} is not one"
        if self.fault in ("hang", "drop") and self.unit is not None:
            yield ("unit",), f"{self.fault} applies to the whole device, not to one unit"
        if self.fault == "restart" and self.duration is not None:
            yield ("duration",), "a restart lasts its downtime; use downtime"

    def describe(self) -> str:
        where = self.device + (f" unit {self.unit}" if self.unit is not None else "")
        details = [
            f"code {self.code}" if self.code is not None else "",
            f"delay {self.delay:g} s" if self.delay is not None else "",
            f"next {self.count} answers" if self.count is not None else "",
            f"for {self.duration:g} s" if self.duration is not None else "",
            f"down {self.downtime:g} s" if self.fault == "restart" else "",
        ]
        extra = ", ".join(d for d in details if d)
        return f"{self.fault} on {where}" + (f" ({extra})" if extra else "")


@dataclass(frozen=True, kw_only=True)
class Heal:
    """Clear the faults of ``device`` (every device if None), or of one unit of it."""

    device: str | None = None
    unit: Annotated[int, Ge(0), Le(255)] | None = None

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if self.unit is not None and self.device is None:
            yield ("unit",), "unit needs device"
