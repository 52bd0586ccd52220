"""The audit writer inside the broker: :meth:`AuditLog.record` from any thread, one thread
writes.

Theory of operation. ``record`` stamps the event (when its ``time`` is 0) and puts it on a
``SimpleQueue``: it never blocks and never touches SQLite, so the broker's loop goes on at
once. One thread owns the :class:`AuditStore` (and the bus publisher, if any) and turns the
queue into *entries*, kept in order in ``_pending`` until they are on disk:

- an event whose result is not ``denied`` is an entry of its own, ready to write;
- a refusal opens a *window*: later refusals equal in (principal, action, target, result,
  detail, source) whose times lie within :data:`WINDOW` seconds of the first fold into it
  (its ``count`` grows, ``folded`` counts them). A window closes once the clock is a second
  past its first event, or at once on :meth:`flush` and :meth:`stop`. A flood of 100,000 identical
  refused handshakes becomes one record a second, and the sum of the counts stays exact.

Every ``flush_interval`` (or as soon as :data:`BATCH` entries wait) the thread writes the
ready entries at the head of ``_pending``, at most ``BATCH`` per transaction, so records keep
the order in which their first event arrived (an open window holds the entries behind it for
at most a second). Each record written is also published as ``event.audit.<action>``.

A write that fails (disk full, database locked) keeps its entries and is retried with
capped exponential backoff; the failure and the recovery are each logged once. Entries are
kept in memory up to ``max_pending``; beyond that new events are dropped and counted in
``dropped`` (refusals still fold into open windows, which costs nothing). Records older than
``max_age`` are pruned at start and then every hour.
"""

from __future__ import annotations

import logging
import math
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import replace
from itertools import islice, takewhile
from pathlib import Path
from typing import Any

import zmq

from plantd._zmq import backoff_delays
from plantd.audit._store import AuditStore
from plantd.bus import BusPublisher
from plantd.config import AuditConfig
from plantd.errors import UsageError
from plantd.security import AuditEvent

__all__ = ["BATCH", "MAX_PENDING", "PRUNE_INTERVAL", "WINDOW", "AuditLog"]

log = logging.getLogger(__name__)

BATCH = 500  # most records per transaction; this many waiting triggers a write
WINDOW = 1.0  # seconds within which equal refusals fold into one record
MAX_PENDING = 100_000  # records held in memory while the store refuses writes
PRUNE_INTERVAL = 3600.0
_IDLE_WAKE = 60.0  # with nothing to write, the thread still wakes to prune on time
_DRAIN = 5000  # queue items taken between two looks at the write schedule
_RETRY_MAX = 10.0

_FoldKey = tuple[str, str, str, str, str, str]


class _Entry:
    __slots__ = ("closed", "count", "event", "key", "seq")

    def __init__(self, event: AuditEvent, seq: int, key: _FoldKey | None) -> None:
        self.event = event
        self.seq = seq
        self.key = key
        self.count = event.count
        self.closed = key is None  # only refusals stay open for folding


class _Flush:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _Stop:
    __slots__ = ("deadline",)

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline


