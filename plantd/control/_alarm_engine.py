"""Every configured alarm: samples and operator actions in, :class:`AlarmEvent` records out.

Sans-IO: the process feeds it bus samples (``observe``), ticks it at :meth:`AlarmEngine.next_due`
(on/off delays, shelve expiry), sets suppression from each alarm's evaluated ``suppress_when``,
and passes operators' ack/shelve/unshelve through; it publishes each returned event on
``event.alarm.<name>`` and hands the same events to the ``AlarmStore`` so the state outlives a
restart (``AlarmEngine(alarms, store.load())``).

Each alarm is an :class:`~plantd.control._alarm.Alarm` (the ISA-18.2 state machine) fed by a
:class:`~plantd.control._conditions.Condition` (detection, deadband, delays). A snapshot is
the record of an alarm's last transition (``transition`` None and ``seq`` 0 if it never had
one); an event is a snapshot taken right after a transition.

Restoring (``restored``, from ``AlarmStore.load()``): an alarm takes its state, flags and ``seq``
from its snapshot; a snapshot of an alarm no longer configured is ignored, and an alarm without
one starts ``normal``. A restored active alarm is taken to still have its condition until a
sample says otherwise (no second raise). A shelf that ran out while the process was down expires
at the first tick. A suppression is kept only if the alarm still has a ``suppress_when`` (which
the process evaluates again); without one nothing would ever lift it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from plantd.bus import Sample, SampleValue
from plantd.control._alarm import (
    RECORD_KEYS,
    Alarm,
    AlarmError,
    AlarmEvent,
    AlarmSnapshot,
)
from plantd.control._alarm_config import AlarmConfig
from plantd.control._conditions import Condition

# The records and the error are defined in ``_alarm``; they are named here too, beside the
# engine that makes them.
__all__ = ["RECORD_KEYS", "AlarmEngine", "AlarmError", "AlarmEvent", "AlarmSnapshot"]

_S = TypeVar("_S", bound=AlarmSnapshot)


@dataclass(slots=True)
class _Entry:
    config: AlarmConfig
    alarm: Alarm
    condition: Condition
    time: float | None = None
    transition: str | None = None
    by: str = ""
    comment: str = ""


def _restore(config: AlarmConfig, snapshot: AlarmSnapshot | None) -> _Entry:
    if snapshot is None:
        alarm = Alarm(config.name, latch=config.latch)
        return _Entry(config, alarm, Condition(config.detection))
    alarm = Alarm(
        config.name,
        latch=config.latch,
        state=snapshot.state,
        shelved_until=snapshot.shelved_until,
        # only an alarm with a suppress_when is ever unsuppressed again (by the process)
        suppressed=snapshot.suppressed and config.suppress_when is not None,
        seq=snapshot.seq,
    )
    condition = Condition(config.detection, active=alarm.condition)
    condition.value, condition.sample_time = snapshot.value, snapshot.sample_time
    entry = _Entry(config, alarm, condition, snapshot.time, snapshot.transition)
    entry.by, entry.comment = snapshot.by, snapshot.comment
    return entry


class AlarmEngine:
    def __init__(
        self, alarms: Sequence[AlarmConfig], restored: Mapping[str, AlarmSnapshot] | None = None
    ) -> None:
        restored = restored or {}
        self._entries = {a.name: _restore(a, restored.get(a.name)) for a in alarms}
        self._by_point: dict[str, list[_Entry]] = {}
        for entry in self._entries.values():
            for point in entry.condition.inputs:
                self._by_point.setdefault(point, []).append(entry)
        self.inputs = frozenset(self._by_point)
        # Alarms with time of their own to keep (a delay running, a shelving to expire): only
        # these are ticked, so a tick costs what is pending, not every alarm configured. At
        # first all of them, so that restored ones settle.
        self._timed: dict[str, _Entry] = dict(self._entries)

    # -- samples and time ----------------------------------------------------------------

    def observe(self, point: str, sample: Sample, now: float) -> list[AlarmEvent]:
        events: list[AlarmEvent] = []
        for entry in self._by_point.get(point, ()):
            changed = entry.condition.observe(point, sample, now)
            if changed is not None:
                self._note(events, entry, entry.alarm.condition_changed(changed), now)
            self._track(entry)
        return events

    def tick(self, now: float) -> list[AlarmEvent]:
        events: list[AlarmEvent] = []
        for entry in list(self._timed.values()):
            changed = entry.condition.tick(now)
            if changed is not None:
                self._note(events, entry, entry.alarm.condition_changed(changed), now)
            self._note(events, entry, entry.alarm.expire(now), now)
            self._track(entry)
        return events

    def next_due(self) -> float | None:
        due = [
            t
            for entry in self._timed.values()
            for t in (entry.condition.next_due(), entry.alarm.shelved_until)
            if t is not None
        ]
        return min(due, default=None)

    # -- operators and suppression -------------------------------------------------------

    def set_suppressed(self, name: str, suppressed: bool, now: float) -> list[AlarmEvent]:
        entry = self._entry(name)
        return self._note([], entry, entry.alarm.set_suppressed(suppressed), now)

    def acknowledge(self, name: str, by: str, now: float, comment: str = "") -> list[AlarmEvent]:
        entry = self._entry(name)
        return self._note([], entry, entry.alarm.acknowledge(), now, by=by, comment=comment)

    def shelve(
        self, name: str, by: str, until: float, now: float, reason: str = ""
    ) -> list[AlarmEvent]:
        entry = self._entry(name)
        return self._note([], entry, entry.alarm.shelve(until, now), now, by=by, comment=reason)

    def unshelve(self, name: str, by: str, now: float) -> list[AlarmEvent]:
        entry = self._entry(name)
        return self._note([], entry, entry.alarm.unshelve(), now, by=by)

    def snapshots(self) -> list[AlarmSnapshot]:
        return [_snapshot(AlarmSnapshot, entry) for entry in self._entries.values()]

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise AlarmError("alarm.unknown", f"no alarm named {name!r}") from None

    def _note(
        self,
        events: list[AlarmEvent],
        entry: _Entry,
        transition: str | None,
        now: float,
        *,
        by: str = "",
        comment: str = "",
    ) -> list[AlarmEvent]:
        if transition is not None:
            entry.time, entry.transition, entry.by, entry.comment = now, transition, by, comment
            events.append(_snapshot(AlarmEvent, entry))
        self._track(entry)
        return events

    def _track(self, entry: _Entry) -> None:
        condition = entry.condition
        if (
            condition.next_due() is not None
            or entry.alarm.shelved_until is not None
            or condition.raw != condition.active
        ):
            self._timed[entry.config.name] = entry
        else:
            self._timed.pop(entry.config.name, None)


def _snapshot(cls: type[_S], entry: _Entry) -> _S:
    alarm, config, condition = entry.alarm, entry.config, entry.condition
    return cls(
        alarm=config.name,
        point=config.point,
        type=config.type,
        priority=config.priority,
        message=config.message,
        state=alarm.state,
        active=alarm.active,
        acknowledged=alarm.acknowledged,
        shelved=alarm.shelved,
        shelved_until=alarm.shelved_until,
        suppressed=alarm.suppressed,
        transition=entry.transition,
        value=_json_value(condition.value),
        limit=config.limit,
        time=entry.time,
        sample_time=condition.sample_time,
        by=entry.by,
        comment=entry.comment,
        seq=alarm.seq,
    )


def _json_value(value: SampleValue) -> SampleValue:
    """NaN and infinities are not JSON: a record carries them as null (no value)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
