"""The logging handler that queues a process's records for the bus.

``emit`` runs in whatever thread logs, so it must never wait on the bus: it turns the record
into its fields (now, while its arguments are what they were) and appends them to a bounded
queue that the telemetry thread empties (:mod:`plantd.telemetry._publisher`). When the queue
is full the OLDEST record goes — the newest say most about what is happening now — and is
counted (``plantd_log_records_dropped_total``), so a flood, a dead bus or a stopped broker
costs memory up to ``capacity`` records and nothing else.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Any

from plantd.logs import record_fields
from plantd.telemetry import LEVELS, log_topic
from plantd.telemetry._metrics import COUNTS

__all__ = ["BusLogHandler", "Route", "level_name", "log_fields"]

Route = Callable[[logging.LogRecord], str | None]
"""The source a record goes out as (None: the process's own), e.g. the module host's
``module.<name>`` for a hosted module's records."""

_PLAIN = (str, int, float, bool, type(None))
_BASE = ("time", "level", "source", "logger", "message")
_JOURNAL_PREFIX = "PLANTD_"


def level_name(levelno: int) -> str:
    """One of :data:`~plantd.telemetry.LEVELS` for a logging level number (custom levels go
    to the standard level at or above them)."""
    for name, number in zip(LEVELS, (10, 20, 30, 40), strict=False):
        if levelno <= number:
            return name
    return "critical"


def log_fields(record: logging.LogRecord, source: str) -> dict[str, Any]:
    """What a record says on the bus: time, level, source, logger, message, its structured
    fields (``PLANTD_MODULE`` as ``module``; values that are not JSON scalars as text) and
    ``exc``, the traceback, if it has one."""
    fields: dict[str, Any] = {}
    for key, value in record_fields(record).items():  # PLANTD_MODULE is "module" there
        if key.startswith("_") or key in _BASE:
            continue
        fields[key] = value if isinstance(value, _PLAIN) else str(value)
    try:
        message = record.getMessage()
    except Exception:  # bad arguments: the stream handler reports it; we keep what we have
        message = str(record.msg)
    fields.update(
        time=record.created,
        level=level_name(record.levelno),
        source=source,
        logger=record.name,
        message=message,
    )
    if record.exc_info:
        fields["exc"] = logging.Formatter().formatException(record.exc_info)
    elif record.exc_text:
        fields["exc"] = record.exc_text
    if record.stack_info:
        fields["stack"] = record.stack_info
    return fields


class BusLogHandler(logging.Handler):
    """Queues records at ``level`` and above as ``(topic, fields)``, at most ``capacity``.

    Records logged by the thread that publishes them (:meth:`ignore_thread`) are not queued:
    what the publisher itself logs (the bus refused its key, a socket error) goes to the
    process's other handlers only, never round again.
    """

    def __init__(
        self, source: str, level: int | str, capacity: int, *, route: Route | None = None
    ) -> None:
        super().__init__(level)
        self.source = source
        self.capacity = capacity
        self._route = route
        self._queue: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._queue_lock = threading.Lock()  # held only to append, or to take the queue
        self._ignored: int | None = None
        self.ready = threading.Event()  # set when records wait

    def ignore_thread(self, ident: int | None) -> None:
        self._ignored = ident

    @property
    def queued(self) -> int:
        return len(self._queue)

    def emit(self, record: logging.LogRecord) -> None:
        if threading.get_ident() == self._ignored:
            return
        try:
            source = self.source
            if self._route is not None:
                source = self._route(record) or source
            fields = log_fields(record, source)
            item = (log_topic(source, fields["level"]), fields)
            with self._queue_lock:
                if len(self._queue) >= self.capacity:
                    self._queue.popleft()
                    COUNTS.dropped += 1
                self._queue.append(item)
            if not self.ready.is_set():
                self.ready.set()
        except Exception:
            self.handleError(record)

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        """Everything queued, oldest first; the queue is empty afterwards."""
        self.ready.clear()  # before taking: a record queued after this sets it again
        with self._queue_lock:
            taken, self._queue = self._queue, collections.deque()
        return list(taken)
