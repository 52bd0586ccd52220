"""Scenario steps for ``plantd-control``: alarm actions and control requests.

    - alarm: {ack: tank-level-high}                          # org.plantd.Alarms ack
    - alarm: {shelve: tank-level-high, duration: 30s}        # … shelve (reason optional)
    - alarm: {unshelve: tank-level-high}
    - control: {mode: {loop: tank-level, mode: auto}}        # org.plantd.Control mode
    - control: {setpoint: {loop: tank-level, value: 3.2}}    # … setpoint
    - control: {reset: pump-stop-high-level}                 # … reset
    - control: {reset: pump-stop-high-level, error: control.still-tripped}

Each is one call, made as the rig's user (the stack's admin on a throwaway stack). With
``error: CODE`` the step passes only if the call is refused with that code (like a ``write``
step's): a call accepted instead is a failure, one refused with another code an error. The
names are checked against the scenario's ``stack.control`` files before anything starts
(:mod:`hil.scenario._load`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from plantd.config import Duration, Gt, KeyPath, did_you_mean

__all__ = [
    "ALARM_STATES",
    "CONTROL_ERRORS",
    "AlarmAction",
    "AuditMatch",
    "ControlAction",
    "LoopMode",
    "LoopSetpoint",
    "error_problems",
]

ALARM_STATES = ("normal", "unacknowledged", "acknowledged", "returned")
"""The ISA-18.2 states of an alarm (plantd.control._alarm)."""

CONTROL_ERRORS = {
    "alarm.unknown": "no alarm of that name",
    "alarm.not-acknowledgeable": "the alarm is normal or acknowledged already",
    "alarm.not-shelved": "unshelve of an alarm that is not shelved",
    "alarm.bad-duration": "a shelving that is not in the future, not finite, or beyond 30 days",
    "control.unknown": "no loop or interlock of that name",
    "control.bad-mode": "a mode other than auto or manual",
    "control.bad-value": "a setpoint or output that is not a finite number",
    "control.out-of-range": "an output outside the loop's output_min…output_max",
    "control.remote-setpoint": "the loop follows a point for its setpoint",
    "control.not-manual": "an output set on a loop in auto",
    "control.interlocked": "the loop's output is held by an interlock",
    "control.still-tripped": "reset of an interlock whose condition still holds",
    "control.not-tripped": "reset of an interlock that is not tripped",
    "broker.denied": "the rig's key may not call it (role operator needed; with --config DIR)",
    "bad-request": "the request's parameters were refused",
}
"""The error codes an ``alarm`` or ``control`` step may expect (plantd.control's refusals)."""


def error_problems(error: str | None) -> Iterator[tuple[KeyPath, str]]:
    if error is not None and error not in CONTROL_ERRORS:
        yield (
            ("error",),
            f"no alarm/control error {error!r}{did_you_mean(error, CONTROL_ERRORS)}; "
            f"a call is refused with one of: {', '.join(CONTROL_ERRORS)}",
        )


@dataclass(frozen=True, kw_only=True)
class AuditMatch:
    """An audit record the broker published (``event.audit.*``): every key given must match."""

    principal: str | None = None
    """Who (``service.control``, ``user.ada``)."""
    target: str | None = None
    """The service and operation (``org.plantd.module.station write``)."""
    result: str | None = None
    """``ok``, ``denied`` or an error code."""
    detail: str | None = None
    """Text the call's params contain (``"pump_run"``)."""

    def unmet(self, record: dict[str, Any]) -> str | None:
        wrong = [
            f"{key} {record.get(key)!r}"
            for key in ("principal", "target", "result")
            if getattr(self, key) is not None and record.get(key) != getattr(self, key)
        ]
        if self.detail is not None and self.detail not in str(record.get("detail", "")):
            wrong.append(f"detail {str(record.get('detail', ''))[:60]!r}")
        return ", ".join(wrong) or None

    def describe(self) -> str:
        given = [f"{key} {getattr(self, key)}" for key in ("principal", "target", "result")]
        given += [f"detail ~ {self.detail!r}"] if self.detail is not None else []
        return ", ".join(part for part in given if not part.endswith(" None"))

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if all(getattr(self, key) is None for key in ("principal", "target", "result", "detail")):
            yield (), "an audit expectation needs principal, target, result or detail"


@dataclass(frozen=True, kw_only=True)
class AlarmAction:
    ack: str | None = None
    """Acknowledge this alarm."""
    shelve: str | None = None
    """Shelve this alarm for ``duration``."""
    unshelve: str | None = None
    duration: Annotated[float, Duration, Gt(0)] | None = None
    """How long a shelving lasts (``30s``, ``5min``)."""
    reason: str = ""
    """A shelving's reason, an acknowledgement's comment (recorded with the event)."""
    error: str | None = None
    """Expect the call to be refused with this code (one of :data:`CONTROL_ERRORS`)."""

    @property
    def operation(self) -> str:
        return next(op for op in ("ack", "shelve", "unshelve") if getattr(self, op) is not None)

    @property
    def alarm(self) -> str:
        name = getattr(self, self.operation)
        assert isinstance(name, str)
        return name

    def params(self) -> dict[str, Any]:
        """The service call's parameters."""
        if self.operation == "ack":
            return {"alarm": self.alarm, **({"comment": self.reason} if self.reason else {})}
        if self.operation == "shelve":
            params: dict[str, Any] = {"alarm": self.alarm, "duration": self.duration}
            return params | ({"reason": self.reason} if self.reason else {})
        return {"alarm": self.alarm}

    def describe(self) -> str:
        text = f"{self.operation} alarm {self.alarm}"
        if self.duration is not None:
            text += f" for {self.duration:g} s"
        return text + (f" (refused: {self.error})" if self.error else "")

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        given = [op for op in ("ack", "shelve", "unshelve") if getattr(self, op) is not None]
        if len(given) != 1:
            yield (), f"an alarm step is one of ack, shelve, unshelve (found: {given or 'none'})"
            return
        if given == ["shelve"] and self.duration is None:
            yield ("shelve",), "a shelving needs a duration (e.g. duration: 30s)"
        if given != ["shelve"] and self.duration is not None:
            yield ("duration",), "duration goes with shelve only"
        yield from error_problems(self.error)


@dataclass(frozen=True, kw_only=True)
class LoopMode:
    loop: str
    mode: Literal["auto", "manual"]
    output: float | None = None
    """The manual output to start from (with ``mode: manual``)."""


@dataclass(frozen=True, kw_only=True)
class LoopSetpoint:
    loop: str
    value: float


@dataclass(frozen=True, kw_only=True)
class ControlAction:
    mode: LoopMode | None = None
    setpoint: LoopSetpoint | None = None
    output: LoopSetpoint | None = None
    """A manual loop's output: ``{loop, value}``."""
    reset: str | None = None
    """Reset this interlock."""
    error: str | None = None
    """Expect the call to be refused with this code (one of :data:`CONTROL_ERRORS`)."""

    @property
    def operation(self) -> str:
        return next(
            op for op in ("mode", "setpoint", "output", "reset") if getattr(self, op) is not None
        )

    @property
    def target(self) -> tuple[str, str]:
        """(``loop`` or ``interlock``, its name)."""
        if self.reset is not None:
            return "interlock", self.reset
        request = getattr(self, self.operation)
        return "loop", request.loop

    def params(self) -> dict[str, Any]:
        if self.reset is not None:
            return {"interlock": self.reset}
        if self.mode is not None:
            params: dict[str, Any] = {"loop": self.mode.loop, "mode": self.mode.mode}
            return params | ({"output": self.mode.output} if self.mode.output is not None else {})
        request = self.setpoint or self.output
        assert request is not None
        return {"loop": request.loop, "value": request.value}

    def describe(self) -> str:
        refused = f" (refused: {self.error})" if self.error else ""
        if self.reset is not None:
            return f"reset interlock {self.reset}{refused}"
        if self.mode is not None:
            return f"loop {self.mode.loop} to {self.mode.mode}{refused}"
        request = self.setpoint or self.output
        assert request is not None
        return f"loop {request.loop} {self.operation} {request.value:g}{refused}"

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        given = [
            op for op in ("mode", "setpoint", "output", "reset") if getattr(self, op) is not None
        ]
        if len(given) != 1:
            found = ", ".join(given) or "none"
            yield (), f"a control step is one of mode, setpoint, output, reset (found: {found})"
        yield from error_problems(self.error)
