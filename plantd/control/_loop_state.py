"""One loop's state in the engine: its PID, schedule, mode, failure and last write.

Part of ``_loops`` (whose docstring holds the rules); split off to keep each file small.
The PID's ``dt`` is capped at three periods (see ``_pid``: a longer gap counts as that).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from plantd.bus import Quality, Sample
from plantd.control._interlock import ControlError
from plantd.control._loop_config import LoopConfig
from plantd.control._pid import Pid, PidTuning

__all__ = ["Loop", "number"]


def number(value: object) -> float | None:
    """A finite float from a bool/int/float sample value; None for anything else."""
    if not isinstance(value, bool | int | float):
        return None
    try:
        result = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return result if math.isfinite(result) else None


class Loop:
    """See ``_loops`` for the rules; the engine calls these with its own ``now``."""

    def __init__(self, config: LoopConfig, now: float) -> None:
        self.config = config
        tuning = PidTuning(
            kp=config.kp,
            ti=config.ti,
            td=config.td,
            action=config.action,
            output_min=config.output_min,
            output_max=config.output_max,
            derivative_filter=config.derivative_filter,
            setpoint_ramp=config.setpoint_ramp,
        )
        fixed = config.setpoint if not isinstance(config.setpoint, str) else 0.0
        self.pid = Pid(tuning, setpoint=float(fixed), max_dt=3 * config.period)
        self.points = {config.measurement, config.output} | (
            {config.setpoint_point} if config.setpoint_point else set()
        )
        self.start, self.tick = now, 0  # the next run is due at start + tick·period
        self.operator_mode: Literal["auto", "manual"] = config.mode
        self.failure: str | None = None  # in a hold/safe failure: why
        self.problem: str | None = None  # what is wrong with the measurement now, if anything
        self.tracking: str | None = None  # the interlock holding the output
        self.pv: Sample | None = None
        self.has_setpoint = config.setpoint_point is None
        self.readback: float | None = None  # the output point's value, as last published
        self.output: float | None = None
        self.written: float | None = None
        self.force = True  # the next output is written whatever the deadband says
        self.urgent_at: float | None = None
        self.in_flight = False  # a write was returned and write_done has not come back yet
        self.last_write_time: float | None = None
        self.last_write_error: str | None = None
        self.overruns = 0
        self.periods = 0

    @property
    def mode(self) -> str:
        if self.tracking is not None:
            return "tracking"
        if self.failure is not None and self.operator_mode == "auto":
            return "failed"
        return self.operator_mode

    def due(self) -> float:
        next_tick = self.start + self.tick * self.config.period
        return next_tick if self.urgent_at is None else min(next_tick, self.urgent_at)

    def event(
        self, transition: str, now: float, *, by: str | None = None, reason: str | None = None
    ) -> dict[str, Any]:
        return {
            "name": self.config.name,
            "kind": "loop",
            "transition": transition,
            "time": now,
            "mode": self.mode,
            "output": self.output,
            "setpoint": self.pid.setpoint,
            "reason": reason,
            "by": by,
        }

    def observe(self, point: str, sample: Sample) -> None:
        good = number(sample.value) if sample.quality == Quality.GOOD else None
        if point == self.config.measurement:
            self.pv = sample
        if point == self.config.setpoint_point and good is not None:
            if self.has_setpoint:
                self.pid.setpoint = good
            else:  # the first value: nothing to ramp from
                self.pid.jump_setpoint(good)
                self.has_setpoint = True
        if point == self.config.output and good is not None:
            self.readback = good

    def _measure(self, now: float) -> float | None:
        """The measurement, or None with ``self.problem`` saying why it cannot be used."""
        sample, self.problem = self.pv, None
        if not self.has_setpoint:
            self.problem = f"no good value yet from setpoint point {self.config.setpoint_point}"
        elif sample is None:
            self.problem = "no value yet"
        elif sample.quality != Quality.GOOD:
            self.problem = f"quality is {sample.quality.label}"
        elif number(sample.value) is None:
            self.problem = f"not a number: {sample.value!r}"
        elif not math.isfinite(sample.timestamp):
            self.problem = f"stale: no usable timestamp ({sample.timestamp!r})"
        elif now - sample.timestamp > self.config.stale_after:
            self.problem = f"stale: {now - sample.timestamp:g} s old"
        return None if self.problem is not None or sample is None else number(sample.value)

    def _schedule(self, now: float) -> None:
        """Move to the first tick after ``now``; skipped ticks are overruns."""
        period, tick = self.config.period, self.tick + 1
        if self.start + tick * period <= now:
            late = int((now - self.start) // period) + 1
            while self.start + late * period <= now:
                late += 1
            self.overruns += late - tick
            tick = late
        self.tick = tick

    def step(self, now: float, events: list[dict[str, Any]]) -> float | None:
        """Run if due; the value to write, if any."""
        urgent = self.urgent_at is not None and self.urgent_at <= now
        if self.start + self.tick * self.config.period > now:
            if urgent:  # a manual output set between ticks goes out at once
                self.urgent_at = None
                return self._manual_write() if self.operator_mode == "manual" else None
            return None
        self.urgent_at = None
        self._schedule(now)
        self.periods += 1
        pv = self._measure(now)
        if self.tracking is not None:
            if self.output is not None:
                self.pid.track(self.output, pv, now)
            return None
        if self.operator_mode == "manual":
            if self.output is None and self.readback is not None:
                self.output = self.written = self.readback  # it is there already:
                self.force = False  # a manual loop at start writes nothing nobody asked for
            if self.output is not None:
                self.pid.track(self.output, pv, now)
            return self._manual_write()
        if pv is None:
            if self.pv is None and now - self.start < self.config.stale_after:
                return None  # waiting for the first sample is not a failure yet
            return self._fail(now, events)
        if self.failure is not None:
            reason, self.failure, self.force = self.failure, None, True
            events.append(self.event("recovered", now, reason=reason))
        if self.pid.output is None and self.readback is not None:
            self.pid.track(self.readback, pv, now)  # bumpless start from the actual output
        self.output = self.pid.update(pv, now)
        moved = self.written is None or abs(self.output - self.written) > self.config.write_deadband
        return self._issue(self.output) if self.force or moved else None

    def _fail(self, now: float, events: list[dict[str, Any]]) -> float | None:
        action = self.config.on_failure
        if self.failure is None and self.written is not None:
            self.output = self.written  # hold what the device has, not a value the deadband kept
        if action == "manual":
            self.operator_mode, self.force = "manual", False
            if self.output is not None:
                self.pid.track(self.output, None, now)
            events.append(self.event("failed", now, reason=self.problem))
            return None
        if self.failure is None:
            self.failure = self.problem
            if action == "safe" and self.config.failure_output is not None:
                self.output, self.force = self.config.failure_output, True
            events.append(self.event("failed", now, reason=self.problem))
        if self.output is not None:
            self.pid.track(self.output, None, now)
        if action == "safe" and self.force and self.output is not None:
            return self._issue(self.output)
        return None

    def _manual_write(self) -> float | None:
        if self.output is None or self.tracking is not None:
            return None
        return self._issue(self.output) if self.force or self.output != self.written else None

    def _issue(self, value: float) -> float | None:
        if self.in_flight:  # one write at a time; the next tick compares with this one
            return None
        self.written, self.force, self.in_flight = value, False, True
        return value

    def write_done(self, value: Any, error: str | None, now: float) -> list[dict[str, Any]]:
        self.in_flight = False
        if error is None:
            self.last_write_time, self.last_write_error = now, None
            if self.operator_mode == "manual" and self.output != self.written:
                self.urgent_at = now  # the operator set another value meanwhile
            return []
        self.last_write_error, self.force = error, True  # sent again at the next tick
        event = self.event("write-failed", now, reason=error)
        event["output"] = value
        return [event]

    def start_tracking(self, interlock: str, safe: float, now: float) -> dict[str, Any]:
        self.tracking, self.output, self.written = interlock, safe, safe
        self.pid.track(safe, self._measure(now), now)
        return self.event("tracking", now, reason=interlock)

    def stop_tracking(self, now: float) -> dict[str, Any]:
        interlock, self.tracking, self.force = self.tracking, None, True
        return self.event("released", now, reason=interlock)

    def check_output(self, value: float) -> None:
        c = self.config
        if not (isinstance(value, int | float) and not isinstance(value, bool)):
            raise ControlError("control.bad-value", f"output must be a number, got {value!r}")
        if not (math.isfinite(value) and c.output_min <= value <= c.output_max):
            raise ControlError(
                "control.out-of-range",
                f"output must be within {c.output_min:g}..{c.output_max:g}, got {value!r}",
            )

    def set_mode(
        self, mode: Literal["auto", "manual"], by: str, now: float, output: float | None
    ) -> dict[str, Any]:
        before, self.operator_mode = self.operator_mode, mode
        self.failure, self.force = None, True
        if output is not None:
            self.output = float(output)
        if self.tracking is None:
            if mode == "manual" and output is not None:
                self.urgent_at = now
            if (
                mode == "auto"
                and self.output is not None
                and (before != "auto" or output is not None)
            ):
                self.pid.track(self.output, self._measure(now), now)
        return self.event("mode", now, by=by)

    def status(self) -> dict[str, Any]:
        pv = self.pv
        return {
            "name": self.config.name,
            "mode": self.mode,
            "operator_mode": self.operator_mode,
            "measurement": self.config.measurement,
            "pv": number(pv.value) if pv is not None else None,
            "pv_quality": pv.quality.label if pv is not None else None,
            "problem": self.problem,
            "setpoint": self.pid.setpoint,
            "working_setpoint": self.pid.working_setpoint,
            "output_point": self.config.output,
            "output": self.output,
            "interlock": self.tracking,
            "last_write_time": self.last_write_time,
            "last_write_error": self.last_write_error,
            "overruns": self.overruns,
            "periods": self.periods,
            "next_due": self.start + self.tick * self.config.period,
        }