class AuditLog:
    """The broker's audit trail writer. ``start()``, ``record()`` freely, ``stop()``.

    Counters (read them from any thread): ``written`` records committed, ``folded`` events
    merged into another's record, ``dropped`` events lost (memory bound, or unwritable at
    stop), ``last_error`` the current write error or None.
    """

    def __init__(
        self,
        path: Path,
        config: AuditConfig,
        *,
        bus_endpoint: str | None = None,
        clock: Callable[[], float] = time.time,
        flush_interval: float = 0.2,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.path = path
        self.config = config
        self.bus_endpoint = bus_endpoint
        self.written = 0
        self.folded = 0
        self.dropped = 0
        self.last_error: str | None = None
        self._clock = clock
        self._flush_interval = flush_interval
        self._max_pending = max_pending
        self._queue: queue.SimpleQueue[AuditEvent | _Flush | _Stop] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopped = False
        # Everything below belongs to the writer thread.
        self._store: AuditStore | None = None
        self._publisher: BusPublisher | None = None  # created on the thread
        self._pending: deque[_Entry] = deque()
        self._open: dict[_FoldKey, _Entry] = {}
        self._waiters: list[tuple[int, _Flush]] = []
        self._next_seq = 1
        self._retry_at = 0.0
        self._delays: Iterator[float] | None = None
        self._dropping = False
        self._next_prune = -math.inf

    # -- any thread --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (it opens the store, then prunes)."""
        if self._thread is not None:
            raise UsageError("AuditLog.start(): already started")
        self._thread = threading.Thread(target=self._run, name="plantd-audit", daemon=True)
        self._thread.start()

    def record(self, event: AuditEvent) -> None:
        """Queue ``event`` for writing (never blocks); a ``time`` of 0 is set to the clock."""
        if self._stopped:
            self.dropped += event.count
            return
        if event.time == 0.0 or not math.isfinite(event.time):
            event = replace(event, time=self._clock())
        self._queue.put(event)

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until every event recorded before this call is on disk; False on timeout."""
        thread = self._thread
        if thread is None:
            raise UsageError("AuditLog.flush(): not started")
        if not thread.is_alive():
            return False
        marker = _Flush()
        self._queue.put(marker)
        return marker.done.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued (retrying for up to ``timeout`` seconds), end the thread."""
        thread = self._thread
        if thread is None or self._stopped:
            return
        self._stopped = True
        self._queue.put(_Stop(time.monotonic() + timeout))
        thread.join(timeout + 1.0)

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:
            # Supervisor edge: only a bug gets here (write errors are handled in _write); say
            # what it costs rather than let the thread vanish.
            lost = sum(entry.count for entry in self._pending)
            log.exception("audit: the writer thread failed; %d event(s) not written", lost)
            self.dropped += lost
        finally:
            self._close_store()
            if self._publisher is not None:
                self._publisher.close()

    def _close_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except sqlite3.Error as exc:
                log.warning("audit: closing %s: %s", self.path, exc)

    def _loop(self) -> None:
        interval = self._flush_interval
        next_write = time.monotonic() + interval
        self._maintain()
        while True:
            if self._pending:
                wake = max(next_write, self._retry_at)
            else:
                wake = time.monotonic() + _IDLE_WAKE
            item: AuditEvent | _Flush | _Stop | None
            try:
                item = self._queue.get(timeout=max(0.0, wake - time.monotonic()))
            except queue.Empty:
                item = None
            taken = 0
            while item is not None:
                if isinstance(item, _Stop):
                    self._finish(item.deadline)
                    return
                self._take(item)
                taken += 1
                item = self._next_nowait() if taken < _DRAIN else None
            now = time.monotonic()
            if self._waiters or len(self._pending) >= BATCH or now >= next_write:
                if now >= self._retry_at:
                    self._write()
                next_write = time.monotonic() + interval
            self._maintain()

    def _next_nowait(self) -> AuditEvent | _Flush | _Stop | None:
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def _take(self, item: AuditEvent | _Flush) -> None:
        if isinstance(item, _Flush):
            self._close_all()  # every open window holds events recorded before the flush
            self._waiters.append((self._next_seq - 1, item))
            self._notify()
            return
        key: _FoldKey | None = None
        if item.denied:
            key = (item.principal, item.action, item.target, item.result, item.detail, item.source)
            window = self._open.get(key)
            if window is not None:
                if abs(item.time - window.event.time) < WINDOW:
                    window.count += item.count
                    self.folded += item.count
                    return
                window.closed = True
                del self._open[key]
        if len(self._pending) >= self._max_pending:
            self.dropped += item.count
            if not self._dropping:
                self._dropping = True
                log.error(
                    "audit: %d records wait to be written: dropping new events until the "
                    "store takes writes again",
                    len(self._pending),
                )
            return
        entry = _Entry(item, self._next_seq, key)
        self._next_seq += 1
        self._pending.append(entry)
        if key is not None:
            self._open[key] = entry

    def _close_all(self) -> None:
        for entry in self._open.values():
            entry.closed = True
        self._open.clear()

    def _write(self) -> bool:
        """Write the ready entries at the head of ``_pending``; False if a write failed."""
        now = self._clock()
        for key, entry in list(self._open.items()):
            # abs(): a window stamped ahead of the clock (set back since) must not stay open
            if abs(now - entry.event.time) >= WINDOW:
                entry.closed = True
                del self._open[key]
        pending = self._pending
        while pending and pending[0].closed:
            chunk = list(islice(takewhile(lambda e: e.closed, pending), BATCH))
            try:
                if self._store is None:
                    self._store = AuditStore(self.path, self.config, clock=self._clock)
                records = self._store.append_records(
                    [replace(e.event, count=e.count) for e in chunk]
                )
            except Exception as exc:
                # Supervisor edge: any failure (disk full, locked, a bug) keeps the entries
                # for a retry; the thread must not die with the broker's audit trail in it.
                # The retry opens the file afresh, in case this connection is what broke.
                self._close_store()
                self._failed(exc)
                return False
            for _ in chunk:
                pending.popleft()
            self.written += len(records)
            self._publish(records)
        self._recovered()
        self._notify()
        return True

    def _failed(self, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if self.last_error is None:
            log.error(
                "audit: cannot write to %s (%d record(s) kept in memory, retrying): %s",
                self.path,
                len(self._pending),
                message,
            )
        self.last_error = message
        if self._delays is None:
            self._delays = backoff_delays(max(self._flush_interval, 0.05), _RETRY_MAX)
        self._retry_at = time.monotonic() + next(self._delays)

    def _recovered(self) -> None:
        if self.last_error is not None:
            log.warning("audit: writing to %s again (after: %s)", self.path, self.last_error)
            self.last_error = None
            self._delays = None
            self._retry_at = 0.0
        if self._dropping and len(self._pending) < self._max_pending:
            self._dropping = False
            log.warning("audit: taking new events again; %d event(s) dropped", self.dropped)

    def _notify(self) -> None:
        head = self._pending[0].seq if self._pending else self._next_seq
        waiting = []
        for target, marker in self._waiters:
            if target < head:
                marker.done.set()
            else:
                waiting.append((target, marker))
        self._waiters = waiting

    def _publish(self, records: list[dict[str, Any]]) -> None:
        if self.bus_endpoint is None:
            return
        try:
            if self._publisher is None:
                self._publisher = BusPublisher(self.bus_endpoint)
            for record in records:
                self._publisher.publish_record(f"event.audit.{record['action']}", record)
        except zmq.ZMQError as exc:
            # The bus is a convenience; the file is the record. Say so once and stop trying.
            log.error("audit: cannot publish on %s: %s", self.bus_endpoint, exc)
            self.bus_endpoint = None

    def _maintain(self) -> None:
        """Prune at start and every :data:`PRUNE_INTERVAL` (by the clock)."""
        now = self._clock()
        if now < self._next_prune or time.monotonic() < self._retry_at:
            return
        self._next_prune = now + PRUNE_INTERVAL
        try:
            if self._store is None:
                self._store = AuditStore(self.path, self.config, clock=self._clock)
            pruned = self._store.prune(now)
        except Exception as exc:
            # Supervisor edge, as in _write: pruning fails again in an hour, writes go on.
            log.error("audit: pruning %s failed: %s: %s", self.path, type(exc).__name__, exc)
            return
        if pruned.by_age or pruned.by_size:
            log.info(
                "audit: pruned %d record(s) older than max_age, %d over max_bytes",
                pruned.by_age,
                pruned.by_size,
            )

    def _finish(self, deadline: float) -> None:
        """On stop: close every window, write it all (retrying until ``deadline``)."""
        self._close_all()
        while self._pending and time.monotonic() < deadline:
            wait = min(self._retry_at, deadline) - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # a retry's backoff, bounded by the stop deadline
            self._write()
        lost = sum(entry.count for entry in self._pending)
        while (item := self._next_nowait()) is not None:  # recorded while stop() ran
            if isinstance(item, AuditEvent):
                lost += item.count
        if lost:
            self.dropped += lost
            log.error("audit: %d event(s) could not be written to %s before stop", lost, self.path)
        self._notify()
