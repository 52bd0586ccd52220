"""The ``plantd-control`` process: three engines between the bus and the modules.

Theory of operation. The engines (calculations, alarms, loops and interlocks) are sans-IO and
single-threaded; this shell owns them and is the only code that calls them, from one task
(the **engine loop**), so nothing else ever sees one half-way through a change. Children of
one TaskGroup:

- the **engine loop** waits for bus samples of the points the plan reads (a subscription per
  point) until the earliest deadline any engine has (a loop's period, an alarm's delay, a
  shelving's expiry, a calculation's period). Each sample goes to every engine that reads it;
  then, with everything ready at once taken (one batch, a burst), the calculations are
  evaluated (their results published as one batch on ``data.calc`` and fed to the alarms and
  loops like any point: the process does not wait for its own samples to come back from the
  bus), the conditions whose inputs changed (``suppress_when``, interlocks' ``when``) are
  evaluated, the alarms ticked and the loops stepped. Time is the clock's wall time, because
  sample timestamps (staleness, rates, windows) are wall time too;
- **writes** a loop or interlock asks for go to ``org.plantd.module.NAME write`` as
  ``service.control`` (role ``operator``), each in a task of its own, at most one in flight
  per output: the broker authorises and audits every one. The answer goes back to the loop
  engine (a failure is an event, and the loop tries again on its next period);
- the **recorder** commits alarm events to the alarm store (current state and history, one
  transaction per burst) and only then publishes them on ``event.alarm.<name>``: an event a
  subscriber saw is on disk, and an acknowledgement is answered only once it is;
- the **status** task publishes ``event.control.status`` every ``control.status_interval``;
- **priming** asks the modules once for the last values of the points read, so that nothing
  waits for a quiet point's next change (``_priming``).

The MDP services (``org.plantd.Alarms``, ``org.plantd.Control``, see ``_service``) run as
workers of their own beside this process and call its methods, which change the engines
synchronously (no await in between) and hand the events on.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Sequence
from typing import Any

from plantd.bus import BusPublisher, BusSubscriber, Quality, Sample
from plantd.client import AsyncClient
from plantd.clock import SYSTEM_CLOCK, Clock
from plantd.config import PlantdConfig
from plantd.control import _metrics
from plantd.control._alarm import AlarmEvent
from plantd.control._alarm_engine import AlarmEngine
from plantd.control._alarm_store import AlarmStore
from plantd.control._calc import CalcEngine, Formula
from plantd.control._expr import compile_expression
from plantd.control._files import CALC_MODULE, ControlPlan
from plantd.control._loops import LoopEngine, Write
from plantd.control._priming import prime
from plantd.control._recorder import Recorder
from plantd.errors import PlantdError
from plantd.service import call_async

__all__ = ["STATUS_TOPIC", "ControlProcess"]

log = logging.getLogger(__name__)

STATUS_TOPIC = "event.control.status"
_DATA = "data."
_BURST = 1000  # samples taken at most before the engines run (a long burst must not starve them)
# Conditions (suppress_when, interlocks' when) are evaluated when an input changes, and at least
# this often, so that one using a window or a rate follows time while its inputs are quiet.
_CONDITIONS_EVERY = 1.0
_LATENESS_KEPT = 4096  # recent loop lateness figures, for status (p99 over the last ones)


class ControlProcess:
    def __init__(
        self, config: PlantdConfig, plan: ControlPlan, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.config, self.plan, self.clock = config, plan, clock
        settings = config.control
        self.store = AlarmStore(
            settings.database_path(config.paths),
            max_age=settings.history_max_age,
            max_rows=settings.history_max_rows,
        )
        now = clock.now()
        self.calc = CalcEngine(plan.calcs)
        self.alarms = AlarmEngine(plan.alarms, restored=self.store.load())
        self.loops = LoopEngine(plan.loops, plan.interlocks, now)
        self._suppressions = {
            alarm.name: compile_expression(alarm.suppress_when).bind()
            for alarm in plan.alarms
            if alarm.suppress_when
        }
        self._trips = {
            interlock.name: compile_expression(interlock.when).bind()
            for interlock in plan.interlocks
        }
        self._condition_readers = _readers(
            [(("suppress", name), formula) for name, formula in self._suppressions.items()]
            + [(("trip", name), formula) for name, formula in self._trips.items()]
        )
        self._changed_conditions: set[tuple[str, str]] = set()
        self._conditions_due = now
        self._calc_inputs = self.calc.inputs
        self._alarm_inputs = self.alarms.inputs
        self._loop_inputs = self.loops.inputs
        self.recorder = Recorder(self.store, self._publish_alarm_event)
        self.writes_in_flight: set[tuple[str, str]] = set()
        self.lateness: deque[float] = deque(maxlen=_LATENESS_KEPT)
        self.started = now
        self.samples_taken = 0
        self.primed = 0  # points whose start value came from their module (``_priming``)
        self._seen: set[str] = set()  # points with a sample from the bus
        self._publisher: BusPublisher | None = None
        self._client: AsyncClient | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()  # a service call changed something: step the engines now

    # -- the points it reads -----------------------------------------------------------------

    def subscriptions(self) -> list[str]:
        """The bus topics to subscribe to: every point read that is not its own (calc.*)."""
        points = set(self._calc_inputs) | set(self._alarm_inputs) | set(self._loop_inputs)
        points.update(self._condition_readers)
        return sorted(_DATA + point for point in points if point.partition(".")[0] != CALC_MODULE)

    # -- running -----------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        bus = self.config.bus
        prefixes = self.subscriptions()
        subscriber = BusSubscriber(bus.backend, prefixes, high_water_mark=bus.high_water_mark)
        self._publisher = publisher = BusPublisher(bus.frontend)
        # Every loop and interlock may have one write in flight: a socket each stays open, or
        # each period would connect and close most of them again (measured: a third of the CPU).
        outputs = len(self.plan.loops) + len(self.plan.interlocks)
        self._client = AsyncClient.from_config(
            self.config.broker.endpoint, self.config.client, max_idle_channels=max(16, outputs)
        )
        log.info(
            "control: %d calculations, %d alarms, %d loops, %d interlocks; reading %d points",
            len(self.plan.calcs),
            len(self.plan.alarms),
            len(self.plan.loops),
            len(self.plan.interlocks),
            len(prefixes),
        )
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.recorder.run(self._stopping))
                tasks.create_task(self._status_loop(publisher))
                if prefixes:
                    tasks.create_task(self._prime([p[len(_DATA) :] for p in prefixes]))
                await self._engine_loop(subscriber if prefixes else None, tasks)
        finally:
            subscriber.close()
            publisher.close()
            await self._client.aclose()
            self.store.close()

    async def _engine_loop(
        self, subscriber: BusSubscriber | None, tasks: asyncio.TaskGroup
    ) -> None:
        while not self._stopping.is_set():
            wait = self._until_next(self.clock.now())
            if subscriber is None:
                await self._wait_for_wake(wait)
            else:
                message = await subscriber.receive_within(wait)
                taken = 0
                while message is not None and taken < _BURST:
                    self._take(message.topic[len(_DATA) :], message.payload)
                    taken += 1
                    message = await subscriber.receive_within(0)
                if message is not None:  # the burst's last one, taken before the engines run
                    self._take(message.topic[len(_DATA) :], message.payload)
            self._wake.clear()
            self.run_engines(self.clock.now(), tasks)
            await asyncio.sleep(0)  # let service calls and writes in between bursts

    async def _wait_for_wake(self, wait: float) -> None:
        try:
            async with asyncio.timeout(wait):
                await self._wake.wait()
        except TimeoutError:
            pass

    def _until_next(self, now: float) -> float:
        deadlines = [
            due
            for due in (self.calc.next_due(), self.alarms.next_due(), self.loops.next_due())
            if due is not None
        ]
        wait = min(deadlines, default=now + 0.25) - now
        if self._wake.is_set():
            return 0.0
        return min(max(wait, 0.0), 0.25)

    def _take(self, point: str, sample: Any) -> None:
        if type(sample) is not Sample:
            return
        self.samples_taken += 1
        self._seen.add(point)
        self._feed(point, sample, self.clock.now(), calc=True)

    async def _prime(self, points: list[str]) -> None:
        """Start values from the modules (``_priming``), then a step at once."""
        assert self._client is not None

        def take(point: str, sample: Sample) -> None:
            self._seen.add(point)
            self._feed(point, sample, self.clock.now(), calc=True)

        self.primed = await prime(
            self._client,
            points,
            take,
            self._seen.__contains__,
            timeout=self.config.control.write_timeout,
            clock=self.clock.monotonic,
        )
        log.info("control: %d of %d points primed from their modules", self.primed, len(points))
        self.wake()

    def _feed(self, point: str, sample: Sample, now: float, *, calc: bool) -> None:
        if calc and point in self._calc_inputs:
            self.calc.observe(point, sample)
        if point in self._alarm_inputs:
            self.recorder.submit(self.alarms.observe(point, sample, now))
        if point in self._loop_inputs:
            self.loops.observe(point, sample)
        for condition, formula in self._condition_readers.get(point, ()):
            formula.observe(point, sample)
            self._changed_conditions.add(condition)

    def run_engines(self, now: float, tasks: asyncio.TaskGroup) -> None:
        """Everything that is due at ``now``: calculations, conditions, alarms, loops."""
        results = self.calc.evaluate(now)
        if results:
            _metrics.CALCULATIONS.inc(len(results))
            if self._publisher is not None:
                self._publisher.publish_batch(
                    _DATA + CALC_MODULE,
                    [(name, s.value, s.timestamp, s.quality) for name, s in results],
                )
            for name, sample in results:
                self._feed(f"{CALC_MODULE}.{name}", sample, now, calc=False)
        if now >= self._conditions_due:  # time-driven functions move while inputs are quiet
            self._conditions_due = now + _CONDITIONS_EVERY
            self._changed_conditions.update(
                condition
                for readers in self._condition_readers.values()
                for condition, _ in readers
            )
        for condition in sorted(self._changed_conditions):
            self._apply_condition(condition, now)
        self._changed_conditions.clear()
        self.recorder.submit(self.alarms.tick(now))
        due = self.loops.next_due()
        if due is not None and due <= now:
            lateness = now - due
            self.lateness.append(lateness)
            _metrics.LOOP_LATENESS.observe(lateness)
        writes, events = self.loops.step(now)
        self.publish_control_events(events)
        for write in writes:  # the engine asks for one at a time per loop and interlock
            self.writes_in_flight.add((write.kind, write.source))
            tasks.create_task(self._write(write))

    def _apply_condition(self, condition: tuple[str, str], now: float) -> None:
        kind, name = condition
        if kind == "suppress":
            result = self._suppressions[name].evaluate(now)
            # Suppression hides alarms: only a condition known to be true may do that.
            suppressed = _true(result) and result is not None and result.quality == Quality.GOOD
            self.recorder.submit(self.alarms.set_suppressed(name, suppressed, now))
        else:
            result = self._trips[name].evaluate(now)
            if result is None:
                return  # an input never seen yet: no decision (a restart must not trip all)
            # Fail-safe: an interlock whose condition cannot be known holds its safe value.
            tripped = result.quality != Quality.GOOD or _true(result)
            self.publish_control_events(self.loops.set_condition(name, tripped, now))

    async def _write(self, write: Write) -> None:
        error: str | None = None
        assert self._client is not None
        try:
            await call_async(
                self._client,
                f"org.plantd.module.{write.module}",
                "write",
                {"point": write.point, "value": write.value},
                timeout=self.config.control.write_timeout,
                retries=0,
            )
            _metrics.WRITES.labels(result="ok").inc()
        except PlantdError as exc:
            error = str(exc)
            _metrics.WRITES.labels(result="failed").inc()
        finally:
            self.writes_in_flight.discard((write.kind, write.source))
        self.publish_control_events(self.loops.write_done(write, error, self.clock.now()))

    # -- events ------------------------------------------------------------------------------

    def _publish_alarm_event(self, event: AlarmEvent) -> None:
        record = event.to_record()
        _metrics.ALARM_EVENTS.labels(transition=record["transition"]).inc()
        if self._publisher is not None:
            self._publisher.publish_record(f"event.alarm.{record['alarm']}", record)

    def publish_control_events(self, events: Sequence[dict[str, Any]]) -> None:
        for event in events:
            log.info(
                "control: %s %s %s", event.get("kind"), event.get("name"), event.get("transition")
            )
            if self._publisher is not None:
                self._publisher.publish_record(f"event.control.{event['name']}", event)

    def wake(self) -> None:
        """Step the engines at once (a service call changed a mode, a setpoint…)."""
        self._wake.set()

    async def _status_loop(self, publisher: BusPublisher) -> None:
        interval = self.config.control.status_interval
        while not self._stopping.is_set():
            try:
                async with asyncio.timeout(interval):
                    await self._stopping.wait()
                return
            except TimeoutError:
                pass
            publisher.publish_record(STATUS_TOPIC, self.status())

    def status(self) -> dict[str, Any]:
        snapshots = [snapshot.to_record() for snapshot in self.alarms.snapshots()]
        late = sorted(self.lateness)
        return {
            "up_since": self.started,
            "samples_taken": self.samples_taken,
            "points_primed": self.primed,
            "calculations": len(self.plan.calcs),
            "alarms": len(snapshots),
            "alarms_active": sum(1 for alarm in snapshots if alarm["active"]),
            "alarms_unacknowledged": sum(1 for alarm in snapshots if not alarm["acknowledged"]),
            "loops": len(self.plan.loops),
            "interlocks": len(self.plan.interlocks),
            "writes_in_flight": len(self.writes_in_flight),
            "loop_lateness_p99": late[min(len(late) - 1, math.ceil(0.99 * len(late)) - 1)]
            if late
            else None,
            "alarm_store_errors": self.recorder.errors,
        }


def _true(result: Sample | None) -> bool:
    if result is None:
        return False
    value = result.value
    return isinstance(value, bool | int | float) and bool(value) and not math.isnan(value)


_Condition = tuple[str, str]  # ("suppress", alarm) or ("trip", interlock)


def _readers(
    formulas: list[tuple[_Condition, Formula]],
) -> dict[str, list[tuple[_Condition, Formula]]]:
    """Point -> the conditions that read it."""
    readers: dict[str, list[tuple[_Condition, Formula]]] = {}
    for condition, formula in formulas:
        for point in formula.inputs:
            readers.setdefault(point, []).append((condition, formula))
    return readers
