"""The scenario file: simulators, an optional plantd stack, and timed steps with expectations.

    name: closed-loop
    simulators: [../plants/pump-station.yaml]        # relative to this file
    stack:
      modules:                                       # each started as `plant module run NAME`
        - {file: ../../config/local/modules.d/station.yaml, device: plc}
    steps:
      - expect: {point: station.pump_speed, quality: good, within: 10s}
      - write: {point: station.speed_setpoint, value: 90}       # through plantd (MDP)
      - expect: {device: plc.speed_setpoint, value: 90, within: 2s}   # what reached the device
      - expect: {point: station.pump_speed, min: 85, within: 10s}     # what plantd published
      - inject: {device: plc, fault: restart, downtime: 2s}
      - wait: 1s

A step is one of ``wait``, ``set`` (a simulated value by hand), ``inject``/``heal`` (faults, see
:class:`hil.sim.Fault`), ``write`` (through plantd), ``alarm`` and ``control`` (requests to
plantd-control, :mod:`hil.scenario._control_steps`) and ``expect``; it may carry a ``name`` for
the report. An expectation looks at one of: ``point`` (``MODULE.POINT`` as published on the bus;
``calc.NAME`` for a calculated point), ``stored`` (``MODULE.POINT`` as saved in the state
service) or ``device`` (``DEVICE.POINT`` in a simulator), with conditions ``value``
(± ``tolerance``), ``min``, ``max`` and ``quality`` on each sample, and ``rising``, ``falling``,
``stable`` and ``rate`` over a window of ``over`` seconds; or ``alarm`` (``NAME``: its
``state``, ``active``, ``shelved``, ``suppressed``), or ``audit`` (a record of the broker's
audit trail). It must come true ``within`` its time bound, and then stay true for ``hold`` if
given. ``stack.control`` lists plantd-control's files (:mod:`hil.scenario._control_files`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from hil.scenario._control_steps import ALARM_STATES, AlarmAction, AuditMatch, ControlAction
from hil.sim import Fault, Heal
from plantd.config import INTERNAL, Duration, Ge, Gt, KeyPath, did_you_mean

__all__ = [
    "ALARM_STATES",
    "TARGETS",
    "WINDOW_CONDITIONS",
    "WRITE_ERRORS",
    "Expect",
    "ModuleBinding",
    "Rate",
    "Scenario",
    "SetValue",
    "StackSpec",
    "Step",
    "WriteValue",
    "split_name",
]

Scalar = float | int | bool | str
QualityName = Literal["good", "uncertain", "bad"]
ACTIONS = ("wait", "set", "inject", "heal", "write", "alarm", "control", "expect")
AlarmState = Literal["normal", "unacknowledged", "acknowledged", "returned"]
_ALARM_FLAGS = ("state", "active", "shelved", "suppressed")


def split_name(text: str) -> tuple[str, str] | None:
    """``"field.tank_level"`` → ``("field", "tank_level")``; None without a dot."""
    owner, _, name = text.partition(".")
    return (owner, name) if owner and name else None


def _dotted(key: str, text: str, what: str) -> Iterator[tuple[KeyPath, str]]:
    if split_name(text) is None:
        yield (key,), f"expected {what}.POINT (e.g. field.tank_level), got {text!r}"


@dataclass(frozen=True, kw_only=True)
class ModuleBinding:
    file: Path
    """A module file (relative to the scenario)."""
    device: str | None = None
    """The simulated device the module is connected to: its connection's host/port (or serial
    device) are rewritten to where the simulator listens. None: the file is used as it is."""


@dataclass(frozen=True, kw_only=True)
class StackSpec:
    modules: tuple[ModuleBinding, ...] = ()
    state: bool = True
    """Start the state service (needed by ``stored`` expectations)."""
    control: tuple[Path, ...] = ()
    """Files for ``plantd-control`` (relative to the scenario), each put in the stack's
    ``alarms.d/``, ``calc.d/`` or ``control.d/`` by its top-level key (``alarms``; ``calc``;
    ``loops``/``interlocks``); with any, ``plantd-control`` starts after the modules."""


@dataclass(frozen=True, kw_only=True)
class SetValue:
    point: str
    """``DEVICE.POINT`` of a simulator."""
    value: Scalar

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        yield from _dotted("point", self.point, "DEVICE")


WRITE_ERRORS = {
    "module.unknown-point": "the module has no point of that name",
    "module.not-writable": "the point is read-only (it is not marked writable in the module file)",
    "module.bad-value": (
        "the value is refused before it reaches the device: outside the point's minimum/maximum, "
        "the wrong type, or one the driver cannot encode"
    ),
    "module.unavailable": (
        "the module is not connected to its device, or the connection failed during the write"
    ),
    "module.device-fault": "the device answered and refused the write (a Modbus exception, say)",
    "broker.denied": "the rig's key may not call the module's write (role operator needed)",
}
"""The error codes a ``write`` step may expect: what the module's ``write`` operation answers
(plantd.module._commands), and the broker's refusal of a caller without the right."""


