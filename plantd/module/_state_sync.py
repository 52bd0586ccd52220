"""Keeping a module's status (and, if its file asks, its last values) in the state service.

What is saved. Scope ``org.plantd.module.NAME`` holds the key ``status``: what the module's
``status`` operation answers, plus ``saved_at`` (Unix time of the save). Last values are not
saved by default: the module's ``read`` operation answers them live, and the historian keeps
them on disk. With ``state_values: true`` in the module file, every point published since the
last save (only those: the deadband that spares the bus spares the flash) is saved too, as
``value.<point>``: the latest reading per point, in batches the state service applies
atomically.

When. Every ``state_interval`` the task looks at the module. The status is written only when
what a reader needs from it changed since the last successful save, or when that save is
:data:`HEARTBEAT` (60 s) old — so while a module runs and the state service takes its saves,
``saved_at`` is never older than a minute. What a reader needs is :func:`status_summary`: the
connection's state, last error and number of connections made, the number of bad points,
each group's error and overrun count, and the driver's own states and errors (the
non-numeric parts of ``driver_status``); the module's identity (name, driver, description,
``up_since``, points, groups) does not change while it runs. What moves with every poll —
``polls``, ``published``, ``suppressed``, ``last_poll``, durations, the time in the current
state, the failed attempts while the connection stays down, a group's failure count while its
error stays the same, and every number in ``driver_status`` (reads, frames, bytes,
notifications, timers) — is not a change: it is saved along with the next status written, and
is as fresh as its ``saved_at``.

Pacing. One save at a time: the next look comes one interval after a save *ends*, so a state
service that answers slowly gets fewer saves, never overlapping ones, and what changed
meanwhile is folded into the next (newer readings of a point replace older ones, so the
backlog is bounded by the number of points). A save that fails (the state service is down, or
it did not answer within the client timeout) keeps everything for the next attempt, which
waits a backoff doubling from ``state_interval`` up to 30 s. The first failure is logged once,
the recovery once; the attempts in between at debug level. None of this touches polling.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from typing import Any, Protocol

from plantd.bus import Quality
from plantd.client import AsyncClient
from plantd.config import PlantdConfig
from plantd.errors import RemoteProtocolError, RequestError, ServiceError
from plantd.module._points import LastValue
from plantd.module._runtime import ModuleRuntime
from plantd.runtime import set_within
from plantd.security import Credentials
from plantd.state import StateClient

__all__ = ["HEARTBEAT", "StateStore", "StateSync", "status_summary"]

log = logging.getLogger(__name__)

# The status is written again after this long even when nothing a reader needs changed, so that
# a reader can tell a current status from a stale one: ``saved_at`` older than two heartbeats
# means the module is gone or cannot reach the state service. A minute is what a person
# looking at `plant state get` or a dashboard still calls current (anything that matters is
# written at the next interval anyway; the heartbeat only refreshes counters and saved_at),
# and it makes a steady module's status one commit a minute instead of one a second: 1,440
# fsyncs a day on the flash instead of 86,400, and nothing the state service's CPU notices.
HEARTBEAT = 60.0

_BATCH_OPS = 500  # below the state service's default max_batch_ops (1000)
_BACKOFF_MAX = 30.0  # the longest wait between two failed attempts
_STOP_GRACE = 2.0  # how long a save in flight may go on once the module stops

_SAVE_FAILED = (RequestError, RemoteProtocolError, TimeoutError)
_BAD = Quality.BAD


class StateStore(Protocol):
    """What the sync needs of :class:`~plantd.state.StateClient` (tests pass a fake)."""

    async def create_scope(self, scope: str) -> Any: ...

    async def batch(self, ops: list[dict[str, Any]]) -> Any: ...


def status_summary(runtime: ModuleRuntime) -> dict[str, Any]:
    """The parts of ``runtime.status()`` whose change is worth a write (see the module doc).

    Read from the runtime rather than from ``status()``: this runs at every look, and
    ``status()`` costs a quarter of a millisecond per thousand points (it counts bad points by
    their label); the status itself is built only when it is written. Its identity (name,
    driver, description, ``up_since``, point count, each group's mode and interval) does not
    change while the process runs, and the first save always writes the status.
    """
    connection = runtime.connection
    try:
        driver_status = runtime.driver.status()
    except Exception as exc:  # as status() does: the status must answer even when the driver cannot
        driver_status = {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "connection": [connection.state.value, connection.last_error, connection.connects],
        "bad_points": sum(1 for last in runtime.table.last.values() if last.quality is _BAD),
        "groups": {
            name: [stats.error, stats.schedule.overruns] for name, stats in runtime.stats.items()
        },
        "driver": _states(driver_status),
    }


def _states(value: Any) -> Any:
    """``value`` with every number replaced by ``"#"``: what is left are states and errors.
    (A key that appears, or a None that becomes a number, still counts as a change.)"""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return "#"
    if isinstance(value, Mapping):
        return {str(key): _states(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_states(item) for item in value]
    return str(value)


class StateSync:
    """The module's state task: run alongside the runtime (``runtime.run(sink, sync)``).

    ``credentials`` are the module's own when a host runs several modules in one process
    (None: the process's identity); ``state`` replaces the state service (tests pass a fake);
    ``heartbeat`` is how old the saved status may grow while nothing in it changes. The sync
    keeps its runtime's clock (``runtime.clock``) for its intervals, backoff, heartbeat and
    ``saved_at``; only the grace a save in flight gets at stop is real time.
    """

    def __init__(
        self,
        config: PlantdConfig,
        runtime: ModuleRuntime,
        *,
        credentials: Credentials | None = None,
        state: StateStore | None = None,
        heartbeat: float = HEARTBEAT,
    ) -> None:
        self.config = config
        self.runtime = runtime
        self.clock = runtime.clock
        self.scope = runtime.service  # org.plantd.module.NAME
        self.interval = runtime.module.state_interval
        self.save_values = runtime.module.state_values
        self.heartbeat = heartbeat
        self.looks = 0  # intervals elapsed (a look may find nothing to save)
        self.saves = 0  # successful saves
        self.failures = 0  # failed attempts
        self.status_writes = 0
        self.value_writes = 0
        self._credentials = credentials  # None: the process's identity
        self._state = state
        self._pending: dict[str, LastValue] = {}
        self._scope_ready = False
        self._saved_summary: dict[str, Any] | None = None
        self._status_saved_at: float | None = None  # clock.monotonic() of the last status written
        self._failing_since: float | None = None
        self._attempts_failed = 0
        self._deadline: asyncio.Timeout | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rng = random.Random()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Stop after one last save of what is due; a save in flight gets 2 s more at most."""
        self._stopping.set()
        if self._deadline is not None and self._loop is not None:
            self._deadline.reschedule(self._loop.time() + _STOP_GRACE)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._state is not None:
            await self._run(self._state)
            return
        timeout = max(2.0, self.config.client.timeout)
        async with AsyncClient.from_config(
            self.config.broker.endpoint,
            self.config.client,
            retries=0,
            timeout=timeout,
            credentials=self._credentials,
        ) as client:
            await self._run(StateClient(client))

    async def _run(self, state: StateStore) -> None:
        delay = self.interval
        while True:
            stopping = await self._wait_stop(delay)
            self.looks += 1
            delay = await self._attempt(state)
            if stopping:
                return

    async def _attempt(self, state: StateStore) -> float:
        """Save what is due; returns how long to wait before the next look."""
        assert self._loop is not None
        try:
            async with asyncio.timeout(None) as self._deadline:
                if self._stopping.is_set():
                    self._deadline.reschedule(self._loop.time() + _STOP_GRACE)
                await self._save_due(state)
        except _SAVE_FAILED as exc:
            return self._failed(exc)
        finally:
            self._deadline = None
        if self._failing_since is not None:
            log.warning(
                "module %s: saving to the state service again (after %d failed attempt(s), %.1f s)",
                self.runtime.module.name,
                self._attempts_failed,
                self.clock.monotonic() - self._failing_since,
            )
            self._failing_since = None
            self._attempts_failed = 0
        return self.interval

    async def _save_due(self, state: StateStore) -> None:
        """Write the changed values (with ``state_values``) and the status, if it is due."""
        now = self.clock.monotonic()
        if self.save_values:
            self._pending.update(self.runtime.table.take_changed())
        summary = status_summary(self.runtime)
        status_due = (
            summary != self._saved_summary
            or self._status_saved_at is None
            or now - self._status_saved_at >= self.heartbeat
        )
        if not status_due and not self._pending:
            return
        if not self._scope_ready:
            await state.create_scope(self.scope)
            self._scope_ready = True
        names = list(self._pending)
        ops: list[dict[str, Any]] = [
            {"op": "set", "scope": self.scope, "key": f"value.{name}", "value": last.as_json()}
            for name, last in self._pending.items()
        ]
        if status_due:
            status = {**self.runtime.status(), "saved_at": self.clock.now()}
            ops.append({"op": "set", "scope": self.scope, "key": "status", "value": status})
        for start in range(0, len(ops), _BATCH_OPS):
            try:
                await state.batch(ops[start : start + _BATCH_OPS])
            except ServiceError as exc:
                if exc.code == "state.unknown-scope":  # deleted under us: create it again
                    self._scope_ready = False
                raise
            # Only this task fills _pending (above), so what a batch saved can go at once:
            # a later batch failing keeps just the rest.
            saved = names[start : start + _BATCH_OPS]
            for name in saved:
                del self._pending[name]
            self.value_writes += len(saved)
        if status_due:
            self._saved_summary = summary
            self._status_saved_at = now
            self.status_writes += 1
        self.saves += 1

    def _failed(self, exc: BaseException) -> float:
        self.failures += 1
        self._attempts_failed += 1
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self._failing_since is None:
            self._failing_since = self.clock.monotonic()
            log.warning(
                "module %s: cannot save to the state service (%s); keeping %s for the next attempt",
                self.runtime.module.name,
                reason,
                "the status and values" if self.save_values else "the status",
            )
        else:
            log.debug(
                "module %s: save attempt %d failed: %s",
                self.runtime.module.name,
                self._attempts_failed,
                reason,
            )
        longest = max(_BACKOFF_MAX, self.interval)
        delay = min(self.interval * 2.0**self._attempts_failed, longest)
        return self._rng.uniform(delay / 2, delay)

    async def _wait_stop(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless stopped first; True if stopping."""
        return await set_within(self._stopping, seconds, self.clock)
