"""A PID controller in ISA standard form, sans-IO: a measurement and ``now`` in, an output out.

Theory of operation
-------------------
    u = Kp · (e + (1/Ti)·∫e dt + Td·de/dt),   e = sp - pv (reverse action) or pv - sp (direct)

With reverse action the output rises when the measurement is below the setpoint (a heater, a
pump filling a tank); with direct action it rises when the measurement is above (a cooler).
``Kp`` is always positive: the action, not the sign of the gain, says which way the loop acts.

Each :meth:`Pid.update` computes the three terms from ``dt = now - the previous call``:

- **P** = Kp·e, on the working (ramped) setpoint.
- **I** is kept in output units (``Kp/Ti ∫e dt``, backward Euler), so a change of tuning does
  not jump the output. With ``Ti = 0`` there is no integral action and I is a constant bias
  (0 at start; set by bumpless transfer), which is what a P-only controller's "manual reset" is.
- **D** acts on the measurement, not on the error (``-Kp·Td·d(pv)/dt`` for reverse action), so
  a setpoint step gives no derivative kick. It is low-pass filtered with time constant
  ``Td/N`` (N = ``derivative_filter``, 10 by default)::

      D_k = Tf/(Tf+dt) · D_(k-1) - Kp·Td·s · (pv_k - pv_(k-1)) / (Tf+dt),   s = ±1 by action

**Anti-windup: conditional integration.** The integral is advanced only if the output that
results lies within ``[output_min, output_max]``, or if the error drives it back toward the
range. While the output is clamped and the error still pushes the same way, the integral does
not change at all (no build-up), and the first period in which the error changes sign
integrates again, so the output leaves the limit at once instead of unwinding for as long as
it was saturated (what a naive integrator does).

**Bumpless transfer.** In manual (and while an interlock holds the output) the owner calls
:meth:`Pid.track` with the output actually applied. The next :meth:`Pid.update` sets
``I = u_tracked - P - D``, so the first automatic output equals the tracked one and the
integral carries on from there.

**Setpoint ramp.** ``setpoint`` is the target; ``working_setpoint`` moves toward it at
``setpoint_ramp`` units per second of the ``dt`` passed in (in manual too, so switching to
auto finds the ramp where the clock says it is). Without a ramp it follows at once.

**Time.** ``dt <= 0`` (a repeated call, a clock that went back) advances nothing: no integral,
no ramp, derivative held; the output is recomputed from P with the rest held. A gap longer
than ``max_dt`` (the process stalled) counts as ``max_dt`` for the integral and the ramp, and
restarts the derivative (D = 0) so a stale difference cannot kick the output. The first call
has no previous time and behaves like ``dt = 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["Pid", "PidTuning", "SetpointRamp"]


@dataclass(frozen=True, slots=True)
class PidTuning:
    """Gains (``ti``/``td`` in seconds, 0 = off), action, output limits and the ramp rate."""

    kp: float
    ti: float = 0.0
    td: float = 0.0
    action: Literal["reverse", "direct"] = "reverse"
    output_min: float = 0.0
    output_max: float = 100.0
    derivative_filter: float = 10.0
    setpoint_ramp: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.kp) and self.kp > 0):
            raise ValueError(f"kp must be a positive number, got {self.kp!r}")
        if not (self.ti >= 0 and self.td >= 0 and self.derivative_filter > 0):
            raise ValueError("ti and td must be >= 0 and derivative_filter > 0")
        if not self.output_min < self.output_max:
            raise ValueError(f"output_min {self.output_min} must be below {self.output_max}")
        if self.setpoint_ramp is not None and not self.setpoint_ramp > 0:
            raise ValueError(f"setpoint_ramp must be > 0, got {self.setpoint_ramp!r}")

    @property
    def sign(self) -> float:
        """+1 for reverse action (e = sp - pv), -1 for direct (e = pv - sp)."""
        return 1.0 if self.action == "reverse" else -1.0

    def clamp(self, value: float) -> float:
        return min(self.output_max, max(self.output_min, value))


class SetpointRamp:
    """A working setpoint that moves toward ``target`` at ``rate`` units per second."""

    def __init__(self, target: float, rate: float | None) -> None:
        self.target = target
        self.value = target
        self.rate = rate

    def advance(self, dt: float) -> float:
        if self.rate is None:
            self.value = self.target
        elif dt > 0:
            step = self.rate * dt
            gap = self.target - self.value
            self.value = self.target if abs(gap) <= step else self.value + math.copysign(step, gap)
        return self.value


class Pid:
    """One PID controller's state. Feed it the measurement and ``now``; it returns the output."""

    def __init__(
        self,
        tuning: PidTuning,
        *,
        setpoint: float,
        output: float | None = None,
        max_dt: float | None = None,
    ) -> None:
        self.tuning = tuning
        self.max_dt = max_dt
        self._ramp = SetpointRamp(setpoint, tuning.setpoint_ramp)
        self.integral = 0.0  # I, in output units
        self.derivative = 0.0  # D, in output units (filter state)
        self.output = tuning.clamp(output) if output is not None else None
        self._last_time: float | None = None
        self._last_pv: float | None = None
        # Next update sets I so its output equals self.output (after track(), or a start
        # from a known output).
        self._bumpless = output is not None

    @property
    def setpoint(self) -> float:
        """The target setpoint."""
        return self._ramp.target

    @setpoint.setter
    def setpoint(self, value: float) -> None:
        self._ramp.target = value

    def jump_setpoint(self, value: float) -> None:
        """Set the target and the working setpoint at once (no ramp)."""
        self._ramp.target = self._ramp.value = value

    @property
    def working_setpoint(self) -> float:
        """The ramped setpoint the error is computed from."""
        return self._ramp.value

    def _elapsed(self, now: float) -> tuple[float, bool]:
        """(dt to use, whether the gap was too long)."""
        if self._last_time is None:
            return 0.0, False
        dt = now - self._last_time
        if self.max_dt is not None and dt > self.max_dt:
            return self.max_dt, True
        return max(dt, 0.0), False

    def update(self, pv: float, now: float) -> float:
        """The automatic output for measurement ``pv`` at ``now`` (clamped to the limits)."""
        t = self.tuning
        dt, gap = self._elapsed(now)
        sp = self._ramp.advance(dt)
        error = t.sign * (sp - pv)
        p = t.kp * error
        if gap or self._last_pv is None or t.td == 0:
            d = 0.0
        elif dt > 0:
            tf = t.td / t.derivative_filter
            d = (tf * self.derivative - t.kp * t.td * t.sign * (pv - self._last_pv)) / (tf + dt)
        else:
            d = self.derivative
        if self._bumpless and self.output is not None:
            # Bumpless: the integral (or the P-only bias) absorbs the difference.
            self.integral = self.output - p - d
            self._bumpless = False
        elif t.ti > 0 and dt > 0:
            candidate = self.integral + t.kp * dt / t.ti * error
            unclamped = p + candidate + d
            # Conditional integration: refuse only the integration that pushes further past
            # a limit.
            if not (
                (unclamped > t.output_max and error > 0) or (unclamped < t.output_min and error < 0)
            ):
                self.integral = candidate
        self.derivative = d
        self._last_time = now if dt > 0 or self._last_time is None or gap else self._last_time
        self._last_pv = pv if dt > 0 or self._last_pv is None or gap else self._last_pv
        self.output = t.clamp(p + self.integral + d)
        return self.output

    def track(self, output: float, pv: float | None, now: float) -> None:
        """Follow an output applied by someone else (manual, an interlock, a safe value): the
        next :meth:`update` starts from it without a bump."""
        dt, _ = self._elapsed(now)
        self._ramp.advance(dt)
        self.output = self.tuning.clamp(output)
        self.derivative = 0.0
        self._last_pv = pv
        if dt > 0 or self._last_time is None:
            self._last_time = now
        self._bumpless = True