@dataclass(frozen=True, kw_only=True)
class WriteValue:
    point: str
    """``MODULE.POINT``: written with the module's ``write`` operation, as an operator would."""
    value: Scalar
    error: str | None = None
    """Expect the write to be refused with this error code (one of :data:`WRITE_ERRORS`)."""

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        yield from _dotted("point", self.point, "MODULE")
        if self.error is not None and self.error not in WRITE_ERRORS:
            hint = did_you_mean(self.error, WRITE_ERRORS)
            yield (
                ("error",),
                (
                    f"no write error {self.error!r}{hint}; "
                    f"a write is refused with one of: {', '.join(WRITE_ERRORS)}"
                ),
            )


@dataclass(frozen=True, kw_only=True)
class Rate:
    """How fast the value changes over the window: ``(last − first) / over``, per ``per``."""

    min: float | None = None
    max: float | None = None
    per: Annotated[float, Duration, Gt(0)] = 1.0
    """The rate's time unit (``1s``: per second, ``1min``: per minute)."""

    def describe(self) -> str:
        unit = self.unit()
        if self.min is not None and self.max is not None:
            return f"changing {self.min:g}…{self.max:g}{unit}"
        if self.min is not None:
            return f"changing ≥ {self.min:g}{unit}"
        return f"changing ≤ {self.max:g}{unit}"

    def unit(self) -> str:
        named = {1.0: "/s", 60.0: "/min", 3600.0: "/h"}
        return named.get(self.per, f" per {self.per:g} s")

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if self.min is None and self.max is None:
            yield (), "a rate needs min, max or both"
        if self.min is not None and self.max is not None and self.min > self.max:
            yield ("max",), f"max {self.max:g} is below min {self.min:g}"


WINDOW_CONDITIONS = ("rising", "falling", "stable", "rate")
TARGETS = ("point", "stored", "device", "alarm", "audit")


