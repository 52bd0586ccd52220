"""The logger process: ``log.*`` records from the bus -> batches -> the store; an MDP service.

Theory of operation. Children of one TaskGroup:

- the **intake** task subscribes to ``log.`` and turns each record into a row (what the
  record lacks, its topic ``log.<source>.<level>`` says). A batch goes to the writer thread
  ``batch_interval`` after its first record arrived or once it holds ``BATCH_RECORDS``,
  whichever comes first; the intake gathers the next batch meanwhile and waits only when it
  has a full one while the writer is still on the previous one (the bus socket buffers
  then). Something on ``log.*`` that is not a record is skipped and counted;
- the **retention** task deletes records older than ``max_age`` every minute (the size bound
  is kept by the writer after each batch, see ``_store``);
- the **service** answers ``org.plantd.Logger`` (``query``, ``status``).

On stop, the batch in hand is committed before the store closes.

:func:`run_logger` runs this :class:`Logger` and its *companions* — the other jobs of the
``plantd-logger`` process, each a :class:`~plantd.runtime.Stoppable` — under one signal
handler.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from plantd.bus import BusSubscriber, Record
from plantd.config import PlantdConfig
from plantd.logger._service import logger_service
from plantd.logger._store import BATCH_RECORDS, LogStore, Row, store_summary, to_row
from plantd.runtime import Stoppable
from plantd.service import ServiceWorker

__all__ = ["PREFIX", "Logger", "run_logger"]

log = logging.getLogger(__name__)

PREFIX = "log."
_PRUNE_EVERY = 60.0
"""Seconds between two deletions of records older than ``max_age``."""


class Logger:
    def __init__(self, config: PlantdConfig, *, store: LogStore | None = None) -> None:
        self.config = config
        self.settings = config.logger
        self.path = self.settings.database_path(config.paths)
        self.store = store or LogStore(self.path, self.settings)
        self.received = 0
        self.skipped = 0  # not records: dropped at the intake
        self.started = time.time()
        self._batch: list[Row] = []
        self._deadline: float | None = None
        self._writing: asyncio.Future[int] | None = None
        self._stopping = asyncio.Event()
        self.worker = ServiceWorker(logger_service(self.status, self.store.read), config)
        self.connected = self.worker.connected  # registered at the broker: ready to serve

    def stop(self) -> None:
        self._stopping.set()
        self.worker.stop()

    async def run(self) -> None:
        subscriber = BusSubscriber(
            self.config.bus.backend, [PREFIX], high_water_mark=self.config.bus.high_water_mark
        )
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._intake(subscriber))
                tasks.create_task(self._retention())
                tasks.create_task(self.worker.run())
        finally:
            subscriber.close()
            await self._hand_over()  # the batch in hand goes to the writer…
            await self._hand_over()  # …and this waits until it is on disk
            self.store.close()

    async def _intake(self, subscriber: BusSubscriber) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.batch_interval
        while not self._stopping.is_set():
            deadline = self._deadline
            wait = 0.25 if deadline is None else min(0.25, max(0.0, deadline - loop.time()))
            message = await subscriber.receive_within(wait)
            if message is not None:
                payload = message.payload
                if isinstance(payload, Record) and message.topic.startswith(PREFIX):
                    self.received += 1
                    if not self._batch:
                        self._deadline = loop.time() + interval
                    self._batch.append(to_row(message.topic, payload.fields, time.time()))
                else:
                    self.skipped += 1
            deadline = self._deadline
            if deadline is not None and (
                len(self._batch) >= BATCH_RECORDS or loop.time() >= deadline
            ):
                await self._hand_over()

    async def _hand_over(self) -> None:
        """Give the batch in hand to the writer once the one before it is committed."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            try:
                await writing  # backpressure: at most one batch waits for the disk
            except Exception:  # not an SQLite error (those the store counts): log, go on
                log.exception("logger: a batch could not be written")
        batch, self._batch, self._deadline = self._batch, [], None
        if batch:
            self._writing = self.store.submit(batch)

    async def _retention(self) -> None:
        while True:
            try:
                async with asyncio.timeout(_PRUNE_EVERY):
                    await self._stopping.wait()
                return
            except TimeoutError:
                pass
            try:
                deleted = await self.store.prune_async()
                if deleted:
                    log.info("logger: deleted %d record(s) older than max_age", deleted)
            except Exception:  # supervisor edge: retention must not end the logger
                log.exception("logger: retention failed")

    async def status(self) -> dict[str, Any]:
        stats, settings = self.store.stats, self.settings
        summary = await self.store.read(store_summary)
        return {
            "database": str(self.path),
            "up_since": self.started,
            "received": self.received,
            "skipped": self.skipped,
            "pending": len(self._batch),
            **summary,
            "bytes": self.store.file_bytes(),
            "stored": stats.stored,
            "batches": stats.batches,
            "failed_batches": stats.failed_batches,
            "lost": stats.lost,
            "last_error": stats.last_error,
            "pruned": stats.pruned_by_age + stats.pruned_by_size,
            "pruned_by_age": stats.pruned_by_age,
            "pruned_by_size": stats.pruned_by_size,
            "max_bytes": settings.max_bytes,
            "max_age": settings.max_age,
            "batch_interval": settings.batch_interval,
        }


async def run_logger(config: PlantdConfig, environ: Mapping[str, str] | None = None) -> None:
    """Run the log store and its companions until SIGTERM/SIGINT (telling systemd when every
    one serves)."""
    from plantd.logger._observatory import Observatory
    from plantd.runtime import run_until_signal

    logger = Logger(config)
    # The other jobs of plantd-logger, each a Stoppable started and stopped with the store: the
    # metrics hub with its /metrics and /health endpoint and org.plantd.Health.
    companions: list[Stoppable] = [Observatory(config)]
    log.info(
        "logger: %s, batches of %g s or %d records, at most %d bytes",
        logger.path,
        config.logger.batch_interval,
        BATCH_RECORDS,
        config.logger.max_bytes,
    )
    await run_until_signal(
        [logger, *companions], environ=environ, description=f"storing logs in {logger.path}"
    )
