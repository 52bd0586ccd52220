"""``plantd-control``'s MDP services: ``org.plantd.Alarms`` and ``org.plantd.Control``.

``org.plantd.Alarms``
  ``list``      ``{"state": "all"|"active"|"unacknowledged", "priority": P}``: every alarm's
                current state (the ``event.alarm.*`` record keys), most urgent first.
  ``ack``       ``{"alarm": NAME}`` or ``{"alarms": [NAME, …]}``, ``"comment"``: acknowledge;
                answered once the acknowledgement is on disk.
  ``shelve``    ``{"alarm": NAME, "duration": SECONDS, "reason": TEXT}``: no annunciation until
                it expires (or ``unshelve``).
  ``unshelve``  ``{"alarm": NAME}``.
  ``history``   ``{"since": T, "until": T, "alarm": NAME, "limit": N}``: past events, newest
                first (``limit`` default 100, at most 10,000).

``org.plantd.Control``
  ``list``      ``{"loops": […], "interlocks": […], "calc": […], "status": {…}}``.
  ``mode``      ``{"loop": NAME, "mode": "auto"|"manual", "output": V}``.
  ``setpoint``  ``{"loop": NAME, "value": V}``.
  ``output``    ``{"loop": NAME, "value": V}``: a manual loop's output.
  ``reset``     ``{"interlock": NAME}``: release a tripped interlock whose condition is gone.

Who acknowledged, shelved or changed something is the caller's principal (the broker's
User-Id; ``user.ada`` through the proxy), recorded in the event and the audit trail.
Errors: ``alarm.*`` and ``control.*`` (docs/errors.md), ``bad-request``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from plantd.control._alarm import AlarmError
from plantd.control._loops import ControlError
from plantd.errors import PlantdError
from plantd.service import (
    Json,
    OperationError,
    Params,
    ServiceDefinition,
    current_caller,
    optional_text,
    optional_time,
    param,
)

if TYPE_CHECKING:
    from plantd.control._process import ControlProcess

__all__ = ["ALARMS_SERVICE", "CONTROL_SERVICE", "alarms_service", "control_service"]

ALARMS_SERVICE = "org.plantd.Alarms"
CONTROL_SERVICE = "org.plantd.Control"
_PRIORITIES = ("urgent", "high", "medium", "low")
_MAX_HISTORY = 10_000


def _caller() -> str:
    return current_caller() or "local"  # without CURVE nobody is named


def _mapped(exc: PlantdError) -> OperationError:
    code = getattr(exc, "code", "bad-request")
    return OperationError(str(code), str(getattr(exc, "message", exc)))


def alarms_service(process: ControlProcess) -> ServiceDefinition:
    # The alarm engine's errors (AlarmError) are OperationErrors: answered with their code.
    definition = ServiceDefinition(ALARMS_SERVICE, "Alarms: current state, acknowledge, shelve.")

    @definition.operation("list", access="read")
    async def _list(params: Params) -> Json:
        """Every alarm's current state (``state``: all, active or unacknowledged)."""
        state = param(params, "state", str, "all")
        if state not in ("all", "active", "unacknowledged"):
            raise OperationError(
                "bad-request",
                f"params.state: expected 'all', 'active' or 'unacknowledged', got {state!r}",
            )
        priority = optional_text(params, "priority")
        if priority is not None and priority not in _PRIORITIES:
            raise OperationError(
                "bad-request", f"params.priority: expected one of {_PRIORITIES}, got {priority!r}"
            )
        return _listed(process, state, priority)

    @definition.operation("ack", access="operate")
    async def _ack(params: Params) -> Json:
        """Acknowledge ``alarm`` (or every one of ``alarms``), with an optional ``comment``."""
        names = param(params, "alarms", list, None)
        if names is None:
            names = [param(params, "alarm", str)]
        if not names or not all(isinstance(name, str) for name in names):
            raise OperationError("bad-request", "params.alarms: expected a list of alarm names")
        comment = optional_text(params, "comment") or ""
        events = await _acknowledge(process, names, comment)
        return [event.to_record() for event in events]

    @definition.operation("shelve", access="operate")
    async def _shelve(params: Params) -> Json:
        """Shelve ``alarm`` for ``duration`` seconds (with a ``reason``)."""
        name = param(params, "alarm", str)
        duration = float(param(params, "duration", (int, float)))
        if not math.isfinite(duration):
            raise OperationError("alarm.bad-duration", f"duration {duration} is not finite")
        reason = optional_text(params, "reason") or ""
        now = process.clock.now()
        events = process.alarms.shelve(name, _caller(), now + duration, now, reason)
        await _stored(process, events)
        return [event.to_record() for event in events]

    @definition.operation("unshelve", access="operate")
    async def _unshelve(params: Params) -> Json:
        """End the shelving of ``alarm``."""
        name = param(params, "alarm", str)
        events = process.alarms.unshelve(name, _caller(), process.clock.now())
        await _stored(process, events)
        return [event.to_record() for event in events]

    @definition.operation("history", access="read")
    async def _history(params: Params) -> Json:
        """Past alarm events, newest first (``since``, ``until``, ``alarm``, ``limit``)."""
        since = optional_time(params, "since") or 0.0
        until = optional_time(params, "until")
        until = process.clock.now() if until is None else until
        if since > until:
            raise OperationError("bad-request", f"since ({since}) is after until ({until})")
        limit = param(params, "limit", int, 100)
        if not 1 <= limit <= _MAX_HISTORY:
            raise OperationError(
                "bad-request", f"params.limit: expected 1 to {_MAX_HISTORY}, got {limit}"
            )
        alarm = optional_text(params, "alarm")
        return await process.store.history(since=since, until=until, alarm=alarm, limit=limit)

    return definition