@dataclass(frozen=True, kw_only=True)
class Expect:
    point: str | None = None
    """``MODULE.POINT``: the samples plantd published on ``data.MODULE.POINT``."""
    stored: str | None = None
    """``MODULE.POINT``: the last value saved in the state service (``value.POINT`` of scope
    ``org.plantd.module.MODULE``)."""
    device: str | None = None
    """``DEVICE.POINT``: the value in a simulator (what plantd wrote to the device)."""
    alarm: str | None = None
    """An alarm of ``plantd-control``: its state (``org.plantd.Alarms list`` when the step
    begins, then every ``event.alarm.NAME``), judged with ``state``, ``active``, ``shelved``,
    ``suppressed``."""
    audit: AuditMatch | None = None
    """A record of the broker's audit trail (``event.audit.*``, every one since the scenario
    began): who called what, with what result."""
    state: AlarmState | None = None
    active: bool | None = None
    shelved: bool | None = None
    suppressed: bool | None = None
    value: Scalar | None = None
    tolerance: Annotated[float, Ge(0)] = 0.0
    min: float | None = None
    max: float | None = None
    quality: QualityName | None = None
    within: Annotated[float, Duration, Ge(0)] = 5.0
    """How long the condition has to come true."""
    hold: Annotated[float, Duration, Gt(0)] | None = None
    """Then, how long it must stay true (every sample in that time is checked)."""
    fresh: bool = False
    """Only samples published after the step began count (proof that polling goes on)."""
    allow_bad: bool = False
    """A bad sample (no value) does not break ``value``/``min``/``max`` (with ``hold``: values
    that arrive must be right, but the point may be bad meanwhile)."""
    rising: bool = False
    """Over the window ``over``: the value at its end is above the value at its start."""
    falling: bool = False
    """Over the window ``over``: the value at its end is below the value at its start."""
    stable: Annotated[float, Ge(0)] | None = None
    """Over the window ``over``: highest − lowest value is at most this much."""
    rate: Rate | None = None
    """Over the window ``over``: the average change per ``rate.per`` is within min/max."""
    over: Annotated[float, Duration, Gt(0)] | None = None
    """The window of ``rising``, ``falling``, ``stable`` and ``rate``: the last ``over``
    seconds, judged first when that long has passed since the step began."""

    @property
    def windowed(self) -> bool:
        """Judged over a window of samples (rising, falling, stable, rate), not sample by
        sample."""
        return self.rising or self.falling or self.stable is not None or self.rate is not None

    def target(self) -> tuple[str, str]:
        """(kind, name): kind is ``point``, ``stored``, ``device`` or ``alarm``."""
        for kind in TARGETS:
            name = getattr(self, kind)
            if isinstance(name, AuditMatch):
                return kind, name.describe()
            if name is not None:
                return kind, name
        raise AssertionError("cross_check guarantees one target")

    def describe(self) -> str:
        kind, name = self.target()
        if kind == "audit":
            return f"an audit record: {name} within {self.within:g} s"
        if kind == "alarm":
            wanted: list[str] = [self.state] if self.state is not None else []
            for flag in _ALARM_FLAGS[1:]:
                given = getattr(self, flag)
                if given is not None:
                    wanted.append(flag if given else f"not {flag}")
            hold = f", then for {self.hold:g} s" if self.hold else ""
            return f"alarm {name} {', '.join(wanted)} within {self.within:g} s{hold}"
        where = {"point": "", "stored": "stored ", "device": "device "}[kind]
        parts = [f"{where}{name}"]
        if self.value is not None:
            shown = _show(self.value)
            parts.append(f"= {shown}" + (f" ±{self.tolerance:g}" if self.tolerance else ""))
        if self.min is not None and self.max is not None:
            parts.append(f"in [{self.min:g}, {self.max:g}]")
        elif self.min is not None:
            parts.append(f"≥ {self.min:g}")
        elif self.max is not None:
            parts.append(f"≤ {self.max:g}")
        if self.quality is not None:
            parts.append(f"({self.quality})")
        if self.windowed and self.over is not None:
            trend = [
                "rising" if self.rising else "",
                "falling" if self.falling else "",
                f"stable within {self.stable:g}" if self.stable is not None else "",
                self.rate.describe() if self.rate is not None else "",
            ]
            parts.append(" and ".join(t for t in trend if t) + f" over {self.over:g} s")
        within = max(self.within, self.over) if self.windowed and self.over else self.within
        bound = f"within {within:g} s" + (f", then for {self.hold:g} s" if self.hold else "")
        return " ".join(parts) + ("; a fresh sample" if self.fresh else "") + f" {bound}"

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        targets = [k for k in TARGETS if getattr(self, k) is not None]
        if len(targets) != 1:
            yield (), "an expectation looks at one of point, stored, device or alarm"
            return
        kind = targets[0]
        flags = [flag for flag in _ALARM_FLAGS if getattr(self, flag) is not None]
        if kind in ("alarm", "audit"):
            yield from self._check_alarm(kind, flags)
            return
        if flags:
            yield (flags[0],), f"{flags[0]} is a condition on an alarm (alarm: NAME)"
        yield from _dotted(kind, getattr(self, kind), "DEVICE" if kind == "device" else "MODULE")
        conditions = (self.value, self.min, self.max, self.quality)
        if all(c is None for c in conditions) and not self.fresh and not self.windowed:
            yield (
                (),
                (
                    "an expectation needs a condition: value, min, max, quality, rising, falling, "
                    "stable, rate (or fresh)"
                ),
            )
        yield from self._check_window()
        if kind == "device" and (self.quality is not None or self.fresh or self.allow_bad):
            yield (kind,), "a simulated value has no quality; quality/fresh/allow_bad do not apply"
        if self.min is not None and self.max is not None and self.min > self.max:
            yield ("max",), f"max {self.max:g} is below min {self.min:g}"

    def _check_alarm(self, kind: str, flags: list[str]) -> Iterator[tuple[KeyPath, str]]:
        """An alarm (``state``, ``active``, ``shelved``, ``suppressed``) or an audit record
        (its own keys): the conditions of points do not apply."""
        if kind == "alarm" and not flags:
            yield ("alarm",), "an alarm expectation needs state, active, shelved or suppressed"
        if kind == "audit" and flags:
            yield (flags[0],), f"{flags[0]} is a condition on an alarm (alarm: NAME)"
        others = ["value", "min", "max", "quality", "over", "rate", "stable"]
        given = [key for key in others if getattr(self, key) is not None]
        given += [key for key in ("rising", "falling", "fresh", "allow_bad") if getattr(self, key)]
        if given:
            what = "an alarm (state, active, shelved, suppressed do)" if kind == "alarm" else ""
            yield (given[0],), f"{given[0]} does not apply to {what or 'an audit record'}"

    def _check_window(self) -> Iterator[tuple[KeyPath, str]]:
        if self.windowed and self.over is None:
            given = next(k for k in WINDOW_CONDITIONS if getattr(self, k) not in (None, False))
            yield (given,), f"{given} is judged over a window: give over (e.g. over: 5s)"
        if self.over is not None and not self.windowed:
            yield ("over",), "over is the window of rising, falling, stable or rate; none is given"
        if self.rising and self.falling:
            yield ("falling",), "rising and falling cannot both hold over one window"
        if self.windowed and self.fresh:
            yield ("fresh",), "fresh does not apply to a window: it lies after the step began"


