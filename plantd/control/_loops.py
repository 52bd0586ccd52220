"""The loop engine: PID loops on fixed schedules, interlocks that hold outputs, sans-IO.

Theory of operation
-------------------
The process feeds samples in (:meth:`LoopEngine.observe`), the interlocks' evaluated
conditions (:meth:`~LoopEngine.set_condition`) and operator requests; it calls
:meth:`~LoopEngine.step` at :meth:`~LoopEngine.next_due` and sends the writes it returns,
reporting each result back with :meth:`~LoopEngine.write_done`. Every call takes ``now``.

**Schedule.** Loop *i* runs at ``start + k·period`` (``start`` = the engine's creation time);
the next tick is computed from ``k``, never by adding to the last run time, so it does not
drift. A step that comes more than a period late skips the missed ticks (each counts as an
overrun) instead of running them back to back. The PID's ``dt`` is the real time since its
last run. A manual output change or an interlock trip makes the engine due at once.

**Modes.** The operator's mode is ``auto`` or ``manual``; what a loop does (its reported
mode) is, by precedence: ``tracking`` while an interlock holds its output (no writes; the PID
follows the safe value, so the loop resumes bumplessly when the interlock is released, and a
loop in manual then holds the safe value as its manual output); ``failed`` while in auto with
a bad measurement and ``on_failure`` hold/safe; else the operator's mode.

**Failure** (checked at each tick in auto): no value (only after ``stale_after`` from start:
a loop waits quietly for its first sample), quality not GOOD, not a finite number, or older
than ``stale_after`` by its source timestamp; for a setpoint that follows a point, that point
never having had a good number (its last good value is kept otherwise). ``hold``: no writes,
output held. ``safe``: ``failure_output`` is written once (retried if the write fails).
``manual``: the operator mode becomes manual with the output held; it stays manual when the
measurement recovers (someone must look). After hold/safe, a good measurement returns the loop
to auto at once, bumplessly from the held/safe output.

**Writes.** At most one per loop per step: in auto, only when the output moved more than
``write_deadband`` since the last write, or it is the first write since start, a mode change
or a failed write; in manual, whenever the manual output differs from the last one written
(an operator's value is never swallowed by the deadband). Before its first write a loop that
has seen a sample of its own output point starts from that value (bumpless start). A write
that fails gives a ``write-failed`` event and is sent again at the next tick (an interlock's
after ``retry_interval``, while it still holds). One write per loop/interlock is in flight at
a time: until its :meth:`~LoopEngine.write_done` comes back, no other is returned for it (the
next tick compares with the value in flight), so every returned write must be answered.

**Time.** ``now`` is wall time (Unix seconds, ``Clock.now()``): staleness compares it with
the samples' source timestamps.

**Events** (``event.control.<name>`` records). Loop: ``name, kind="loop", transition, time,
mode, output, setpoint, reason, by``; transitions ``mode``, ``setpoint``, ``output``,
``failed``, ``recovered``, ``tracking``, ``released``, ``write-failed``. Interlock: ``name,
kind="interlock", transition, time, state, output`` (the point), ``safe_value, reason, by``;
transitions ``tripped``, ``cleared``, ``reset``, ``write-failed`` (see ``_interlock``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from plantd.bus import Sample
from plantd.control._interlock import ControlError, Interlock
from plantd.control._loop_config import InterlockConfig, LoopConfig, split_point
from plantd.control._loop_state import Loop, number
from plantd.errors import ConfigError

__all__ = ["ControlError", "LoopEngine", "Write"]


@dataclass(frozen=True, slots=True)
class Write:
    """A value to write to ``module``'s ``point`` on behalf of loop/interlock ``source``."""

    source: str
    module: str
    point: str
    value: Any
    kind: Literal["loop", "interlock"] = "loop"


class _Held:
    """An interlock and the delivery of its safe value."""

    def __init__(self, config: InterlockConfig) -> None:
        self.config = config
        self.interlock = Interlock(config.name, config.output, config.safe_value, config.reset)
        self.write_due: float | None = None
        self.in_flight = False
        self.last_write_time: float | None = None
        self.last_write_error: str | None = None


def _config_problems(
    loops: Sequence[LoopConfig], interlocks: Sequence[InterlockConfig]
) -> list[str]:
    problems: list[str] = []
    for kind, names in (
        ("loop", [c.name for c in loops]),
        ("interlock", [c.name for c in interlocks]),
    ):
        problems += [
            f"{kind} {n!r} is defined more than once"
            for n in sorted(set(names))
            if names.count(n) > 1
        ]
    outputs = [c.output for c in loops]
    problems += [
        f"output {o!r} is written by more than one loop"
        for o in sorted(set(outputs))
        if outputs.count(o) > 1
    ]
    problems += [
        f"interlock {c.name!r}: safe_value must be a number, {c.output!r} is a loop's output"
        for c in interlocks
        if c.output in outputs and number(c.safe_value) is None
    ]
    return problems


