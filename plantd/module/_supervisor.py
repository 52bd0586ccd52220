"""What a module does about its driver's readings and failures, as a sans-IO state machine.

The supervisor reads no clock and awaits nothing: the asyncio shell
(:class:`~plantd.module._runtime.ModuleRuntime`) tells it what happened — the driver opened or
failed to, a group's readings or a driver failure, a poll that finished — with the time
(``now``, from the runtime's injected clock), and carries out the actions it answers: record
these readings, mark these points bad, drop the connection, reconnect or retry a stream after
so long, log this. Each rule is written here once, for polled and pushed groups alike:

  R1  The driver opened: every group's poll schedule starts again from now, on a grid of its
      own (the counters stay).
  R2  ``open()`` failed: every point is bad (``unavailable: REASON``); the next attempt comes
      after the connection's backoff (:class:`Connection`: doubling, jittered, capped).
  R3  A failure says the connection is gone (``DeviceUnavailable``, a read that hung past the
      hard timeout, a stream that ended): every point is bad (``unavailable: REASON``) and the
      connection is dropped, once per connection however many groups say so; once the driver
      is closed, the next attempt comes after the backoff.
  R4  Any driver failure of a group counts a failure and marks the group's points bad with its
      reason: ``device fault: …`` (the device refused; the connection is fine), the reason of
      R3, or ``driver error: …`` (the driver raised what it should not have: a bug). The first
      failure since the group last read well is logged (a bug with its traceback); the
      repeats are not.
  R5  Readings: a polled group's answer is recorded whole (points it left out are bad); a
      pushed group's delivery records only the points of the group it names, as one batch.
  R6  A group that reads well after failing has recovered: logged once, its error cleared.
  R7  A stream that failed other than by R3 is opened again after the group's interval, but
      not sooner than :data:`STREAM_RETRY_MIN`.
  R8  Polls keep to drift-free deadlines; a late poll skips the deadlines it missed and
      counts them as overruns (:class:`Schedule`).

The Modbus driver's per-unit circuit breaker (a unit quarantined while the others are read)
lives in the driver: to the runtime, a quarantined unit is a group whose points came back bad.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from plantd.errors import DeviceFault, DeviceUnavailable
from plantd.module._config import GroupConfig, ModuleConfig
from plantd.module._connection import Connection
from plantd.module._driver import Reading
from plantd.module._schedule import Schedule

__all__ = [
    "HARD_TIMEOUT_MIN",
    "STREAM_RETRY_MIN",
    "Action",
    "Disconnect",
    "DriverFailure",
    "FailureKind",
    "GroupStats",
    "Log",
    "MarkBad",
    "Reconnect",
    "RecordDelivery",
    "RecordGroup",
    "RetryStream",
    "Supervisor",
    "describe",
]

HARD_TIMEOUT_MIN = 30.0
"""A driver call that takes longer than this (a read: ten intervals, if longer) is treated as
a dead connection. Drivers have their own, much shorter, timeouts; this only guards against a
driver that hangs."""

STREAM_RETRY_MIN = 1.0
"""The shortest wait before a failed stream is opened again (R7)."""


class FailureKind(enum.Enum):
    """What a driver failure means for the module."""

    UNAVAILABLE = "unavailable"  # the connection is gone: R3
    FAULT = "fault"  # the device refused; the connection is fine
    BUG = "bug"  # the driver raised what no driver should


@dataclass(frozen=True)
class DriverFailure:
    """One failure of a driver call, classified: its kind, the reason the points carry, and
    (for a bug) the exception, whose traceback is logged."""

    kind: FailureKind
    reason: str
    error: BaseException | None = None
    counted_as: str = "other"
    """The ``kind`` of ``plantd_module_errors_total`` it counts as: ``timeout`` (the hard
    timeout), ``connection``, ``device`` (a fault) or ``other`` (a bug)."""

    @classmethod
    def of(cls, exc: BaseException, *, hard_timeout: float | None = None) -> DriverFailure:
        """Classify ``exc`` raised by a driver call. ``hard_timeout``: the call was a read
        guarded by that timeout, so a ``TimeoutError`` means the driver did not answer."""
        if isinstance(exc, DeviceUnavailable):
            return cls(FailureKind.UNAVAILABLE, describe(exc), counted_as="connection")
        if hard_timeout is not None and isinstance(exc, TimeoutError):
            reason = f"the driver did not answer within {hard_timeout:g} s"
            return cls(FailureKind.UNAVAILABLE, reason, counted_as="timeout")
        if isinstance(exc, DeviceFault):
            return cls(FailureKind.FAULT, f"device fault: {exc}", counted_as="device")
        return cls(FailureKind.BUG, f"driver error: {describe(exc)}", exc)


# -- actions: what the shell is to do ------------------------------------------------------------


@dataclass(frozen=True)
class RecordGroup:
    """Record a polled group's answer in the point table (and publish what changed)."""

    group: GroupConfig
    readings: Mapping[str, Reading]


