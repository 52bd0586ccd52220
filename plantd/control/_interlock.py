"""One interlock's state machine: when its condition holds, its output is held at a safe value.

Rules (the whole machine; :class:`Interlock` implements exactly these)::

    state           event                      -> state            transition   output
    normal          condition true             -> tripped          "tripped"    safe value written
    tripped         condition false, auto      -> normal           "reset"      released (by "auto")
    tripped         condition false, manual    -> awaiting-reset   "cleared"    still held
    awaiting-reset  condition true             -> tripped          "tripped"    still held
    awaiting-reset  reset(by)                  -> normal           "reset"      released
    tripped         reset(by)                  ControlError("control.still-tripped")
    normal          reset(by)                  ControlError("control.not-tripped")

The output is held in every state but ``normal``. Evaluating the condition is not done here:
the process evaluates the ``when`` expression and passes the result in (an expression whose
inputs are not good counts as true: fail-safe). Before the first evaluation the condition is
unknown (None) and the interlock is normal. Releasing writes nothing: the output stays at the
safe value until its owner (an operator, a loop) writes it again.
"""

from __future__ import annotations

from typing import Any, Literal

from plantd.errors import PlantdError

__all__ = ["ControlError", "Interlock", "InterlockState"]

InterlockState = Literal["normal", "tripped", "awaiting-reset"]


class ControlError(PlantdError):
    """A control request that cannot be done; ``code`` is stable, the message says why.

    Codes: ``control.unknown`` (no such loop or interlock), ``control.bad-mode``,
    ``control.bad-value`` (not a finite number), ``control.out-of-range`` (outside the loop's
    output limits), ``control.not-manual`` (an output set on a loop not in manual),
    ``control.interlocked`` (the output is held by an interlock), ``control.remote-setpoint``
    (the setpoint comes from a point), ``control.still-tripped``, ``control.not-tripped``.
    """

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class Interlock:
    """The state of one interlock (see the rules at the top of this module)."""

    def __init__(
        self, name: str, output: str, safe_value: Any, reset: Literal["manual", "auto"]
    ) -> None:
        self.name = name
        self.output = output
        self.safe_value = safe_value
        self.reset_mode = reset
        self.state: InterlockState = "normal"
        self.condition: bool | None = None
        self.tripped_at: float | None = None

    @property
    def holding(self) -> bool:
        """True while the output is held at the safe value."""
        return self.state != "normal"

    def event(self, transition: str, now: float, *, by: str | None = None) -> dict[str, Any]:
        """An ``event.control.<name>`` record for this interlock."""
        return {
            "name": self.name,
            "kind": "interlock",
            "transition": transition,
            "time": now,
            "state": self.state,
            "output": self.output,
            "safe_value": self.safe_value,
            "reason": None,
            "by": by,
        }

    def set_condition(self, tripped: bool, now: float) -> list[dict[str, Any]]:
        """The condition's latest value; returns the transition's event, if any."""
        self.condition = tripped
        if tripped and self.state != "tripped":
            self.state = "tripped"
            self.tripped_at = now
            return [self.event("tripped", now)]
        if not tripped and self.state == "tripped":
            if self.reset_mode == "auto":
                self.state = "normal"
                return [self.event("reset", now, by="auto")]
            self.state = "awaiting-reset"
            return [self.event("cleared", now)]
        return []

    def reset(self, by: str, now: float) -> list[dict[str, Any]]:
        """An operator's reset: releases the output, or ControlError if it cannot."""
        if self.state == "tripped":
            raise ControlError(
                "control.still-tripped",
                f"interlock {self.name!r} cannot be reset: its condition still holds",
            )
        if self.state == "normal":
            raise ControlError("control.not-tripped", f"interlock {self.name!r} is not tripped")
        self.state = "normal"
        return [self.event("reset", now, by=by)]

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "condition": self.condition,
            "output": self.output,
            "safe_value": self.safe_value,
            "reset": self.reset_mode,
            "tripped_at": self.tripped_at,
        }
