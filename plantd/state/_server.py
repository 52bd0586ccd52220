"""The state service in a process: the store, its change stream, and its MDP workers.

One :class:`StateService` per process. It serves ``org.plantd.State`` through ``state.workers``
worker sessions (MDP gives each worker one request at a time, so this is how many requests run
at once, and how many writes one group commit can gather), all on the event loop's thread, all
sharing the store. After each commit the writer thread hands the group's change events to the
loop, which publishes them on the bus in revision order before the writes are acknowledged.

When the store finds its database damaged while serving, the service stops serving (the workers
finish what they hold and unregister) and :meth:`StateService.run` raises the
:class:`StateDamaged` once they have: the process exits with one clear line, not a loop of
``internal`` errors.
"""

from __future__ import annotations

import asyncio
import logging

from plantd.bus import BusPublisher
from plantd.client import AsyncClient
from plantd.config import PlantdConfig
from plantd.errors import RequestTimeout
from plantd.service import ServiceWorker
from plantd.state._errors import StateDamaged, StateError
from plantd.state._limits import Limits
from plantd.state._model import ChangeEvent
from plantd.state._service import SERVICE_NAME, build_definition
from plantd.state._store import Store

__all__ = ["StateService", "open_store"]

log = logging.getLogger(__name__)

# A new PUB socket learns the bus's subscriptions a moment after it connects; events published
# before that would be dropped, so the workers register only after this pause.
_PUBLISHER_SETTLE = 0.05


def open_store(config: PlantdConfig) -> Store:
    """The store ``config`` names (``state.database``, else ``<paths.data>/state.db``)."""
    state = config.state
    return Store(
        state.database_path(config.paths),
        group_commit_max=state.group_commit_max,
        idempotency_window=state.idempotency_window,
        idempotency_ttl=state.idempotency_ttl,
    )


class StateService:
    """Serve ``store`` until :meth:`stop`; run it with :func:`plantd.runtime.run_until_signal`.

    The store must have been opened on the thread that runs the event loop (its reads run
    there); the caller closes it after :meth:`run` returns.
    """

    def __init__(self, config: PlantdConfig, store: Store) -> None:
        self.config = config
        self.store = store
        definition = build_definition(
            store,
            Limits.from_config(config),
            part_bytes=config.broker.max_message_bytes // 2,
        )
        self.workers = [ServiceWorker(definition, config) for _ in range(config.state.workers)]
        # Set once the database is open and the broker lists the service (the runtime waits
        # for a service's ``connected`` before it reports the process ready).
        self.connected = asyncio.Event()
        self.published = 0
        self._publisher: BusPublisher | None = None
        self._announcer: asyncio.Task[None] | None = None
        self._stopping = False
        self.damaged: StateDamaged | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        bus = self.config.bus
        self._publisher = BusPublisher(bus.frontend, high_water_mark=bus.high_water_mark)

        def on_commit(events: list[ChangeEvent]) -> None:  # on the writer thread
            loop.call_soon_threadsafe(self._publish, events)

        def on_damaged(damaged: StateDamaged) -> None:  # on the writer's thread or the loop's
            loop.call_soon_threadsafe(self._stop_damaged, damaged)

        self.store.on_commit = on_commit
        self.store.on_damaged = on_damaged
        try:
            await asyncio.sleep(_PUBLISHER_SETTLE)
            if self._stopping:
                return
            async with asyncio.TaskGroup() as group:
                for worker in self.workers:
                    group.create_task(worker.run())
                self._announcer = group.create_task(self._announce_ready())
        finally:
            self.store.on_commit = None
            self.store.on_damaged = None
            self._publisher.close()
            self._publisher = None
        if self.damaged is not None:
            raise self.damaged

    def stop(self) -> None:
        """Finish the requests in hand, unregister, and let :meth:`run` return."""
        self._stopping = True
        if self._announcer is not None:
            self._announcer.cancel()
        for worker in self.workers:
            worker.stop()

    def _stop_damaged(self, damaged: StateDamaged) -> None:
        if self.damaged is not None:
            return
        self.damaged = damaged
        log.error("%s", damaged)  # the one line; no traceback: nothing here is a bug
        self.stop()

    def _publish(self, events: list[ChangeEvent]) -> None:
        publisher = self._publisher
        if publisher is None:
            return  # stopping: subscribers resync from a snapshot when they see the gap
        for event in events:
            publisher.publish_record(event.topic, event.to_record())
        self.published += len(events)

    async def _announce_ready(self) -> None:
        """Log one ``ready`` line once the broker lists the service (the database is open)."""
        delay = 0.02
        async with AsyncClient(self.config.broker.endpoint, timeout=0.5, retries=0) as client:
            while True:
                try:
                    reply = await client.request("mmi.service", SERVICE_NAME.encode())
                    if reply == [b"200"]:
                        break
                except RequestTimeout:
                    pass
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        try:
            revision, scopes, keys = self.store.totals()
        except StateError:
            return  # damaged: on_damaged stops the service
        log.info(
            "ready: %s serving %s with %d workers; revision %d, %d scopes, %d keys",
            self.store.path,
            SERVICE_NAME,
            len(self.workers),
            revision,
            scopes,
            keys,
        )
        self.connected.set()
