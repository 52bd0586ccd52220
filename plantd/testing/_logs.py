"""Log records in tests: those a block of code logs (:func:`capture_logs`), and those that
arrive on the bus (:func:`bus_log_records`), each as a dict with its structured fields."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import zmq

from plantd._zmq import sync_context
from plantd.bus import BusDecodeError, Record, decode
from plantd.logs import record_fields
from plantd.security import Credentials, secure

__all__ = ["BusRecords", "bus_log_records", "capture_logs"]

BusItem = tuple[str, dict[str, Any]]


class _Capture(logging.Handler):
    def __init__(self, into: list[dict[str, Any]]) -> None:
        super().__init__(logging.NOTSET)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        entry: dict[str, Any] = {
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(record_fields(record))
        if record.exc_info:
            entry["exc"] = logging.Formatter().formatException(record.exc_info)
        self.into.append(entry)


@contextlib.contextmanager
def capture_logs(level: str = "debug", logger: str = "") -> Iterator[list[dict[str, Any]]]:
    """Collect the records ``logger`` (default: all) logs at ``level`` and above in the block,
    as ``{"level", "logger", "message", **fields, "exc"?}``::

        with capture_logs("warning", "plantd.module") as records:
            ...
        assert records[0]["point"] == "t1"

    The logger's level is lowered for the block if it would have dropped such records.
    """
    records: list[dict[str, Any]] = []
    target = logging.getLogger(logger or None)
    handler = _Capture(records)
    handler.setLevel(level.upper())
    old_level = target.level
    if target.getEffectiveLevel() > handler.level:
        target.setLevel(handler.level)
    target.addHandler(handler)
    try:
        yield records
    finally:
        target.removeHandler(handler)
        target.setLevel(old_level)


class BusRecords:
    """Records (not samples) arriving on the bus on ``prefixes``, collected by a thread of its
    own so that a synchronous test can watch them: ``items`` holds ``(topic, fields)``."""

    def __init__(
        self,
        endpoint: str,
        prefixes: Iterable[str] = ("log.",),
        *,
        credentials: Credentials | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._prefixes = [prefix.encode() for prefix in prefixes]
        self._credentials = credentials
        self._items: list[BusItem] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bus-records", daemon=True)

    @property
    def items(self) -> list[BusItem]:
        with self._lock:
            return list(self._items)

    def start(self) -> BusRecords:
        self._thread.start()
        self._subscribed.wait(5)
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def wait_for(
        self,
        predicate: Callable[[str, dict[str, Any]], object],
        timeout: float = 10.0,
        *,
        meanwhile: Callable[[], object] | None = None,
    ) -> BusItem:
        """The first record for which ``predicate(topic, fields)`` holds, waiting up to
        ``timeout`` seconds; ``meanwhile`` is called at every look (log a record again until
        the bus passes it on, as subscriptions take a moment to reach a new publisher)."""
        deadline = time.monotonic() + timeout
        while True:
            for topic, fields in self.items:
                if predicate(topic, fields):
                    return topic, fields
            if time.monotonic() > deadline:
                topics = sorted({topic for topic, _ in self.items})
                raise AssertionError(f"no such record within {timeout} s; topics seen: {topics}")
            if meanwhile is not None:
                meanwhile()
            time.sleep(0.02)

    def _run(self) -> None:
        sock = sync_context().socket(zmq.SUB)
        sock.linger = 0
        try:
            secure(sock, self._credentials)
            for prefix in self._prefixes:
                sock.subscribe(prefix)
            sock.connect(self.endpoint)
            self._subscribed.set()
            while not self._stop.is_set():
                if not sock.poll(50):
                    continue
                frames = sock.recv_multipart()
                if len(frames) != 2:
                    continue
                try:
                    payload = decode(frames[1])
                except BusDecodeError:
                    continue
                if isinstance(payload, Record):
                    with self._lock:
                        self._items.append((frames[0].decode(), dict(payload.fields)))
        finally:
            sock.close()
            self._subscribed.set()


@contextlib.contextmanager
def bus_log_records(
    endpoint: str,
    prefixes: Iterable[str] = ("log.",),
    *,
    credentials: Credentials | None = None,
) -> Iterator[BusRecords]:
    """Collect the records published on ``prefixes`` (``bus.backend``) during the block::

    with bus_log_records(config.bus.backend) as bus:
        log.warning("hot", extra={"point": "t1"})
        topic, fields = bus.wait_for(lambda topic, f: f.get("point") == "t1")
    """
    records = BusRecords(endpoint, prefixes, credentials=credentials).start()
    try:
        yield records
    finally:
        records.close()
