"""Expectations: does what plantd published, stored, or wrote to a device meet a condition in time?

Each target is read through a *probe*: the bus probe hands over every sample that arrived (and
wakes the check when one does); the state and device probes are polled. :func:`check_expect`
runs one expectation in two phases:

1. **within**: observations are checked as they come, until one meets the condition (with
   ``fresh``, only those from after the step began) — or the time bound passes: a failure that
   says what was last seen;
2. **hold** (if given): every observation until the hold ends must still meet it; the first one
   that does not is a failure that says when and what.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from hil.scenario._schema import Expect

__all__ = ["Observation", "Outcome", "Probe", "check_expect", "unmet"]

_SHOWN = 60


@dataclass(frozen=True, slots=True)
class Observation:
    t: float
    value: Any
    quality: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    message: str


class Probe(Protocol):
    what: str
    """How the target is named in messages (``data.field.flow``, ``stored field.flow``)."""

    def take(self) -> list[Observation]:
        """What is new since the last call (the latest value, for polled probes)."""
        ...

    async def wait(self, timeout: float) -> None:
        """Until there may be something new, or ``timeout`` seconds."""
        ...


def unmet(expect: Expect, obs: Observation) -> str | None:
    """None if ``obs`` meets the conditions of ``expect``, else why not."""
    value, quality = obs.value, obs.quality
    if expect.quality is not None and quality != expect.quality:
        return f"quality {quality}"
    valued = expect.value is not None or expect.min is not None or expect.max is not None
    if not valued:
        return None
    if value is None:
        return None if expect.allow_bad and quality == "bad" else "no value"
    if expect.value is not None and not _equal(value, expect.value, expect.tolerance):
        return f"value {show(value)}"
    if expect.min is not None or expect.max is not None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"value {show(value)} is not a number"
        if expect.min is not None and value < expect.min:
            return f"value {show(value)} below {expect.min:g}"
        if expect.max is not None and value > expect.max:
            return f"value {show(value)} above {expect.max:g}"
    return None


def _equal(found: Any, wanted: Any, tolerance: float) -> bool:
    numbers = (int, float)
    if isinstance(found, bool) or isinstance(wanted, bool):
        return isinstance(found, bool) and isinstance(wanted, bool) and found == wanted
    if isinstance(found, numbers) and isinstance(wanted, numbers):
        return math.isclose(found, wanted, rel_tol=1e-9, abs_tol=tolerance + 1e-12)
    return bool(found == wanted)


def show(value: Any) -> str:
    if value is None:
        return "no value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _seen(obs: Observation | None, count: int) -> str:
    if obs is None:
        return "nothing was seen"
    quality = f" ({obs.quality})" if obs.quality else ""
    return f"last seen {show(obs.value)}{quality} at t={obs.t:.2f} s; {count} observation(s)"


async def check_expect(expect: Expect, probe: Probe, clock: Callable[[], float]) -> Outcome:
    start = clock()
    deadline = start + expect.within
    last: Observation | None = None
    count = 0
    met: Observation | None = None
    later: list[Observation] = []  # what came after the one that met it, in the same batch
    while met is None:
        batch = probe.take()
        for index, obs in enumerate(batch):
            count += 1
            last = obs
            if expect.fresh and obs.t < start:
                continue
            if unmet(expect, obs) is None:
                met, later = obs, batch[index + 1 :]
                break
        if met is not None:
            break
        remaining = deadline - clock()
        if remaining <= 0:
            why = f"; {unmet(expect, last)}" if last is not None and unmet(expect, last) else ""
            if expect.fresh and last is not None and last.t < start:
                why = "; nothing new was published"
            return Outcome(
                False,
                f"{probe.what}: not met within {expect.within:g} s{why} ({_seen(last, count)})",
            )
        await probe.wait(remaining)
    took = max(0.0, clock() - start)
    if expect.hold is None:
        quality = f" ({met.quality})" if met.quality and met.quality != "good" else ""
        return Outcome(True, f"met after {took:.2f} s: {show(met.value)}{quality}")
    end = clock() + expect.hold
    held = 0
    while later or (remaining := end - clock()) > 0:
        if not later:
            await probe.wait(remaining)
        batch, later = later or probe.take(), []
        for obs in batch:
            held += 1
            reason = unmet(expect, obs)
            if reason is not None and obs.t <= end:
                return Outcome(
                    False,
                    f"{probe.what}: met after {took:.2f} s, then broken at t={obs.t:.2f} s: "
                    f"{reason}" + (f" ({obs.quality})" if obs.quality else ""),
                )
    return Outcome(True, f"met after {took:.2f} s and held {expect.hold:g} s ({held} checked)")


class PolledProbe:
    """A probe that reads its target every ``interval`` seconds."""

    def __init__(
        self, what: str, read: Callable[[], Observation | None], *, interval: float = 0.05
    ) -> None:
        self.what = what
        self._read = read
        self.interval = interval

    def take(self) -> list[Observation]:
        obs = self._read()
        return [] if obs is None else [obs]

    async def wait(self, timeout: float) -> None:
        await asyncio.sleep(min(self.interval, max(0.0, timeout)))
