"""One sink process: bus -> disk queue -> upstream, with gap repair, status and counters.

Theory of operation. Children of one TaskGroup:

- **intake**: subscribes to the sink's ``topics`` and offers each sample to the
  :class:`IntakeState` (cursor per topic, gaps), which gathers them per module; and, when
  the upstream can take them (``deliver_events``), to the ``events`` prefixes: each record is
  offered whole (a jump in its ``seq`` opens an event gap, see **repair**);
- **commit**: every ``queue.commit_interval`` writes what was taken, with the cursors and
  gaps, to the disk queue in one transaction (a row per module's batch) — from then on it
  survives a kill -9. Past ``queue.max_bytes`` the oldest entries are dropped in that
  transaction (counted; an event on ``event.sink.NAME.dropped``);
- **delivery**: connects to the upstream (backoff ``reconnect_initial`` doubling to
  ``reconnect_max``, for ever), notes the queue's last id as the *backlog watermark*, then
  loops: every batch takes the live entries (above the watermark, up to ``queue.batch_size``
  samples) and, at most ``queue.drain_rate`` samples per second, backlog entries (at or below
  it, oldest first); delivers them and waits for the acknowledgement; only then deletes them
  from the queue. A failure closes the connection and starts over: the unacknowledged
  entries are still queued. Queued event records go first, all of them in queue order
  (no drain rate: they are few, and an alarm's transitions must arrive in order), each
  delivery acknowledged before the samples' turn;
- **repair**: asks the historian (``org.plantd.Historian`` ``samples``) for the samples of
  each open gap; closes the gap when every sample known to be missing is found, or after
  ``repair.timeout`` with the rest counted as lost (event ``event.sink.NAME.lost``). Event
  gaps the same way, from the alarm history (``org.plantd.Alarms`` ``history``) for
  ``event.alarm.*`` topics (records found are queued as historical); another topic's gap
  has nowhere to be filled from and is counted in ``events_missed`` at once;
- **status**: publishes :meth:`Sink.status` on ``event.sink.NAME.status`` every
  ``status_interval``; the service ``org.plantd.sink.NAME`` answers ``status``;
- **metrics**: while it runs, the sink is tracked by ``plantd.sinks._metrics`` (its backlog,
  oldest entry, delivered and dropped counts, connection), read at collection time;
- **commands**: if the upstream has ``serve_commands`` (commands from upstream to the
  modules, through ``UpstreamContext.write``), it runs here until the sink stops.

Reload. SIGHUP re-reads ``sinks.d/NAME.yaml`` (:meth:`Sink.reload`, what changes how in
:mod:`plantd.sinks._reload`): a new upstream is built first (a bad one changes nothing), then
the delivery hands over after the batch in hand; a new bus subscription is opened before the
old one closes; the rest is read by its task at its next round. The disk queue, the cursors
and the gaps stay: nothing taken from the bus is dropped by a reload.

Backpressure. The intake never waits for the upstream: a slow or absent upstream only slows
the delivery task, so the bus socket keeps being drained into the disk queue (which grows,
up to ``queue.max_bytes``) instead of into the broker's memory. The intake's work per sample
is a few microseconds; the queue's and the delivery's are per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from plantd.bus import (
    BusDecodeError,
    BusPublisher,
    BusSubscriber,
    Record,
    Sample,
    SampleValue,
    decode_record,
)
from plantd.client import AsyncClient
from plantd.config import PlantdConfig
from plantd.errors import ConfigError
from plantd.runtime import set_within
from plantd.service import ServiceDefinition, ServiceWorker, call_async
from plantd.sinks._config import SinkConfig, load_sink
from plantd.sinks._intake import IntakeState
from plantd.sinks._kind import UpstreamContext
from plantd.sinks._metrics import DROP_REASONS, track, untrack
from plantd.sinks._queue import DiskQueue, Entry, EventEntry, entry_samples
from plantd.sinks._registry import load_sink_kind
from plantd.sinks._reload import plan
from plantd.sinks._repair import Repairer
from plantd.sinks._upstream import (
    Outgoing,
    OutgoingEvent,
    Upstream,
    UpstreamUnavailable,
    split_topic,
)

__all__ = ["Sink", "sink_service"]

log = logging.getLogger(__name__)

_TRIM_EVERY = 10.0


class Sink:
    def __init__(
        self, config: PlantdConfig, sink: SinkConfig, *, upstream: Upstream | None = None
    ) -> None:
        self.config = config
        self.sink = sink
        self.name = sink.name
        self.service = f"org.plantd.sink.{sink.name}"
        settings = sink.queue
        self.queue = DiskQueue(
            sink.queue_path(config), max_bytes=settings.max_bytes, max_age=settings.max_age
        )
        self.intake = IntakeState(
            self.queue.cursors(),
            self.queue.gaps(),
            batch_size=settings.batch_size,
            max_pending=settings.max_pending,
            event_cursors=self.queue.event_cursors(),
            event_gaps=self.queue.event_gaps(),
        )
        self._client: AsyncClient | None = None
        try:
            self.upstream: Upstream = upstream or self._make_upstream(sink)
        except BaseException:  # e.g. the kind's client library is missing: free queue and lock
            self.queue.close()
            raise
        self.events = self._events_for(self.upstream)
        # Reload (SIGHUP): the upstream to hand over to, and the flags the tasks look at.
        self._next_upstream: Upstream | None = None
        self._handover = asyncio.Event()  # wakes the delivery: a new upstream, or stop
        self._upstream_changed = asyncio.Event()  # the commands task follows the upstream
        self._resubscribe = asyncio.Event()
        self._repairer: Repairer | None = None
        self._subscriber: BusSubscriber | None = None
        self.worker = ServiceWorker(sink_service(self), config)
        self.connected = self.worker.connected  # registered at the broker: ready to serve
        self.started = time.time()
        self.upstream_connected = False
        # Why the queue or the upstream fails now, each cleared when it works again.
        self._errors: dict[str, str] = {}
        self.backlog_watermark = 0
        # Samples this process dropped, by reason (plantd_sink_dropped_total).
        self.dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self._queued = asyncio.Event()
        self._stopping = asyncio.Event()
        self._publisher: BusPublisher | None = None

    def _events_for(self, upstream: Upstream) -> tuple[str, ...]:
        """Events go only to an upstream that can take them (``deliver_events``)."""
        sink = self.sink
        if sink.events and not hasattr(upstream, "deliver_events"):
            log.info("sink %s: the %s kind forwards no events (%s ignored)", sink.name,
                     sink.type, ", ".join(sink.events))  # fmt: skip
            return ()
        return sink.events

    def _make_upstream(self, sink: SinkConfig) -> Upstream:
        """The upstream of ``sink``'s kind (its ``plantd.sinks`` entry point)."""
        kind = load_sink_kind(sink.type, source=str(sink.source or sink.name))
        context = UpstreamContext(
            queue=self.queue,
            latest=lambda: _latest(self.intake.cursors),
            write=self._write,
            latest_events=lambda: _latest_events(self.intake.event_cursors),
        )
        try:
            return kind.make_upstream(sink, context)
        except ImportError as exc:
            hint = f": {kind.install_hint}" if kind.install_hint else ""
            raise ImportError(
                f"sink {sink.name} (type {sink.type}) needs {exc.name}{hint}"
            ) from exc

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        self._handover.set()
        self.worker.stop()

    # -- reload ------------------------------------------------------------------------------

    def reload_file(self) -> None:
        """SIGHUP: read ``sinks.d/NAME.yaml`` again and apply it; a file with problems is
        logged (file:line) and the sink runs on as it was. On the event loop: quick."""
        try:
            read = load_sink(self.config, self.name)
        except ConfigError as exc:
            log.error(
                "sink %s: SIGHUP: the sink file has problems; nothing applied, running on with "
                "the settings as they were:\n%s",
                self.name,
                exc,
            )
            return
        self.reload(read)

    def reload(self, read: SinkConfig) -> None:
        """Apply ``read`` (a valid sink file) to the running sink (see
        :mod:`plantd.sinks._reload`); a new upstream that cannot be built changes nothing."""
        todo = plan(self.sink, read)
        for line in todo.restart:
            log.warning("sink %s: SIGHUP: %s: needs a restart, not applied", self.name, line)
        if not todo.changed:
            log.info("sink %s: SIGHUP: no setting that applies live has changed", self.name)
            return
        upstream: Upstream | None = None
        if todo.new_upstream:
            try:
                upstream = self._make_upstream(todo.config)
            except Exception as exc:  # e.g. its client library is missing
                log.error("sink %s: SIGHUP: the new upstream cannot be made, nothing "
                          "applied: %s", self.name, exc)  # fmt: skip
                return
        self.sink = new = todo.config
        self.queue.max_bytes, self.queue.max_age = new.queue.max_bytes, new.queue.max_age
        self.intake.batch_size = new.queue.batch_size
        self.intake.max_pending = new.queue.max_pending
        if self._repairer is not None:
            self._repairer.settings = new.repair
        if upstream is not None:
            self._next_upstream = upstream
            self._handover.set()
            self._queued.set()  # wake a delivery waiting for entries: it hands over
        else:
            self.events = self._events_for(self.upstream)  # ``events`` may have changed
        if todo.resubscribe:
            self._resubscribe.set()
        for line in todo.applied:
            log.info("sink %s: SIGHUP: applied %s", self.name, line)

    def _subscribe(self) -> BusSubscriber:
        return BusSubscriber(
            self.config.bus.backend,
            sorted({_literal_prefix(t) for t in self.sink.topics} | set(self.events)),
            high_water_mark=self.config.bus.high_water_mark,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        config = self.config
        self._subscriber = self._subscribe()
        self._publisher = BusPublisher(config.bus.frontend)
        client = AsyncClient.from_config(config.broker.endpoint, config.client)
        self._client = client
        track(self)
        try:
            async with client, asyncio.TaskGroup() as tasks:
                tasks.create_task(self._intake_until_stopped())
                tasks.create_task(self._commits())
                tasks.create_task(self._delivery())
                repairer = self._repairer = Repairer(
                    self.name, self.intake, self.sink.repair, lambda: self._client, self._stopping
                )
                tasks.create_task(repairer.run())
                tasks.create_task(
                    self._every(lambda: self.sink.status_interval, self._publish_status)
                )
                tasks.create_task(self._every(lambda: _TRIM_EVERY, self._trim))
                tasks.create_task(self.worker.run())
                tasks.create_task(self._commands())
        finally:
            untrack(self)
            if self._subscriber is not None:  # the one in use (the intake closed the others)
                self._subscriber.close()
            await self._commit()
            self._publisher.close()
            self.queue.close()

    async def _commands(self) -> None:
        """The upstream's ``serve_commands``, if it has one, until the sink stops or the
        upstream is replaced (then the new one's)."""
        while not self._stopping.is_set():
            self._upstream_changed.clear()
            serve_commands = getattr(self.upstream, "serve_commands", None)
            task = asyncio.ensure_future(serve_commands()) if serve_commands else None
            stopping = asyncio.ensure_future(self._stopping.wait())
            changed = asyncio.ensure_future(self._upstream_changed.wait())
            try:
                await asyncio.wait([stopping, changed], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in (task, stopping, changed):
                    if waiting is not None:
                        waiting.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await waiting

    async def _every(self, interval: Callable[[], float], job: Any) -> None:
        """``job`` every ``interval()`` seconds (read each round: a reload may change it)."""
        while not await self._sleep(interval()):
            try:
                await job()
            except Exception:  # supervisor edge: housekeeping must not end the sink
                log.exception("sink %s: periodic job failed", self.name)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped first; True if stopping."""
        return await set_within(self._stopping, seconds)

    # -- intake and commits ------------------------------------------------------------------

    async def _intake_until_stopped(self) -> None:
        """The intake, on a new subscription whenever a reload changes the topics: the new
        one is opened before the old one is read to its end and closed (a sample both
        deliver is taken once: its ``seq`` is not above the topic's cursor the second time)."""
        while not self._stopping.is_set():
            old = self._subscriber
            assert old is not None  # run() opened it
            await self._intake(old)
            if self._resubscribe.is_set():
                self._resubscribe.clear()
                self._subscriber = self._subscribe()
                try:
                    await self._intake(old, drain=True)
                finally:
                    old.close()

    async def _intake(self, subscriber: BusSubscriber, *, drain: bool = False) -> None:
        """Take samples until the sink stops or a reload asks for a new subscription
        (``drain``: only what ``subscriber`` already holds)."""
        globs = [t for t in self.sink.topics if any(c in t for c in "*?[")]
        prefixes = tuple(t for t in self.sink.topics if t not in globs)
        offer, receive, stopping = self.intake.offer, subscriber.receive_within, self._stopping
        resubscribe = self._resubscribe
        events = self.events
        # The subscriber already keeps only the literal prefixes: without globs, that is all.
        while not (stopping.is_set() or resubscribe.is_set()):
            message = await receive(0.0 if drain else 0.25)
            if message is None and drain:
                return
            if message is None:
                continue
            sample = message.payload
            topic = message.topic
            if type(sample) is not Sample:
                if type(sample) is Record and events and topic.startswith(events):
                    self._offer_event(topic, sample)
                continue
            if globs and not (
                topic.startswith(prefixes) or any(fnmatch.fnmatchcase(topic, g) for g in globs)
            ):
                continue
            offer(topic, sample, time.time())

    def _offer_event(self, topic: str, record: Record) -> None:
        gap = self.intake.offer_event(topic, record.fields, time.time())
        if gap is not None:
            log.info("sink %s: %s jumped from seq %d to %d", self.name, topic, gap.last, gap.seq)

    async def _commits(self) -> None:
        while not await self._sleep(self.sink.queue.commit_interval):
            await self._commit()

    async def _commit(self) -> None:
        intake = self.intake.take()
        if not intake:
            return
        events_dropped = self.queue.counters["events_dropped"]
        try:
            dropped = await self.queue.commit(intake)
        except sqlite3.Error as exc:
            self._error("queue", f"queue commit failed (will retry): {exc}")
            lost_in_memory = self.intake.restore(intake)
            if lost_in_memory:
                self.dropped["commit_failed"] += lost_in_memory
                total = self.queue.counters["dropped"] + self.intake.pending.dropped
                self._event(
                    "dropped",
                    {"dropped": lost_in_memory, "total": total, "reason": "commit_failed"},
                )
            return
        self._recovered("queue", "queue commits succeed again")
        self._queued.set()
        events_dropped = self.queue.counters["events_dropped"] - events_dropped
        if events_dropped:
            self._event(
                "dropped",
                {"dropped": 0, "events": events_dropped, "reason": "max_bytes",
                 "total": self.queue.counters["dropped"]},
            )  # fmt: skip
        if dropped:
            self.dropped["full"] += dropped
            self._event(
                "dropped",
                {
                    "dropped": dropped,
                    "total": self.queue.counters["dropped"],
                    "reason": "max_bytes",
                },
            )
        for gap, repaired, lost in intake.closed_gaps:
            if lost:
                self._event("lost", {"topic": gap.topic, "lost": lost, "repaired": repaired})
        for event_gap, repaired, lost in intake.closed_event_gaps:
            if lost:
                self._event("lost", {"topic": event_gap.topic, "lost": lost,
                                     "repaired": repaired, "kind": "events"})  # fmt: skip

    async def _trim(self) -> None:
        dropped = await self.queue.trim()
        events = self.queue.trimmed_events
        if dropped:
            self.dropped["expired"] += dropped
        if dropped or events:
            fields = {"dropped": dropped, "total": self.queue.counters["dropped"],
                      "reason": "max_age"}  # fmt: skip
            if events:
                fields["events"] = events
            self._event("dropped", fields)

    # -- delivery ----------------------------------------------------------------------------

    async def _delivery(self) -> None:
        delay = self.sink.reconnect_initial
        while not self._stopping.is_set():
            if self._take_next_upstream():
                delay = self.sink.reconnect_initial
            try:
                await self.upstream.connect()
            except UpstreamUnavailable as exc:
                self._error("upstream", f"upstream unavailable: {exc}")
                await set_within(self._handover, delay)  # a new upstream does not wait
                if self._stopping.is_set():
                    return
                delay = min(delay * 2, self.sink.reconnect_max)
                continue
            delay = self.sink.reconnect_initial
            self.upstream_connected = True
            self._recovered("upstream", "upstream connected")
            try:
                await self._deliver_while_connected()
            except UpstreamUnavailable as exc:
                self._error("upstream", f"upstream lost: {exc}")
            finally:
                self.upstream_connected = False
                await self.upstream.close()

    def _take_next_upstream(self) -> bool:
        """Switch to the upstream a reload made (the old one is closed); True if it did."""
        self._handover.clear()
        upstream, self._next_upstream = self._next_upstream, None
        if upstream is None:
            return False
        self.upstream = upstream
        events, self.events = self.events, self._events_for(upstream)
        self._upstream_changed.set()
        if events != self.events:  # it takes events where the old one took none, or not
            self._resubscribe.set()
        log.info("sink %s: a new upstream (%s) takes over", self.name, self.sink.type)
        return True

    async def _deliver_while_connected(self) -> None:
        queue = self.queue
        watermark = self.backlog_watermark = queue.last_id
        live_after, backlog_after = watermark, 0
        size = self.sink.queue.batch_size
        # The backlog's token bucket, in samples: an entry is taken whole, so the bucket may
        # go into debt by up to one entry; it is paid back before the next backlog entry.
        tokens, refilled = float(size), time.monotonic()
        # Events: every queued record in id order, those queued before this connect historical.
        events_after, events_watermark = 0, queue.last_event_id
        while not (self._stopping.is_set() or self._next_upstream is not None):
            # Read each round: a reload may change them.
            size, rate = self.sink.queue.batch_size, self.sink.queue.drain_rate
            self._queued.clear()
            if self.events:
                events = await queue.peek_events(events_after, size)
                if events:
                    await self._deliver_events(events, events_watermark)
                    events_after = events[-1].id
                    continue
            live = await queue.peek(live_after, size)
            backlog: list[Entry] = []
            if backlog_after < watermark:
                now = time.monotonic()
                if rate:
                    tokens = min(float(size), tokens + (now - refilled) * rate)
                    refilled = now
                allowance = int(tokens) if rate else size
                if allowance >= 1:
                    backlog = await queue.peek(backlog_after, allowance, upto=watermark)
                    if not backlog:
                        backlog_after = watermark = self.backlog_watermark = 0
            if not live and not backlog:
                wait = 0.5
                if rate and backlog_after < watermark:
                    wait = min(wait, max(0.01, (1 - tokens) / rate))
                await set_within(self._queued, wait)  # new entries, or look again
                continue
            batch = _outgoing(backlog, True) + _outgoing(live, False)
            duplicates = await self.upstream.deliver(batch)
            await self._ack(backlog + live, duplicates)
            if live:
                live_after = live[-1].id
            if backlog:
                backlog_after = backlog[-1].id
                tokens -= sum(entry.count for entry in backlog)
                if backlog_after >= watermark:  # the whole backlog is delivered
                    backlog_after = watermark = self.backlog_watermark = 0

    async def _deliver_events(self, events: list[EventEntry], watermark: int) -> None:
        outgoing: list[OutgoingEvent] = []
        for event in events:
            try:
                fields = decode_record(event.payload).fields
            except BusDecodeError as exc:  # cannot happen to what the intake wrote; say so
                log.warning("sink %s: queued event %d unreadable, skipped: %s", self.name,
                            event.id, exc)  # fmt: skip
                continue
            historical = event.historical or event.id <= watermark
            outgoing.append(OutgoingEvent(event.topic, fields, historical, event.queued))
        deliver = self.upstream.deliver_events  # type: ignore[attr-defined]
        duplicates = await deliver(outgoing) if outgoing else 0
        await self._ack([], int(duplicates), events)

    async def _ack(
        self, entries: list[Entry], duplicates: int, events: list[EventEntry] | None = None
    ) -> None:
        """Delete delivered entries; if the queue cannot (a full disk), they stay queued and
        are sent again after the next reconnect (duplicates, which at-least-once allows)."""
        try:
            await self.queue.ack(entries, duplicates=duplicates, events=events or ())
        except sqlite3.Error as exc:
            self._error("queue", f"queue ack failed (entries will be sent again): {exc}")

    # -- commands from upstream (UpstreamContext.write) ---------------------------------------

    async def _write(self, module: str, point: str, value: SampleValue) -> None:
        assert self._client is not None
        await call_async(
            self._client, f"org.plantd.module.{module}", "write", {"point": point, "value": value}
        )

    # -- status ------------------------------------------------------------------------------

    @property
    def last_error(self) -> str | None:
        """What fails now: the queue's error first (it risks data), else the upstream's."""
        return self._errors.get("queue") or self._errors.get("upstream")

    def _error(self, source: str, message: str) -> None:
        if source not in self._errors:  # log the transition, not every retry
            log.warning("sink %s: %s", self.name, message)
        self._errors[source] = message

    def _recovered(self, source: str, message: str) -> None:
        failure = self._errors.pop(source, None)
        if failure is not None:
            log.info("sink %s: %s (after: %s)", self.name, message, failure)

    def _event(self, kind: str, fields: dict[str, Any]) -> None:
        if self._publisher is not None:
            self._publisher.publish_record(f"event.sink.{self.name}.{kind}", fields)

    async def _publish_status(self) -> None:
        self._event("status", self.status())

    def status(self) -> dict[str, Any]:
        queue = self.queue
        dropped = queue.counters["dropped"] + self.intake.pending.dropped
        return {
            "sink": self.name,
            "type": self.sink.type,
            "up_since": self.started,
            "connected": self.upstream_connected,
            "last_error": self.last_error,
            "queue": {
                "path": str(queue.path),
                "entries": queue.length,
                "bytes": queue.bytes,
                "max_bytes": queue.max_bytes,
                "backlog_watermark": self.backlog_watermark,
                "pending_commit": self.intake.pending_samples,
                "max_pending": self.intake.max_pending,
                "events": queue.events,
            },
            "events": {
                "prefixes": list(self.events),
                "received": self.intake.events_received,
                "topics": len(self.intake.event_cursors),
            },
            "received": self.intake.received,
            "open_gaps": len(self.intake.gaps),
            "open_event_gaps": len(self.intake.event_gaps),
            # Drops from memory reach the persistent counter with the next commit; count them now.
            "counters": {**queue.counters, "dropped": dropped},
            "upstream": self.upstream.status(),
            "points": len(self.intake.cursors),
        }


def sink_service(sink: Sink) -> ServiceDefinition:
    definition = ServiceDefinition(sink.service, f"Upstream sink {sink.name} ({sink.sink.type})")

    @definition.operation("status", access="read")
    async def _status(params: dict[str, Any]) -> Any:
        """Connection, queue backlog and bytes, counters (taken, delivered, dropped, lost…)."""
        return sink.status()

    return definition


def _outgoing(entries: list[Entry], historical: bool) -> list[Outgoing]:
    return [
        Outgoing(topic, sample, historical)
        for entry in entries
        for topic, sample in entry_samples(entry.topic, entry.payload)
    ]


def _latest(cursors: dict[str, tuple[Sample, bytes]]) -> dict[str, dict[str, Sample]]:
    """The last sample taken of every point, by module then point, from the cursors."""
    modules: dict[str, dict[str, Sample]] = {}
    for topic, (sample, _) in cursors.items():
        module, point = split_topic(topic)
        modules.setdefault(module, {})[point] = sample
    return modules


def _latest_events(cursors: dict[str, tuple[int | None, bytes]]) -> dict[str, dict[str, Any]]:
    """The last record taken of every event topic, by topic, from the event cursors."""
    latest: dict[str, dict[str, Any]] = {}
    for topic, (_, payload) in cursors.items():
        with contextlib.suppress(BusDecodeError):
            latest[topic] = decode_record(payload).fields
    return latest


def _literal_prefix(pattern: str) -> str:
    for index, char in enumerate(pattern):
        if char in "*?[":
            return pattern[:index]
    return pattern