@dataclass(frozen=True)
class RecordDelivery:
    """Record these readings of a pushed group, stamped ``at`` if they have no timestamp, and
    publish what changed as one batch."""

    readings: tuple[tuple[str, Reading], ...]
    at: float


@dataclass(frozen=True)
class MarkBad:
    """Mark these points bad with ``reason`` (until they are read again)."""

    points: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class Disconnect:
    """The connection is gone: stop reading, close the driver, then ask :meth:`Supervisor.closed`
    when to reconnect."""

    reason: str


@dataclass(frozen=True)
class Reconnect:
    """Open the driver again after ``after`` seconds (unless stopped first)."""

    after: float


@dataclass(frozen=True)
class RetryStream:
    """Open the stream of group ``group`` again after ``after`` seconds (R7)."""

    group: str
    after: float


@dataclass(frozen=True)
class Log:
    """Log ``message % args`` at ``level``, with the traceback of ``error`` if there is one."""

    level: int
    message: str
    args: tuple[Any, ...]
    error: BaseException | None = None


Action = RecordGroup | RecordDelivery | MarkBad | Disconnect | Reconnect | RetryStream | Log
"""Everything the supervisor may ask of the shell."""


class GroupStats:
    """How one group fares: its schedule, failures, last error and deliveries (its part of
    the module's ``status``)."""

    __slots__ = (
        "deliveries",
        "error",
        "failures",
        "last_delivery",
        "last_duration",
        "last_poll",
        "pushed",
        "schedule",
    )

    def __init__(self, schedule: Schedule, *, pushed: bool = False) -> None:
        self.schedule = schedule
        self.pushed = pushed
        self.failures = 0
        self.error: str | None = None  # why the group fails now (None: it reads well)
        self.last_poll: float | None = None  # wall time
        self.last_duration: float | None = None
        self.deliveries = 0  # mappings a pushed group's stream yielded
        self.last_delivery: float | None = None  # wall time

    def as_status(self) -> dict[str, Any]:
        """The group's entry in the module's ``status``."""
        return {
            "mode": "push" if self.pushed else "poll",
            "deliveries": self.deliveries,
            "last_delivery": self.last_delivery,
            "interval": self.schedule.interval,
            "polls": self.schedule.polls,
            "overruns": self.schedule.overruns,
            "failures": self.failures,
            "error": self.error,
            "last_poll": self.last_poll,
            "last_duration": self.last_duration,
        }


