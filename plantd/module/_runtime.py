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
- the **sink** (:class:`~plantd.service.ServiceWorker` for ``org.plantd.module.NAME``) answers
  ``points``, ``read``, ``write`` and ``status``;
- the **bad-point heartbeat** republishes bad points past their ``max_silence`` while nothing
  reads them (the connection is down, a group keeps failing), so bad samples keep coming for a
  dead device and only a dead module goes quiet;
- the **state task** saves the module's status (and, with ``state_values``, its changed last
  values) to the state service scope ``org.plantd.module.NAME`` (``_state_sync``), and
  carries on without it if it is down.

Failures are logged on transitions only: a group that starts failing is logged once with its
cause, and once when it recovers.

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
from typing import Any, cast

from plantd.bus import BusPublisher, Quality
from plantd.clock import SYSTEM_CLOCK, Clock
from plantd.config import PlantdConfig
from plantd.errors import DeviceFault, DeviceUnavailable
from plantd.module._config import GroupConfig, ModuleConfig
from plantd.module._connection import Connection, ConnectionState
from plantd.module._driver import Driver, PushDriver, pushes
from plantd.module._points import PointTable
from plantd.module._schedule import Schedule
from plantd.runtime import set_within

__all__ = ["GroupStats", "ModuleRuntime"]

log = logging.getLogger(__name__)

# A driver call that takes longer than this is treated as a dead connection. Drivers have
# their own, much shorter, timeouts; this only guards against a driver that hangs.
_HARD_TIMEOUT_MIN = 30.0


class GroupStats:
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
        self.error: str | None = None
        self.last_poll: float | None = None
        self.last_duration: float | None = None
        self.deliveries = 0  # mappings a pushed group's stream yielded
        self.last_delivery: float | None = None

    def as_status(self) -> dict[str, Any]:
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


