"""One alarm's life cycle (ISA-18.2 / IEC 62682), sans-IO: events in, transitions out.

States (``state``), from the two facts "is it active" and "is it acknowledged":

    normal           not active, acknowledged      (nothing to show)
    unacknowledged   active, not acknowledged      (annunciating)
    acknowledged     active, acknowledged
    returned         not active, not acknowledged  (cleared before anyone acknowledged it)

so ``acknowledged`` is true exactly in ``normal`` and ``acknowledged``, and ``active`` exactly in
``unacknowledged`` and ``acknowledged``. Two flags sit beside the state: ``shelved`` (an operator
hid it until ``shelved_until``) and ``suppressed`` (hidden by design, e.g. ``suppress_when``).
A shelved or suppressed alarm still follows its condition through the table below (a raise
while shelved is recorded, with the flag); the flags only say "do not annunciate".

The rules (:data:`TRANSITIONS`; ``-`` = nothing happens, no transition is recorded)::

    event \\ state      normal           unacknowledged        acknowledged     returned
    condition-active   unack / raised   -                     -                unack / raised
    condition-clear    -                returned / cleared    normal / cleared -
                                        (latch: -)
    ack                ERROR            acknowledged / ack'd  ERROR            normal / ack'd
                                        (latch, clear: normal)
    shelve             = / shelved      = / shelved           = / shelved      = / shelved
    unshelve           BY-CONDITION / unshelved  (in every state)
    shelve-expiry      BY-CONDITION / shelve-expired  (in every state)
    suppress           = / suppressed   (every state)
    unsuppress         = / unsuppressed (every state, except returned -> normal)

``=`` keeps the state. BY-CONDITION: ``unacknowledged`` if the condition is active, else
``normal`` -- an alarm coming back from the shelf while its condition holds must be seen again,
even if it had been acknowledged before it was shelved; one that cleared on the shelf needs
nothing. Leaving suppression keeps the state (an alarm suppressed by design must not re-annunciate
each time its suppression flickers), except that a return nobody saw needs no acknowledgement.

Latching (``latch: true``): the alarm stays active (``unacknowledged``) after its condition
clears, until it is acknowledged; then it goes to ``normal`` if the condition is clear by then.
An acknowledged latching alarm clears like any other.

Refusals (:class:`AlarmError`, ``.code``):

- ``alarm.unknown``            no alarm by that name (raised by the engine)
- ``alarm.not-acknowledgeable`` ack of an alarm that is ``normal`` or ``acknowledged`` already
- ``alarm.not-shelved``        unshelve of an alarm that is not shelved
- ``alarm.bad-duration``       shelve ``until`` not after now, not finite, or beyond
                               :data:`MAX_SHELVE` (30 days) from now

``seq`` counts every recorded transition of the alarm, from 1; a restored alarm carries it on.

The records: :class:`AlarmSnapshot` is an alarm's state with the keys of an ``event.alarm.<name>``
record (:data:`RECORD_KEYS`); :class:`AlarmEvent` is the snapshot taken right after a transition.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from plantd.bus import SampleValue
from plantd.service import OperationError

__all__ = [
    "EVENTS",
    "MAX_SHELVE",
    "RECORD_KEYS",
    "STATES",
    "TRANSITIONS",
    "Alarm",
    "AlarmError",
    "AlarmEvent",
    "AlarmSnapshot",
    "State",
]

State = Literal["normal", "unacknowledged", "acknowledged", "returned"]
STATES: Final[tuple[State, ...]] = ("normal", "unacknowledged", "acknowledged", "returned")
EVENTS: Final = (
    "condition-active",
    "condition-clear",
    "ack",
    "shelve",
    "unshelve",
    "shelve-expiry",
    "suppress",
    "unsuppress",
)
MAX_SHELVE: Final = 30 * 24 * 3600.0

SAME: Final = "="
BY_CONDITION: Final = "by-condition"
REFUSED: Final = "!not-acknowledgeable"
_Rule = tuple[str, str | None]  # (next state | SAME | BY_CONDITION | REFUSED, transition)

_ACTIVE: Final[Mapping[str, _Rule]] = {
    "normal": ("unacknowledged", "raised"),
    "unacknowledged": (SAME, None),
    "acknowledged": (SAME, None),
    "returned": ("unacknowledged", "raised"),
}
_CLEAR: Final[Mapping[str, _Rule]] = {
    "normal": (SAME, None),
    "unacknowledged": ("returned", "cleared"),
    "acknowledged": ("normal", "cleared"),
    "returned": (SAME, None),
}
_ACK: Final[Mapping[str, _Rule]] = {
    "normal": (REFUSED, None),
    "unacknowledged": ("acknowledged", "acknowledged"),
    "acknowledged": (REFUSED, None),
    "returned": ("normal", "acknowledged"),
}


def _every(rule: _Rule) -> dict[str, _Rule]:
    return dict.fromkeys(STATES, rule)


TRANSITIONS: Final[Mapping[str, Mapping[str, _Rule]]] = {
    "condition-active": _ACTIVE,
    "condition-clear": _CLEAR,
    "ack": _ACK,
    "shelve": _every((SAME, "shelved")),
    "unshelve": _every((BY_CONDITION, "unshelved")),
    "shelve-expiry": _every((BY_CONDITION, "shelve-expired")),
    "suppress": _every((SAME, "suppressed")),
    "unsuppress": {**_every((SAME, "unsuppressed")), "returned": ("normal", "unsuppressed")},
}
"""event -> state -> rule. Latching overrides two cells (see :meth:`Alarm._rule`)."""


class AlarmError(OperationError):
    """An alarm operation refused; ``code`` is one of the codes in this module's docstring.
    An :class:`~plantd.service.OperationError`, so a service returns it as an error reply."""


class Alarm:
    """The state of one alarm. Each method applies one event and returns the transition it
    recorded (``"raised"``, ``"acknowledged"``, …) or None when nothing changed."""

    def __init__(
        self,
        name: str,
        *,
        latch: bool = False,
        state: State = "normal",
        condition: bool | None = None,
        shelved_until: float | None = None,
        suppressed: bool = False,
        seq: int = 0,
    ) -> None:
        self.name = name
        self.latch = latch
        self.state: State = state
        # After a restart the condition is not known yet: take it to be what the state shows,
        # so an alarm that was active is not raised again by the first sample that confirms it.
        self.condition = self.active if condition is None else condition
        self.shelved_until = shelved_until
        self.suppressed = suppressed
        self.seq = seq

    @property
    def active(self) -> bool:
        return self.state in ("unacknowledged", "acknowledged")

    @property
    def acknowledged(self) -> bool:
        return self.state in ("normal", "acknowledged")

    @property
    def shelved(self) -> bool:
        return self.shelved_until is not None

    def _rule(self, event: str) -> _Rule:
        if self.latch and self.state == "unacknowledged":
            if event == "condition-clear":
                return (SAME, None)  # held until acknowledged
            if event == "ack" and not self.condition:
                return ("normal", "acknowledged")
        return TRANSITIONS[event][self.state]

    def _apply(self, event: str) -> str | None:
        target, transition = self._rule(event)
        if target == REFUSED:
            raise AlarmError(
                "alarm.not-acknowledgeable",
                f"alarm {self.name!r} is {self.state}: there is nothing to acknowledge",
            )
        if target == BY_CONDITION:
            target = "unacknowledged" if self.condition else "normal"
        if target != SAME:
            self.state = _state(target)
        if transition is not None:
            self.seq += 1
        return transition

    def condition_changed(self, active: bool) -> str | None:
        """The (debounced) condition became active or clear."""
        self.condition = active
        return self._apply("condition-active" if active else "condition-clear")

    def acknowledge(self) -> str | None:
        return self._apply("ack")

    def shelve(self, until: float, now: float) -> str | None:
        if not math.isfinite(until) or until <= now or until - now > MAX_SHELVE:
            raise AlarmError(
                "alarm.bad-duration",
                f"alarm {self.name!r}: shelve for more than 0 s and at most "
                f"{MAX_SHELVE:g} s, got {until - now:g} s",
            )
        self.shelved_until = until
        return self._apply("shelve")

    def unshelve(self) -> str | None:
        if self.shelved_until is None:
            raise AlarmError("alarm.not-shelved", f"alarm {self.name!r} is not shelved")
        self.shelved_until = None
        return self._apply("unshelve")

    def expire(self, now: float) -> str | None:
        """Shelve expiry, if it is due at ``now``."""
        if self.shelved_until is None or now < self.shelved_until:
            return None
        self.shelved_until = None
        return self._apply("shelve-expiry")

    def set_suppressed(self, suppressed: bool) -> str | None:
        if suppressed == self.suppressed:
            return None
        self.suppressed = suppressed
        return self._apply("suppress" if suppressed else "unsuppress")


RECORD_KEYS = (
    "alarm", "point", "type", "priority", "message", "state", "active", "acknowledged",
    "shelved", "shelved_until", "suppressed", "transition", "value", "limit", "time",
    "sample_time", "by", "comment", "seq",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class AlarmSnapshot:
    """An alarm's state as a record (the keys of ``event.alarm.<name>``)."""

    alarm: str
    point: str
    type: str
    priority: str
    message: str
    state: State
    active: bool
    acknowledged: bool
    shelved: bool
    shelved_until: float | None
    suppressed: bool
    transition: str | None
    value: SampleValue
    limit: float | None
    time: float | None
    sample_time: float | None
    by: str
    comment: str
    seq: int

    def to_record(self) -> dict[str, Any]:
        record = {key: getattr(self, key) for key in RECORD_KEYS}
        record["by"] = self.by or None  # a transition nobody made (raised, cleared): null
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> AlarmSnapshot:
        """The inverse of :meth:`to_record`; ValueError if ``record`` is not one."""
        missing = [key for key in RECORD_KEYS if key not in record]
        if missing:
            raise ValueError(f"not an alarm record: missing {', '.join(missing)}")
        if record["state"] not in STATES:
            raise ValueError(f"not an alarm state: {record['state']!r}")
        return cls(
            **{key: record[key] for key in RECORD_KEYS if key != "by"}, by=record["by"] or ""
        )


@dataclass(frozen=True, slots=True)
class AlarmEvent(AlarmSnapshot):
    """One transition of one alarm (``transition`` is always set)."""


def _state(name: str) -> State:
    for state in STATES:
        if state == name:
            return state
    raise ValueError(f"not an alarm state: {name!r}")