async def _acknowledge(process: ControlProcess, names: list[str], comment: str) -> list[Any]:
    """Acknowledge every alarm of ``names``; the events, once stored.

    Names are checked first, so that a list with one typo changes nothing. Of several alarms,
    one acknowledged meanwhile (by someone else) is no reason to refuse the rest; one alone is
    answered with why.
    """
    known = {snapshot.alarm for snapshot in process.alarms.snapshots()}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise OperationError("alarm.unknown", f"no alarm named {', '.join(map(repr, unknown))}")
    now, by = process.clock.now(), _caller()
    events: list[Any] = []
    for name in names:
        try:
            events.extend(process.alarms.acknowledge(name, by, now, comment))
        except AlarmError as exc:
            if len(names) == 1 or exc.code != "alarm.not-acknowledgeable":
                await _stored(process, events)
                raise
    await _stored(process, events)
    return events


def _json_number(value: Any) -> Any:
    """NaN and infinities are not JSON: a value that is not a finite number is null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _listed(process: ControlProcess, state: str, priority: str | None) -> Json:
    """The alarms in ``state`` (and of ``priority``), most urgent and newest first."""
    records = [snapshot.to_record() for snapshot in process.alarms.snapshots()]
    if state == "active":
        records = [r for r in records if r["active"]]
    elif state == "unacknowledged":
        records = [r for r in records if not r["acknowledged"]]
    if priority is not None:
        records = [r for r in records if r["priority"] == priority]
    records.sort(key=lambda r: (_PRIORITIES.index(r["priority"]), -(r["time"] or 0)))
    return records


async def _stored(process: ControlProcess, events: list[Any]) -> None:
    try:
        await process.recorder.submit(events)
    except PlantdError as exc:
        raise OperationError(
            "alarm.not-stored", f"done, but not yet on disk (the store will try again): {exc}"
        ) from exc


def control_service(process: ControlProcess) -> ServiceDefinition:
    definition = ServiceDefinition(
        CONTROL_SERVICE, "Control loops, interlocks and calculated points."
    )

    def engine_call(func: Any, *args: Any, **kwargs: Any) -> Json:
        try:
            events = func(*args, **kwargs)
        except ControlError as exc:
            raise _mapped(exc) from exc
        process.publish_control_events(events)
        process.wake()
        return list(events)

    def number(params: Params, key: str) -> float:
        value = float(param(params, key, (int, float)))
        if not math.isfinite(value):
            raise OperationError("bad-request", f"params.{key}: expected a finite number")
        return value

    @definition.operation("list", access="read")
    async def _list(params: Params) -> Json:
        """Every loop, interlock and calculation, with its live state."""
        status = process.loops.status()
        return {
            "loops": [entry for entry in status if entry.get("kind", "loop") == "loop"],
            "interlocks": [entry for entry in status if entry.get("kind") == "interlock"],
            "calc": [
                {**row, "point": f"calc.{row['name']}", "value": _json_number(row["value"])}
                for row in process.calc.status()
            ],
            "status": process.status(),
        }

    @definition.operation("mode", access="operate")
    async def _mode(params: Params) -> Json:
        """Put ``loop`` in ``mode`` auto or manual (manual with an ``output`` if given)."""
        loop, mode = param(params, "loop", str), param(params, "mode", str)
        if mode not in ("auto", "manual"):
            raise OperationError(
                "bad-request", f"params.mode: expected 'auto' or 'manual', got {mode!r}"
            )
        output = number(params, "output") if params.get("output") is not None else None
        now = process.clock.now()
        return engine_call(process.loops.set_mode, loop, mode, _caller(), now, output=output)

    @definition.operation("setpoint", access="operate")
    async def _setpoint(params: Params) -> Json:
        """Change ``loop``'s setpoint to ``value`` (ramped if the loop ramps)."""
        loop, value = param(params, "loop", str), number(params, "value")
        return engine_call(process.loops.set_setpoint, loop, value, _caller(), process.clock.now())

    @definition.operation("output", access="operate")
    async def _output(params: Params) -> Json:
        """Set a manual ``loop``'s output to ``value``."""
        loop, value = param(params, "loop", str), number(params, "value")
        return engine_call(process.loops.set_output, loop, value, _caller(), process.clock.now())

    @definition.operation("reset", access="operate")
    async def _reset(params: Params) -> Json:
        """Release ``interlock`` once its condition is gone."""
        name = param(params, "interlock", str)
        return engine_call(process.loops.reset, name, _caller(), process.clock.now())

    return definition