class ModuleRuntime:
    """One module's tasks (see the module doc), until :meth:`stop`.

    ``clock`` is the time every schedule of the runtime follows: poll deadlines, reconnect
    backoff, heartbeats, and the timestamps of readings. Tests pass a
    :class:`plantd.testing.ManualClock` and advance it; the guard against a driver call that
    hangs stays on real time, as it watches the driver and not the schedule.
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
        self.connection = Connection(
            f"module {module.name}",
            initial=initial if reconnect_initial is None else reconnect_initial,
            maximum=maximum if reconnect_max is None else reconnect_max,
        )
        self.stats: dict[str, GroupStats] = {}
        self.started = clock.now()
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self._stopping = asyncio.Event()
        self._tasks_extra: list[Any] = []
        self._group_points: dict[str, set[str]] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        for extra in self._tasks_extra:
            extra.stop()

    async def run(self, *extras: Any) -> None:
        """Run until :meth:`stop`. ``extras`` are services run alongside (the sink, state sync):
        objects with ``run()`` and ``stop()``."""
        self._tasks_extra = list(extras)
        self.connection.connecting(self.clock.monotonic())
        for group in self.module.groups:
            self.stats[group.name] = GroupStats(
                Schedule(group.interval, self.clock.monotonic()), pushed=pushes(self.driver, group)
            )
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._connection_task())
                tasks.create_task(self._bad_heartbeat())
                for group in self.module.groups:
                    if self.stats[group.name].pushed:
                        tasks.create_task(self._stream_task(group))
                    else:
                        tasks.create_task(self._poll_task(group))
                for extra in extras:
                    tasks.create_task(extra.run())
        finally:
            await self._close_driver()
            self.publisher.close()

    # -- the connection -------------------------------------------------------------------------

    async def _connection_task(self) -> None:
        # Nothing is read before the bus knows who subscribes: ZeroMQ would drop the first
        # samples of every point (the "slow joiner"), and their sequence numbers with them.
        await self.publisher.wait_for_subscribers(timeout=1.0)
        while not self._stopping.is_set():
            self.connection.connecting(self.clock.monotonic())
            try:
                async with asyncio.timeout(_HARD_TIMEOUT_MIN):
                    await self.driver.open()
            except Exception as exc:  # supervisor edge: any failure to open is retried
                reason = _describe(exc)
                await self._close_driver()
                self.table.mark_bad(self.table.points, f"unavailable: {reason}")
                await self._wait_stop(self.connection.failed(self.clock.monotonic(), reason))
                continue
            self.connection.connected(self.clock.monotonic())
            for stats in self.stats.values():
                stats.schedule.restart(self.clock.monotonic())
            self._connected.set()
            await _first(self._lost.wait(), self._stopping.wait())
            self._connected.clear()
            if self._stopping.is_set():
                return
            self._lost.clear()
            await self._close_driver()
            delay = self.connection.failed(self.clock.monotonic(), self._lost_reason)
            await self._wait_stop(delay)

    def _lose_connection(self, reason: str) -> None:
        if self._connected.is_set():
            self._lost_reason = reason
            self._connected.clear()
            self._lost.set()
            self.table.mark_bad(self.table.points, f"unavailable: {reason}")

    async def _close_driver(self) -> None:
        try:
            await self.driver.close()
        except Exception:  # closing a broken connection may fail; it is gone either way
            log.debug("module %s: close failed", self.module.name, exc_info=True)

    # -- polling --------------------------------------------------------------------------------

    async def _poll_task(self, group: GroupConfig) -> None:
        stats = self.stats[group.name]
        schedule = stats.schedule
        while not self._stopping.is_set():
            if not self._connected.is_set():
                await _first(self._connected.wait(), self._stopping.wait())
                continue
            delay = schedule.deadline - self.clock.monotonic()
            if delay > 0 and await self._wait_stop(delay):
                return
            if not self._connected.is_set():
                continue
            started = self.clock.monotonic()
            await self.poll(group)
            stats.last_duration = self.clock.monotonic() - started
            stats.last_poll = self.clock.now()
            schedule.polled(self.clock.monotonic())

    async def poll(self, group: GroupConfig) -> None:
        """Read ``group`` once and record the outcome; never raises for device trouble."""
        stats = self.stats[group.name]
        hard_timeout = max(_HARD_TIMEOUT_MIN, group.interval * 10)
        try:
            async with asyncio.timeout(hard_timeout):
                readings = await self.driver.read(group)
        except DeviceUnavailable as exc:
            self._group_failed(group, stats, _describe(exc))
            self._lose_connection(_describe(exc))
            return
        except TimeoutError:
            reason = f"the driver did not answer within {hard_timeout:g} s"
            self._group_failed(group, stats, reason)
            self._lose_connection(reason)
            return
        except DeviceFault as exc:
            self._group_failed(group, stats, f"device fault: {exc}")
            return
        except Exception as exc:  # supervisor edge: a driver bug must not end polling
            if stats.error is None:
                log.exception("module %s: group %s: driver error", self.module.name, group.name)
            self._group_failed(group, stats, f"driver error: {_describe(exc)}")
            return
        self.table.record_group(group, readings)
        if stats.error is not None:
            log.warning("module %s: group %s recovered", self.module.name, group.name)
            stats.error = None

    # -- pushed groups -------------------------------------------------------------------------

    async def _stream_task(self, group: GroupConfig) -> None:
        stats = self.stats[group.name]
        retry = max(group.interval, 1.0)
        while not self._stopping.is_set():
            if not self._connected.is_set():
                await _first(self._connected.wait(), self._stopping.wait())
                continue
            follow = asyncio.ensure_future(self._follow(group, stats))
            heartbeat = asyncio.ensure_future(self._heartbeat(group))
            try:
                await _first(follow, self._lost.wait(), self._stopping.wait())
            finally:
                follow.cancel()
                heartbeat.cancel()
                await asyncio.wait([follow, heartbeat])  # the stream's aclose runs here
            if not follow.cancelled() and follow.result() == "retry":
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

    async def _follow(self, group: GroupConfig, stats: GroupStats) -> str:
        """Consume one stream of ``group`` until it fails: "lost" or "retry" says what next."""
        stream = cast(PushDriver, self.driver).stream(group)
        try:
            async for readings in stream:
                self._delivered(group, stats, readings)
            raise DeviceUnavailable("the driver's stream ended")
        except DeviceUnavailable as exc:
            self._group_failed(group, stats, _describe(exc))
            self._lose_connection(_describe(exc))
            return "lost"
        except DeviceFault as exc:
            self._group_failed(group, stats, f"device fault: {exc}")
            return "retry"
        except Exception as exc:  # supervisor edge: a driver bug must not end the stream task
            if stats.error is None:
                log.exception("module %s: group %s: driver error", self.module.name, group.name)
            self._group_failed(group, stats, f"driver error: {_describe(exc)}")
            return "retry"
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:  # a broken stream may fail to close; it is abandoned anyway
                    log.debug("module %s: closing a stream failed", self.module.name, exc_info=True)

    def _delivered(self, group: GroupConfig, stats: GroupStats, readings: Any) -> None:
        now = self.clock.now()
        names = self._group_points.setdefault(group.name, {p.name for p in group.points})
        for name, reading in readings.items():
            if name in names:
                self.table.record(name, reading, now)
        self.table.flush()  # one bus message per delivery
        stats.deliveries += 1
        stats.last_delivery = now
        if stats.error is not None:
            log.warning("module %s: group %s recovered", self.module.name, group.name)
            stats.error = None

    def _group_failed(self, group: GroupConfig, stats: GroupStats, reason: str) -> None:
        stats.failures += 1
        if stats.error is None:
            log.warning("module %s: group %s failing: %s", self.module.name, group.name, reason)
        stats.error = reason
        self.table.mark_bad((p.name for p in group.points), reason)

    # -- what the sink asks -----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def read_fresh(self, group: GroupConfig) -> None:
        if not self.connected:
            raise DeviceUnavailable(self.connection.last_error or "not connected")
        await self.poll(group)

    def report_write_failure(self, exc: DeviceUnavailable) -> None:
        self._lose_connection(_describe(exc))

    def status(self) -> dict[str, Any]:
        monotonic_now = self.clock.monotonic()
        bad = sum(1 for v in self.table.last.values() if v.quality is Quality.BAD)
        try:
            driver_status = self.driver.status()
        except Exception as exc:  # status must answer even when the driver cannot
            driver_status = {"error": _describe(exc)}
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


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _first(*waits: Any) -> None:
    """Wait until the first of several awaitables finishes; cancel the rest."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