class Supervisor:
    """The rules R1–R8 for one module (see the module doc). Times are the caller's: ``now``
    is monotonic, ``at`` and ``wall`` are wall time (what leaves the process)."""

    def __init__(self, module: ModuleConfig, connection: Connection) -> None:
        self.module = module
        self.connection = connection
        self.stats: dict[str, GroupStats] = {}
        self.connected = False
        self.lost_reason = ""
        # Failed driver calls by the kind they count as (DriverFailure.counted_as): plain ints,
        # read by the metrics collector (plantd.module._metrics).
        self.errors: dict[str, int] = {}
        self._points = tuple(point.name for group in module.groups for point in group.points)
        self._group_points = {
            group.name: tuple(point.name for point in group.points) for group in module.groups
        }

    # -- the connection (R1–R3) ----------------------------------------------------------------

    def start(self, now: float, pushed: Collection[str] = ()) -> None:
        """The module starts: a schedule for every group (``pushed`` names the groups the driver
        pushes), and the connection is being made."""
        self.connection.connecting(now)
        for group in self.module.groups:
            self.stats[group.name] = GroupStats(
                Schedule(group.interval, now), pushed=group.name in pushed
            )

    def opening(self, now: float) -> None:
        """An attempt to open the driver begins."""
        self.connection.connecting(now)

    def opened(self, now: float) -> list[Action]:
        """The driver opened (R1): reading may begin."""
        self.connection.connected(now)
        for stats in self.stats.values():
            stats.schedule.restart(now)
        self.connected = True
        self.lost_reason = ""
        return []

    def open_failed(self, now: float, reason: str, counted_as: str = "connection") -> list[Action]:
        """The driver did not open (R2); the shell has closed it. ``counted_as``: the error
        kind of the failure (:attr:`DriverFailure.counted_as`)."""
        self.errors[counted_as] = self.errors.get(counted_as, 0) + 1
        return [
            MarkBad(self._points, f"unavailable: {reason}"),
            Reconnect(self.connection.failed(now, reason)),
        ]

    def lost(self, reason: str) -> list[Action]:
        """Something says the connection is gone (R3): a write, or a failure of a read."""
        if not self.connected:
            return []  # already dropped: one loss per connection
        self.connected = False
        self.lost_reason = reason
        return [Disconnect(reason), MarkBad(self._points, f"unavailable: {reason}")]

    def closed(self, now: float) -> list[Action]:
        """The driver was closed after a loss (R3): when to try again."""
        return [Reconnect(self.connection.failed(now, self.lost_reason))]

    def stopping(self) -> None:
        """The module stops: nothing read from now on counts as a loss."""
        self.connected = False

    # -- polled groups (R4–R6, R8) ---------------------------------------------------------------

    @staticmethod
    def read_timeout(group: GroupConfig) -> float:
        """How long a read of ``group`` may take before the connection counts as lost."""
        return max(HARD_TIMEOUT_MIN, group.interval * 10)

    def poll_wait(self, group: GroupConfig, now: float) -> float:
        """Seconds until ``group``'s next poll is due (zero or less: due now)."""
        return self.stats[group.name].schedule.deadline - now

    def read(self, group: GroupConfig, readings: Mapping[str, Reading]) -> list[Action]:
        """The driver answered a read of ``group`` (R5, R6)."""
        return [RecordGroup(group, readings), *self._recovered(group)]

    def read_failed(self, group: GroupConfig, exc: BaseException) -> list[Action]:
        """A read of ``group`` raised ``exc`` (R3, R4); a ``TimeoutError`` is the hard timeout."""
        return self.failed(group, DriverFailure.of(exc, hard_timeout=self.read_timeout(group)))

    def polled(self, group: GroupConfig, started: float, now: float, wall: float) -> None:
        """A scheduled poll of ``group`` that began at ``started`` ended at ``now`` (R8)."""
        stats = self.stats[group.name]
        stats.last_duration = now - started
        stats.last_poll = wall
        stats.schedule.polled(now)

    # -- pushed groups (R3–R7) -------------------------------------------------------------------

    def delivered(
        self, group: GroupConfig, readings: Mapping[str, Reading], at: float
    ) -> list[Action]:
        """``group``'s stream yielded ``readings`` at wall time ``at`` (R5, R6)."""
        names = self._group_points[group.name]
        named = tuple((name, reading) for name, reading in readings.items() if name in names)
        stats = self.stats[group.name]
        stats.deliveries += 1
        stats.last_delivery = at
        return [RecordDelivery(named, at), *self._recovered(group)]

    def stream_failed(self, group: GroupConfig, exc: BaseException) -> list[Action]:
        """``group``'s stream raised ``exc`` (R3, R4, R7)."""
        failure = DriverFailure.of(exc)
        actions = self.failed(group, failure)
        if failure.kind is not FailureKind.UNAVAILABLE:
            actions.append(RetryStream(group.name, max(group.interval, STREAM_RETRY_MIN)))
        return actions

    def stream_ended(self, group: GroupConfig) -> list[Action]:
        """``group``'s stream ended by itself: the connection behind it is gone (R3)."""
        return self.stream_failed(group, DeviceUnavailable("the driver's stream ended"))

    # -- any group ------------------------------------------------------------------------------

    def failed(self, group: GroupConfig, failure: DriverFailure) -> list[Action]:
        """A driver call for ``group`` failed (R4, and R3 if the connection is gone)."""
        stats = self.stats[group.name]
        actions: list[Action] = []
        if stats.error is None:
            if failure.kind is FailureKind.BUG:
                actions.append(
                    Log(
                        logging.ERROR,
                        "module %s: group %s: driver error",
                        (self.module.name, group.name),
                        failure.error,
                    )
                )
            actions.append(
                Log(
                    logging.WARNING,
                    "module %s: group %s failing: %s",
                    (self.module.name, group.name, failure.reason),
                )
            )
        stats.failures += 1
        stats.error = failure.reason
        self.errors[failure.counted_as] = self.errors.get(failure.counted_as, 0) + 1
        actions.append(MarkBad(self._group_points[group.name], failure.reason))
        if failure.kind is FailureKind.UNAVAILABLE:
            actions.extend(self.lost(failure.reason))
        return actions

    def _recovered(self, group: GroupConfig) -> list[Action]:
        stats = self.stats[group.name]
        if stats.error is None:
            return []
        stats.error = None
        return [
            Log(logging.WARNING, "module %s: group %s recovered", (self.module.name, group.name))
        ]


def describe(exc: BaseException) -> str:
    """``Type: message`` (or just ``Type``) of an exception, as failures are reported."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