class LoopEngine:
    """Every loop and interlock of the control process (see the module docstring)."""

    def __init__(
        self,
        loops: Sequence[LoopConfig],
        interlocks: Sequence[InterlockConfig],
        now: float,
        *,
        retry_interval: float = 1.0,
    ) -> None:
        if problems := _config_problems(loops, interlocks):
            raise ConfigError(problems)
        self.retry_interval = retry_interval
        self._loops = {c.name: Loop(c, now) for c in loops}
        self._held = {c.name: _Held(c) for c in interlocks}
        self._readers: dict[str, list[Loop]] = {}
        for loop in self._loops.values():
            for point in loop.points:
                self._readers.setdefault(point, []).append(loop)
        self.inputs = frozenset(self._readers)

    # -- inputs ------------------------------------------------------------------------

    def observe(self, point: str, sample: Sample) -> None:
        for loop in self._readers.get(point, ()):
            loop.observe(point, sample)

    def set_condition(self, interlock: str, tripped: bool, now: float) -> list[dict[str, Any]]:
        held = self._interlock(interlock)
        events = held.interlock.set_condition(tripped, now)
        if any(event["transition"] == "tripped" for event in events):
            held.write_due = now
        return events + self._update_tracking(now)

    def reset(self, interlock: str, by: str, now: float) -> list[dict[str, Any]]:
        events = self._interlock(interlock).interlock.reset(by, now)
        return events + self._update_tracking(now)

    def _update_tracking(self, now: float) -> list[dict[str, Any]]:
        """Put loops whose output an interlock holds in tracking, and release the others."""
        events: list[dict[str, Any]] = []
        for loop in self._loops.values():
            holder = next(
                (
                    h
                    for h in self._held.values()
                    if h.interlock.holding and h.config.output == loop.config.output
                ),
                None,
            )
            if holder is not None and loop.tracking is None:
                events.append(
                    loop.start_tracking(holder.config.name, float(holder.config.safe_value), now)
                )
            elif holder is None and loop.tracking is not None:
                events.append(loop.stop_tracking(now))
        return events

    # -- operator requests -------------------------------------------------------------

    def set_mode(
        self, loop: str, mode: str, by: str, now: float, output: float | None = None
    ) -> list[dict[str, Any]]:
        target = self._loop(loop)
        if mode not in ("auto", "manual"):
            raise ControlError("control.bad-mode", f"mode must be 'auto' or 'manual', got {mode!r}")
        if output is not None:
            target.check_output(output)
        return [target.set_mode("auto" if mode == "auto" else "manual", by, now, output)]

    def set_setpoint(self, loop: str, value: float, by: str, now: float) -> list[dict[str, Any]]:
        target = self._loop(loop)
        if target.config.setpoint_point is not None:
            raise ControlError(
                "control.remote-setpoint",
                f"loop {loop!r} follows {target.config.setpoint_point!r} for its setpoint",
            )
        if not _finite(value):
            raise ControlError(
                "control.bad-value", f"setpoint must be a finite number, got {value!r}"
            )
        target.pid.setpoint = float(value)
        return [target.event("setpoint", now, by=by)]

    def set_output(self, loop: str, value: float, by: str, now: float) -> list[dict[str, Any]]:
        target = self._loop(loop)
        if target.tracking is not None:
            raise ControlError(
                "control.interlocked",
                f"loop {loop!r}'s output is held by interlock {target.tracking!r}",
            )
        if target.operator_mode != "manual":
            raise ControlError(
                "control.not-manual", f"loop {loop!r} is in auto; set it to manual first"
            )
        target.check_output(value)
        target.output = float(value)
        target.urgent_at = now
        return [target.event("output", now, by=by)]

    # -- running -----------------------------------------------------------------------

    def step(self, now: float) -> tuple[list[Write], list[dict[str, Any]]]:
        """Run the loops that are due (and send pending interlock writes)."""
        writes: list[Write] = []
        events: list[dict[str, Any]] = []
        for held in self._held.values():
            if held.write_due is not None and held.write_due <= now and not held.in_flight:
                held.write_due, held.in_flight = None, True
                module, point = split_point(held.config.output)
                writes.append(
                    Write(held.config.name, module, point, held.config.safe_value, "interlock")
                )
        for loop in self._loops.values():
            value = loop.step(now, events)
            if value is not None:
                module, point = split_point(loop.config.output)
                writes.append(Write(loop.config.name, module, point, value))
        return writes, events

    def next_due(self) -> float | None:
        times = [
            h.write_due for h in self._held.values() if h.write_due is not None and not h.in_flight
        ]
        times += [loop.due() for loop in self._loops.values()]
        return min(times, default=None)

    def write_done(self, write: Write, error: str | None, now: float) -> list[dict[str, Any]]:
        """The result of a write :meth:`step` returned (``error``: why it failed, or None)."""
        if write.kind == "loop":
            loop = self._loop(write.source)
            events = loop.write_done(write.value, error, now)
            if loop.tracking is not None:
                # An interlock tripped while this write was in flight: it may have landed
                # after the safe value, so the safe value goes out again.
                held = self._held[loop.tracking]
                held.write_due = now if held.write_due is None else min(held.write_due, now)
            return events
        held = self._interlock(write.source)
        held.in_flight = False
        if error is None:
            held.last_write_time, held.last_write_error = now, None
            return []
        held.last_write_error = error
        if held.interlock.holding:
            retry = now + self.retry_interval
            held.write_due = retry if held.write_due is None else min(held.write_due, retry)
        event = held.interlock.event("write-failed", now)
        event["reason"] = error
        return [event]

    def status(self) -> list[dict[str, Any]]:
        """One entry per loop (``kind: "loop"``) and per interlock (``kind: "interlock"``)."""
        result = [{"kind": "loop", **loop.status()} for loop in self._loops.values()]
        for held in self._held.values():
            result.append(
                {
                    "kind": "interlock",
                    **held.interlock.status(),
                    "when": held.config.when,
                    "last_write_time": held.last_write_time,
                    "last_write_error": held.last_write_error,
                }
            )
        return result

    def _loop(self, name: str) -> Loop:
        try:
            return self._loops[name]
        except KeyError:
            raise ControlError("control.unknown", f"no loop named {name!r}") from None

    def _interlock(self, name: str) -> _Held:
        try:
            return self._held[name]
        except KeyError:
            raise ControlError("control.unknown", f"no interlock named {name!r}") from None


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
