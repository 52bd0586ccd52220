"""Running one module: a driver as source (polls, publishes) and sink (an MDP worker).

Theory of operation. One task per concern, all children of one TaskGroup:

- the **connection task** owns ``driver.open()``/``close()`` and the :class:`Connection` state
  machine: it opens, sets ``connected``, waits until a poll reports the connection lost, closes,
  backs off, and opens again — for ever;
- one **poll task per group** waits for its drift-free deadline (:class:`Schedule`), reads the
  group while connected, and hands the readings to the :class:`PointTable` (last values, bus,
  state). Every failure is caught here and turned into ``bad`` points: ``DeviceUnavailable`` also
  tells the connection task to reconnect; a poll loop never ends because of an exception;
- a group the driver *pushes* (:class:`~plantd.module.PushDriver`: OPC UA subscriptions, serial
  streams, GPIO edges) gets a **stream task** instead: while connected it iterates
  ``driver.stream(group)`` and records each mapping it yields (only the points it names). It
  turns failures into ``bad`` points as a poll does; ``DeviceUnavailable`` (or the stream
  ending) reconnects, anything else opens the stream again after the group's interval (≥ 1 s).
  A lost connection or ``stop()`` cancels the iteration, and the next connection opens a new
  stream;
- the **command service** (:class:`~plantd.service.ServiceWorker` for ``org.plantd.module.NAME``,
  :mod:`plantd.module._commands`) answers ``points``, ``read``, ``write`` and ``status``;
- the **bad-point heartbeat** republishes bad points past their ``max_silence`` while nothing
  reads them (the connection is down, a group keeps failing), so bad samples keep coming for a
  dead device and only a dead module goes quiet;
- the **state task** saves the module's status (and, with ``state_values``, its changed last
  values) to the state service scope ``org.plantd.module.NAME`` (``_state_sync``), and
  carries on without it if it is down.

What happens to readings and failures is decided by the sans-IO :class:`Supervisor`
(:mod:`plantd.module._supervisor`, its rules R1–R8): this module is the asyncio shell around it.
It reads the clock, calls the driver, tells the supervisor what came of it, and carries out the
actions it answers. Failures are logged on transitions only: a group that starts failing is
logged once with its cause, and once when it recovers.

One task tree: the tasks above, the companions passed to :meth:`ModuleRuntime.run` (the command
service, the state sync) and the short-lived tasks of a stream are all descendants of the
runtime's TaskGroup, so an exception anywhere cancels the whole module, and :meth:`stop` ends it.

Metrics. While :meth:`ModuleRuntime.run` runs, the runtime is tracked by
:mod:`plantd.module._metrics`, whose collector reads the counters above (and the driver's
status) when the registry is collected: nothing is counted per sample for it. A driver that
offers ``observe_requests`` is handed the request-time histogram when the run starts.

Time. Every wait and every reading of the time goes through one :class:`~plantd.clock.Clock`
(``clock=``, real time by default): poll deadlines and overruns, the reconnect backoff, both
heartbeats, ``up_since`` and the timestamps of readings. A test passes a
:class:`plantd.testing.ManualClock` and advances it instead of sleeping. The hard timeout
around a driver call stays on real time: it guards against a driver that hangs, which a
stopped clock must not hide.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any, cast

from plantd.bus import BusPublisher, Quality
from plantd.clock import SYSTEM_CLOCK, Clock
from plantd.config import PlantdConfig
from plantd.errors import DeviceUnavailable
from plantd.module import _metrics
from plantd.module._config import GroupConfig, ModuleConfig
from plantd.module._connection import Connection, ConnectionState
from plantd.module._driver import Driver, PushDriver, pushes
from plantd.module._points import PointTable
from plantd.module._supervisor import (
    HARD_TIMEOUT_MIN,
    Action,
    Disconnect,
    DriverFailure,
    GroupStats,
    Log,
    MarkBad,
    Reconnect,
    RecordDelivery,
    RecordGroup,
    RetryStream,
    Supervisor,
    describe,
)
from plantd.runtime import Stoppable, set_within

__all__ = ["GroupStats", "ModuleRuntime"]

log = logging.getLogger(__name__)


class ModuleRuntime:
    """One module's tasks (see the module doc), until :meth:`stop`.

    ``clock`` is the time every schedule of the runtime follows: poll deadlines, reconnect
    backoff, heartbeats, and the timestamps of readings. Tests pass a
    :class:`plantd.testing.ManualClock` and advance it; the guard against a driver call that
    hangs stays on real time, as it watches the driver and not the schedule.
    ``reconnect_initial``/``reconnect_max`` override the module file's reconnect backoff.
    """

    def __init__(
        self,
        config: PlantdConfig,
        module: ModuleConfig,
        driver: Driver,
        *,
        publisher: BusPublisher | None = None,
        reconnect_initial: float | None = None,
        reconnect_max: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.config = config
        self.clock = clock
        self.module = module
        self.driver = driver
        self.service = f"org.plantd.module.{module.name}"
        self.publisher = publisher or BusPublisher(
            config.bus.frontend, high_water_mark=config.bus.high_water_mark
        )
        self.table = PointTable(module, self.publisher, clock)
        initial, maximum = _reconnect_backoff(module)
        connection = Connection(
            f"module {module.name}",
            initial=initial if reconnect_initial is None else reconnect_initial,
            maximum=maximum if reconnect_max is None else reconnect_max,
        )
        self.supervisor = Supervisor(module, connection)
        self.started = clock.now()
        self._connected = asyncio.Event()  # mirrors supervisor.connected, for the tasks to wait on
        self._lost = asyncio.Event()
        self._stopping = asyncio.Event()
        self._companions: Sequence[Stoppable] = ()

    @property
    def connection(self) -> Connection:
        """The connection's state machine (state, attempts, last error)."""
        return self.supervisor.connection

    @property
    def stats(self) -> dict[str, GroupStats]:
        """Each group's figures, by group name (filled when :meth:`run` starts)."""
        return self.supervisor.stats

    # -- lifecycle ------------------------------------------------------------------------------

    def stop(self) -> None:
        """End :meth:`run`: the runtime's tasks and its companions finish."""
        self._stopping.set()
        for companion in self._companions:
            companion.stop()

    async def run(self, *companions: Stoppable) -> None:
        """Run until :meth:`stop`, with ``companions`` (the command service, the state sync)
        as tasks of the same tree: stopped with it, and the driver closed after them."""
        self._companions = companions
        observe_requests = getattr(self.driver, "observe_requests", None)
        if observe_requests is not None:
            observe_requests(_metrics.request_observer(self.module.name))
        self.supervisor.start(
            self.clock.monotonic(),
            pushed={g.name for g in self.module.groups if pushes(self.driver, g)},
        )
        _metrics.track(self)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._connection_task())
                tasks.create_task(self._bad_heartbeat())
                for group in self.module.groups:
                    if self.stats[group.name].pushed:
                        tasks.create_task(self._stream_task(group))
                    else:
                        tasks.create_task(self._poll_task(group))
                for companion in companions:
                    tasks.create_task(companion.run())
        finally:
            _metrics.untrack(self)
            await self._close_driver()
            self.publisher.close()

    # -- carrying out what the supervisor says -------------------------------------------------

    def _carry_out(self, actions: list[Action]) -> float | None:
        """Do ``actions``; returns the wait of a Reconnect or RetryStream among them, which
        the task that asked waits itself."""
        wait: float | None = None
        for action in actions:
            match action:
                case RecordGroup(group, readings):
                    self.table.record_group(group, readings)
                case RecordDelivery(readings, at):
                    for name, reading in readings:
                        self.table.record(name, reading, at)
                    self.table.flush()  # one bus message per delivery
                case MarkBad(points, reason):
                    self.table.mark_bad(points, reason)
                case Disconnect():
                    self._connected.clear()
                    self._lost.set()
                case Reconnect(after) | RetryStream(_, after):
                    wait = after
                case Log(level, message, args, error):
                    log.log(level, message, *args, exc_info=error)
        return wait

    # -- the connection -------------------------------------------------------------------------

    async def _connection_task(self) -> None:
        # Nothing is read before the bus knows who subscribes: ZeroMQ would drop the first
        # samples of every point (the "slow joiner"), and their sequence numbers with them.
        await self.publisher.wait_for_subscribers(timeout=1.0)
        supervisor = self.supervisor
        while not self._stopping.is_set():
            supervisor.opening(self.clock.monotonic())
            try:
                async with asyncio.timeout(HARD_TIMEOUT_MIN):
                    await self.driver.open()
            except Exception as exc:  # supervisor edge: any failure to open is retried
                await self._close_driver()
                counted_as = DriverFailure.of(exc, hard_timeout=HARD_TIMEOUT_MIN).counted_as
                delay = self._carry_out(
                    supervisor.open_failed(self.clock.monotonic(), describe(exc), counted_as)
                )
                await self._wait_stop(delay or 0.0)
                continue
            self._carry_out(supervisor.opened(self.clock.monotonic()))
            self._connected.set()
            await _first(self._lost.wait(), self._stopping.wait())
            self._connected.clear()
            if self._stopping.is_set():
                supervisor.stopping()
                return
            self._lost.clear()
            await self._close_driver()
            delay = self._carry_out(supervisor.closed(self.clock.monotonic()))
            await self._wait_stop(delay or 0.0)

    async def _close_driver(self) -> None:
        try:
            await self.driver.close()
        except Exception:  # closing a broken connection may fail; it is gone either way
            log.debug("module %s: close failed", self.module.name, exc_info=True)

    # -- polling --------------------------------------------------------------------------------

    async def _poll_task(self, group: GroupConfig) -> None:
        while not self._stopping.is_set():
            if not self._connected.is_set():
                await _first(self._connected.wait(), self._stopping.wait())
                continue
            delay = self.supervisor.poll_wait(group, self.clock.monotonic())
            if delay > 0 and await self._wait_stop(delay):
                return
            if not self._connected.is_set():
                continue
            started = self.clock.monotonic()
            await self.poll(group)
            self.supervisor.polled(group, started, self.clock.monotonic(), self.clock.now())

    async def poll(self, group: GroupConfig) -> None:
        """Read ``group`` once and record the outcome; never raises for device trouble."""
        try:
            async with asyncio.timeout(self.supervisor.read_timeout(group)):
                readings = await self.driver.read(group)
        except Exception as exc:  # supervisor edge: a driver bug must not end polling
            self._carry_out(self.supervisor.read_failed(group, exc))
            return
        self._carry_out(self.supervisor.read(group, readings))

    # -- pushed groups -------------------------------------------------------------------------

    async def _stream_task(self, group: GroupConfig) -> None:
        while not self._stopping.is_set():
            if not self._connected.is_set():
                await _first(self._connected.wait(), self._stopping.wait())
                continue
            async with asyncio.TaskGroup() as tasks:
                follow = tasks.create_task(self._follow(group))
                heartbeat = tasks.create_task(self._heartbeat(group))
                await _first(follow, self._lost.wait(), self._stopping.wait())
                heartbeat.cancel()
            # the stream's aclose has run: the TaskGroup waited for the cancelled follow
            retry = None if follow.cancelled() else follow.result()
            if retry is not None:
                await self._wait_stop(retry)

    async def _heartbeat(self, group: GroupConfig) -> None:
        """While a stream is followed, republish its steady points past their max_silence."""
        names = [point.name for point in group.points]
        period = self.table.silence_period(names)
        if period is None:
            return
        while True:
            await self.clock.sleep(period / 4)
            self.table.heartbeat(names, self.clock.now())

    async def _bad_heartbeat(self) -> None:
        """Republish bad points past their max_silence, connected or not (see the top)."""
        period = self.table.silence_period(self.table.points)
        if period is None:
            return
        while not await self._wait_stop(period / 4):
            self.table.republish_bad(self.clock.now())

    async def _follow(self, group: GroupConfig) -> float | None:
        """Consume one stream of ``group`` until it fails; how long to wait before opening it
        again (None: the connection is lost, the next one opens a new stream)."""
        stream = cast(PushDriver, self.driver).stream(group)
        try:
            async for readings in stream:
                self._carry_out(self.supervisor.delivered(group, readings, self.clock.now()))
            return self._carry_out(self.supervisor.stream_ended(group))
        except Exception as exc:  # supervisor edge: a driver bug must not end the stream task
            return self._carry_out(self.supervisor.stream_failed(group, exc))
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:  # a broken stream may fail to close; it is abandoned anyway
                    log.debug("module %s: closing a stream failed", self.module.name, exc_info=True)

    # -- what the command service asks -----------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the driver is open and reading."""
        return self._connected.is_set()

    async def read_fresh(self, group: GroupConfig) -> None:
        """Read ``group`` now (``read`` with ``fresh: true``); DeviceUnavailable when not
        connected."""
        if not self.connected:
            raise DeviceUnavailable(self.connection.last_error or "not connected")
        await self.poll(group)

    def report_write_failure(self, exc: DeviceUnavailable) -> None:
        """A write found the connection gone: drop it (every point bad, reconnect)."""
        self._carry_out(self.supervisor.lost(describe(exc)))

    def status(self) -> dict[str, Any]:
        """The module's ``status``: connection, groups, publish counters, driver figures."""
        monotonic_now = self.clock.monotonic()
        bad = sum(1 for v in self.table.last.values() if v.quality is Quality.BAD)
        try:
            driver_status = self.driver.status()
        except Exception as exc:  # status must answer even when the driver cannot
            driver_status = {"error": describe(exc)}
        return {
            "module": self.module.name,
            "driver": self.module.driver,
            "description": self.module.description,
            "up_since": self.started,
            "connection": self.connection.as_status(monotonic_now),
            "points": len(self.table.points),
            "bad_points": bad,
            "published": self.table.published,
            "suppressed": self.table.suppressed,
            "groups": {name: stats.as_status() for name, stats in self.stats.items()},
            "driver_status": driver_status,
        }

    @property
    def connection_state(self) -> ConnectionState:
        """The connection's state now."""
        return self.connection.state

    # -- helpers ----------------------------------------------------------------------------------

    async def _wait_stop(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless stopped first; True if stopping."""
        return await set_within(self._stopping, seconds, self.clock)


def _reconnect_backoff(module: ModuleConfig) -> tuple[float, float]:
    """The module file's ``connection.reconnect_initial``/``reconnect_max`` where its driver
    has them (OPC UA, serial), else 0.5 s doubling to 30 s."""
    connection = getattr(module, "connection", None)
    return (
        float(getattr(connection, "reconnect_initial", 0.5)),
        float(getattr(connection, "reconnect_max", 30.0)),
    )


async def _first(*waits: Coroutine[Any, Any, Any] | asyncio.Task[Any]) -> None:
    """Wait until the first of several coroutines or tasks finishes; cancel the rest (their
    tasks are children of this one, ended before it returns)."""
    async with asyncio.TaskGroup() as tasks:
        started = [w if isinstance(w, asyncio.Task) else tasks.create_task(w) for w in waits]
        await asyncio.wait(started, return_when=asyncio.FIRST_COMPLETED)
        for task in started:
            task.cancel()