@dataclass(frozen=True, kw_only=True)
class Step:
    name: str | None = None
    wait: Annotated[float, Duration, Ge(0)] | None = None
    set: SetValue | None = None
    inject: Fault | None = None
    heal: Heal | None = None
    write: WriteValue | None = None
    alarm: AlarmAction | None = None
    control: ControlAction | None = None
    expect: Expect | None = None

    @property
    def action(self) -> str:
        return next(kind for kind in ACTIONS if getattr(self, kind) is not None)

    def describe(self) -> str:
        if self.name:
            return self.name
        action = self.action
        if self.wait is not None:
            return f"wait {self.wait:g} s"
        if self.set is not None:
            return f"set {self.set.point} = {_show(self.set.value)}"
        if self.inject is not None:
            return f"inject {self.inject.describe()}"
        if self.heal is not None:
            what = self.heal.device or "every device"
            return f"heal {what}" + (
                f" unit {self.heal.unit}" if self.heal.unit is not None else ""
            )
        if self.write is not None:
            refused = f" (refused: {self.write.error})" if self.write.error else ""
            return f"write {self.write.point} = {_show(self.write.value)}{refused}"
        if self.alarm is not None:
            return self.alarm.describe()
        if self.control is not None:
            return self.control.describe()
        assert self.expect is not None, action
        return f"expect {self.expect.describe()}"

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        present = [kind for kind in ACTIONS if getattr(self, kind) is not None]
        if len(present) != 1:
            found = ", ".join(present) or "none"
            yield (), f"a step is one of {', '.join(ACTIONS)} (found: {found})"


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str | None = None
    """Default: the file's name without .yaml."""
    description: str = ""
    simulators: tuple[Path, ...] = ()
    stack: StackSpec | None = None
    trace: tuple[str, ...] = ()
    """Patterns (``field.*``, ``plc.pump_speed``) of what to trace: bus points by
    MODULE.POINT, simulated values by DEVICE.POINT. Default: every point published."""
    timeout: Annotated[float, Duration, Gt(0)] = 300.0
    """The whole scenario's time bound."""
    keep_going: bool = False
    """Run the remaining steps after a failed expectation (default: skip them)."""
    steps: tuple[Step, ...] = ()
    source: Path | None = field(default=None, metadata=INTERNAL)
    parameters: dict[str, Scalar] = field(default_factory=dict, metadata=INTERNAL)
    """The values of this case of a parametrised file (empty for a plain one)."""

    @property
    def scenario_name(self) -> str:
        return self.name or (self.source.stem if self.source else "scenario")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:g}"
    return repr(value) if isinstance(value, str) else str(value)
