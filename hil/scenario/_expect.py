"""Expectations: does what plantd published, stored, or wrote to a device meet a condition in time?

Each target is read through a *probe*: the bus probe hands over every sample that arrived (and
wakes the check when one does); the state and device probes are polled. :func:`check_expect`
runs one expectation in two phases:

1. **within**: observations are checked as they come, until one meets the condition (with
   ``fresh``, only those from after the step began) — or the time bound passes: a failure that
   says what was last seen;
2. **hold** (if given): every observation until the hold ends must still meet it; the first one
   that does not is a failure that says when and what.

Window conditions (``rising``, ``falling``, ``stable``, ``rate``) are judged on the samples in
force over the last ``over`` seconds — the one in force when the window opens (a published value
holds until the next) and every one that arrives in it — first when ``over`` has passed since
the step began, then at every new observation until the time bound (at least ``over``). With
``hold``, every window ending in the hold must meet them too. The per-sample conditions
(``value``, ``min``, ``max``, ``quality``) then apply to each sample in the window.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hil.scenario._schema import Expect

__all__ = ["Observation", "Outcome", "Probe", "check_expect", "judge_window", "unmet"]

_SHOWN = 60
_EPS = 1e-6  # clock comparisons: a wake a hair early must not loop forever


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
    if expect.alarm is not None:
        return _alarm_unmet(expect, obs.value)
    if expect.audit is not None:
        return expect.audit.unmet(obs.value) if isinstance(obs.value, dict) else "no record"
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


def _alarm_unmet(expect: Expect, record: Any) -> str | None:
    """An alarm record (``event.alarm.*`` keys) against state/active/shelved/suppressed."""
    if not isinstance(record, dict):
        return "no alarm record"
    wanted = {
        "state": expect.state,
        "active": expect.active,
        "shelved": expect.shelved,
        "suppressed": expect.suppressed,
    }
    wrong = [
        f"{key} {show(record.get(key))}"
        for key, value in wanted.items()
        if value is not None and record.get(key) != value
    ]
    return ", ".join(wrong) or None


def describe_alarm(record: Any) -> str:
    """``unacknowledged (active, shelved; raised at 4.62)``: an alarm record in brief."""
    if not isinstance(record, dict):
        return show(record)
    flags = [flag for flag in ("active", "shelved", "suppressed") if record.get(flag)]
    transition = record.get("transition")
    if transition:
        value = record.get("value")
        flags.append(f"{transition}" + (f" at {show(value)}" if value is not None else ""))
    return f"{record.get('state')}" + (f" ({', '.join(flags)})" if flags else "")


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
    if isinstance(value, dict) and "alarm" in value and "state" in value:
        return describe_alarm(value)
    if isinstance(value, dict) and "principal" in value and "target" in value:
        return f"{value['principal']} {value['target']} {value.get('result')}"
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
    if expect.windowed:
        return await _check_window(expect, probe, clock)
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


def judge_window(
    expect: Expect, history: Sequence[Observation], t0: float, t1: float
) -> tuple[str | None, str]:
    """(None if the window ``[t0, t1]`` meets the window conditions of ``expect``, else why
    not; what was seen). ``history`` is every observation so far, oldest first."""
    opening = [obs for obs in history if obs.t <= t0][-1:]  # the value in force at t0
    window = opening + [obs for obs in history if t0 < obs.t <= t1]
    span = f"over {t1 - t0:g} s"
    values: list[float] = []
    for obs in window:
        at = f"at t={max(obs.t, t0):.2f} s"
        reason = unmet(expect, obs)
        if reason is not None:
            return f"{reason} {at}", f"{reason} {at}"
        if obs.value is None:
            if expect.allow_bad and obs.quality == "bad":
                continue
            return f"no value {at}", f"no value {at}"
        if isinstance(obs.value, bool) or not isinstance(obs.value, int | float):
            return f"value {show(obs.value)} is not a number", f"{show(obs.value)} {at}"
        values.append(float(obs.value))
    if not values:
        return "nothing was seen", "nothing was seen"
    first, last = values[0], values[-1]
    low, high = min(values), max(values)
    moved = _moved(first, last)
    seen = f"{moved} {span}"
    if expect.rising and not last > first:
        return f"{seen}; expected rising", seen
    if expect.falling and not last < first:
        return f"{seen}; expected falling", seen
    if expect.stable is not None:
        seen = f"varied {show(low)} … {show(high)} (by {show(high - low)}) {span}"
        if high - low > expect.stable + 1e-12:
            return f"{seen}; expected stable within {expect.stable:g}", seen
    if expect.rate is not None:
        rate = expect.rate
        per = (last - first) / (t1 - t0) * rate.per if t1 > t0 else 0.0
        seen = f"changed {show(per)}{rate.unit()} ({moved}) {span}"
        if rate.min is not None and per < rate.min:
            return f"{seen}; expected at least {rate.min:g}{rate.unit()}", seen
        if rate.max is not None and per > rate.max:
            return f"{seen}; expected at most {rate.max:g}{rate.unit()}", seen
    return None, seen


def _moved(first: float, last: float) -> str:
    if last > first:
        return f"rose {show(first)} → {show(last)}"
    if last < first:
        return f"fell {show(first)} → {show(last)}"
    return f"stayed at {show(first)}"


async def _check_window(expect: Expect, probe: Probe, clock: Callable[[], float]) -> Outcome:
    assert expect.over is not None  # the schema requires it with a window condition
    over = expect.over
    start = clock()
    judged_from = start + over
    bound = max(expect.within, over)
    deadline = start + bound
    history: list[Observation] = []
    reason: str | None = "nothing was judged"
    seen = ""
    while True:
        history.extend(probe.take())
        now = clock()
        if now >= judged_from - _EPS:
            reason, seen = judge_window(expect, history, now - over, now)
            if reason is None or now >= deadline - _EPS:
                break
        wake = judged_from if now < judged_from - _EPS else deadline
        await probe.wait(_next_change(history, over, now, wake) - now)
        _forget_before(history, clock() - over)
    took = max(0.0, clock() - start)
    if reason is not None:
        window = f"the window t={now - over:.2f}…{now:.2f} s"
        return Outcome(False, f"{probe.what}: not met within {bound:g} s; {reason} ({window})")
    if expect.hold is None:
        return Outcome(True, f"met after {took:.2f} s: {seen}")
    end = clock() + expect.hold
    checked = 0
    while True:
        now = clock()
        if end - now > _EPS:
            await probe.wait(_next_change(history, over, now, end) - now)
        history.extend(probe.take())
        now = min(clock(), end)
        reason, _ = judge_window(expect, [o for o in history if o.t <= now], now - over, now)
        checked += 1
        if reason is not None:
            return Outcome(
                False,
                f"{probe.what}: met after {took:.2f} s, then broken at t={now:.2f} s: {reason}",
            )
        if now >= end - _EPS:
            return Outcome(
                True,
                f"met after {took:.2f} s and held {expect.hold:g} s ({checked} windows checked)",
            )
        _forget_before(history, now - over)


def _next_change(history: list[Observation], over: float, now: float, wake: float) -> float:
    """``wake``, or sooner when a sample leaves the window: a held value can make (or break) a
    window with nothing new arriving."""
    leaving = [obs.t + over for obs in history if obs.t + over > now + _EPS]
    return min([wake, *leaving])


def _forget_before(history: list[Observation], t0: float) -> None:
    """Drop what no later window needs: all before the last observation at or before ``t0``."""
    opening = max((i for i, obs in enumerate(history) if obs.t <= t0), default=0)
    del history[:opening]


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
