"""The historian process: bus samples -> batches -> the store; an MDP service; a status record.

Theory of operation. Children of one TaskGroup:

- the **intake** task subscribes to ``historian.prefix`` and gathers ``data.*`` samples into
  a batch. A batch is handed to the writer thread when it holds ``batch_size`` samples or
  ``batch_interval`` after its first sample arrived, whichever comes first. The intake goes on
  gathering the next batch while the writer commits; it waits only when it has a full batch
  and the writer is still on the previous one (then the bus socket buffers, up to
  ``bus.high_water_mark``): at most one batch is ever waiting for the disk. So a sample
  received at *t* is on disk by *t* + ``batch_interval`` + one commit, as long as a commit
  takes less than ``batch_interval``: that is the loss window of a power cut or a kill -9
  (docs/historian.md);
- the **maintenance** task applies retention every ``maintenance_interval``;
- the **status** task publishes a record on ``event.historian.status`` every
  ``status_interval``;
- the **service** answers ``org.plantd.Historian`` (``status``, ``query``, ``samples``).

On stop, the batch in hand is committed before the store closes.

SIGHUP (``systemctl reload``) re-reads ``plantd.yaml``: :meth:`Historian.reload` takes the
``historian:`` settings that can change live (:mod:`plantd.historian._reload`) and runs a
retention pass at once when retention changed; a file with problems is logged and changes
nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from plantd.bus import BusPublisher, BusSubscriber, GapTracker, Sample
from plantd.config import PlantdConfig, load_config
from plantd.errors import ConfigError
from plantd.historian import _metrics
from plantd.historian._query import summary
from plantd.historian._reload import merge
from plantd.historian._service import historian_service
from plantd.historian._store import HistoryStore
from plantd.service import ServiceWorker

__all__ = ["STATUS_TOPIC", "Historian", "run_historian"]

log = logging.getLogger(__name__)

STATUS_TOPIC = "event.historian.status"
_DATA = "data."


class Historian:
    def __init__(self, config: PlantdConfig, *, store: HistoryStore | None = None) -> None:
        self.config = config
        self.settings = config.historian
        self.path = self.settings.database_path(config.paths)
        self.store = store or HistoryStore(self.path, self.settings)
        self.gaps = GapTracker()
        self._gaps_counted = 0  # gaps.missing as far as the gaps counter has it
        self.received = 0
        self.started = time.time()
        self._batch: list[tuple[str, Sample]] = []
        self._batch_deadline: float | None = None
        self._writing: asyncio.Future[int] | None = None  # the batch the writer has in hand
        self._writing_size = 0
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()  # one hand-over to the writer at a time, in order
        self._reloads: set[asyncio.Task[None]] = set()  # retention passes a reload started
        self.worker = ServiceWorker(
            historian_service(self.status, self.store.read, self.flush), config
        )
        self.connected = self.worker.connected  # registered at the broker: ready to serve

    def stop(self) -> None:
        self._stopping.set()
        self.worker.stop()

    async def run(self) -> None:
        subscriber = BusSubscriber(
            self.config.bus.backend,
            [self.settings.prefix],
            high_water_mark=self.config.bus.high_water_mark,
        )
        publisher = BusPublisher(self.config.bus.frontend)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._intake(subscriber))
                tasks.create_task(
                    self._every(lambda: self.settings.maintenance_interval, self._maintain)
                )
                tasks.create_task(
                    self._every(
                        lambda: self.settings.status_interval, lambda: self._publish(publisher)
                    )
                )
                tasks.create_task(self.worker.run())
        finally:
            subscriber.close()
            publisher.close()
            await self.flush()
            self.store.close()

    # -- intake ------------------------------------------------------------------------------

    async def _intake(self, subscriber: BusSubscriber) -> None:
        loop = asyncio.get_running_loop()
        receive, observe, stopping = subscriber.receive_within, self.gaps.observe, self._stopping
        skip = len(_DATA)
        while not stopping.is_set():
            # Read each round, not once: a reload may change them (two attribute reads).
            size, interval = self.settings.batch_size, self.settings.batch_interval
            deadline = self._batch_deadline
            wait = 0.25 if deadline is None else min(0.25, max(0.0, deadline - loop.time()))
            message = await receive(wait)
            # (self._batch, not a local: flush() from the service may swap it meanwhile)
            if message is not None:
                topic, sample = message.topic, message.payload
                if type(sample) is Sample and topic.startswith(_DATA):
                    self.received += 1
                    observe(topic, sample)
                    if not self._batch:
                        self._batch_deadline = deadline = loop.time() + interval
                    self._batch.append((topic[skip:], sample))
                    if len(self._batch) < size and deadline and loop.time() < deadline:
                        continue  # the common case: gather on
            deadline = self._batch_deadline
            if deadline is not None and (len(self._batch) >= size or loop.time() >= deadline):
                await self._hand_over()

    async def _hand_over(self) -> None:
        """Give the batch in hand to the writer, once the one before it is committed."""
        missing = self.gaps.missing  # counted per batch, not per sample
        if missing > self._gaps_counted:
            _metrics.GAPS.inc(missing - self._gaps_counted)
            self._gaps_counted = missing
        async with self._lock:
            if self._writing is not None:
                await self._writing  # backpressure: at most one batch waits for the disk
                self._writing = None
            batch, self._batch, self._batch_deadline = self._batch, [], None
            if batch:
                self._writing = self.store.submit_batch(batch)
                self._writing_size = len(batch)

    async def flush(self) -> None:
        """Commit the batch in hand (and wait for every earlier one)."""
        await self._hand_over()
        async with self._lock:
            if self._writing is not None:
                await self._writing
                self._writing = None
            await self.store.flush()

    def _in_writer(self) -> int:
        """Samples handed to the writer and not yet committed."""
        writing = self._writing
        return 0 if writing is None or writing.done() else self._writing_size

    # -- housekeeping ------------------------------------------------------------------------

    async def _every(self, interval: Callable[[], float], job: Any) -> None:
        """Run ``job`` every ``interval()`` seconds (read each round: a reload may change it)."""
        while True:
            try:
                async with asyncio.timeout(interval()):
                    await self._stopping.wait()
                return
            except TimeoutError:
                pass
            try:
                result = job()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # supervisor edge: housekeeping must not end the historian
                log.exception("historian: periodic job failed")

    async def _maintain(self) -> None:
        await self.store.maintain_async()

    # -- reload ------------------------------------------------------------------------------

    def reload(self, read: PlantdConfig) -> None:
        """Take the live ``historian:`` settings of ``read`` (SIGHUP; on the event loop, does
        not block); a retention change gets a retention pass at once."""
        merged = merge(self.config, read)
        for line in merged.restart:
            log.warning("SIGHUP: %s: needs a restart, not applied", line)
        if not merged.applied:
            log.info("SIGHUP: no setting that applies live has changed")
            return
        self.settings = merged.settings
        self.config = dataclasses.replace(self.config, historian=merged.settings)
        self.store.config = merged.settings  # the writer reads it at each retention pass
        for line in merged.applied:
            log.info("SIGHUP: applied %s", line)
        if merged.retention_changed:
            task = asyncio.get_running_loop().create_task(self._maintain_now())
            self._reloads.add(task)
            task.add_done_callback(self._reloads.discard)

    async def _maintain_now(self) -> None:
        try:
            deleted = await self.store.maintain_async()
        except Exception:  # the periodic pass tries again
            log.exception("historian: the retention pass after the reload failed")
        else:
            log.info(
                "historian: retention pass after the reload: %d row(s) by age, %d by size",
                deleted["by_age"],
                deleted["by_size"],
            )

    async def _publish(self, publisher: BusPublisher) -> None:
        publisher.publish_record(STATUS_TOPIC, await self.status())

    async def status(self) -> dict[str, Any]:
        stats = self.store.stats
        sizes = await self.store.read(summary)
        settings = self.settings
        return {
            "database": str(self.path),
            "up_since": self.started,
            "received": self.received,
            "missing_on_bus": self.gaps.missing,
            "pending": len(self._batch) + self._in_writer(),
            "batches": stats.batches,
            "stored": stats.samples,
            "failed_batches": stats.failed_batches,
            "lost_in_failed_batches": stats.lost_samples,
            "last_commit": stats.last_commit,
            "last_commit_seconds": stats.last_commit_seconds,
            "last_error": stats.last_error,
            "deleted_by_age": stats.deleted_by_age,
            "deleted_by_size": stats.deleted_by_size,
            **sizes,
            "max_bytes": settings.max_bytes,
            "batch_interval": settings.batch_interval,
            "batch_size": settings.batch_size,
            "raw_max_age": settings.raw_max_age,
            "minute_max_age": settings.minute_max_age,
            "hour_max_age": settings.hour_max_age,
        }


async def run_historian(config: PlantdConfig, environ: Mapping[str, str] | None = None) -> None:
    """Run the historian until SIGTERM/SIGINT (telling systemd when it serves); SIGHUP
    re-reads ``plantd.yaml`` from ``config.source_dir`` with ``environ`` (the process's
    environment when None)."""
    from plantd.runtime import run_until_signal

    historian = Historian(config)
    reread_environ = dict(os.environ if environ is None else environ)
    log.info(
        "historian: %s, batches of %g s or %d samples",
        historian.path,
        config.historian.batch_interval,
        config.historian.batch_size,
    )
    await run_until_signal(
        [historian],
        environ=environ,
        description=f"storing samples in {historian.path}",
        reload=lambda: reload_from_file(historian, config, reread_environ),
    )


def reload_from_file(
    historian: Historian, config: PlantdConfig, environ: Mapping[str, str]
) -> None:
    """SIGHUP: read ``plantd.yaml`` again (a small file: quick enough for the event loop) and
    hand it to ``historian``; a file with problems is logged, file:line, and changes nothing."""
    try:
        read = load_config(config.source_dir, environ)
    except ConfigError as exc:
        log.error(
            "SIGHUP: the configuration has problems; nothing applied, running on with the "
            "settings as they were:\n%s",
            exc,
        )
        return
    historian.reload(read)
