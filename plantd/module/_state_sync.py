"""Keeping a module's last values and status in the state service.

Every ``state_interval`` the values published since the last save (only those: the deadband that
spares the bus spares the flash) and the module's status go to scope ``org.plantd.module.NAME``
as keys ``value.<point>`` and ``status``, in batches the state service applies atomically. The
CLI and UI read them there without polling the device.

The state service being down must not disturb the module: a failed save keeps the values for
the next attempt (newer readings of the same point replace older ones, so the backlog is bounded
by the number of points), is logged once, and its recovery once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from plantd.client import AsyncClient
from plantd.config import PlantdConfig
from plantd.errors import RequestError
from plantd.module._points import LastValue
from plantd.module._runtime import ModuleRuntime
from plantd.state import StateClient

__all__ = ["StateSync"]

log = logging.getLogger(__name__)

_BATCH_OPS = 500  # below the state service's default max_batch_ops (1000)


class StateSync:
    def __init__(self, config: PlantdConfig, runtime: ModuleRuntime) -> None:
        self.config = config
        self.runtime = runtime
        self.scope = runtime.service  # org.plantd.module.NAME
        self.saves = 0
        self.failures = 0
        self._pending: dict[str, LastValue] = {}
        self._failing = False
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        interval = self.runtime.module.state_interval
        async with AsyncClient.from_config(
            self.config.broker.endpoint, self.config.client, retries=0, timeout=max(2.0, interval)
        ) as client:
            state = StateClient(client)
            scope_ready = False
            while not self._stopping.is_set():
                try:
                    async with asyncio.timeout(interval):
                        await self._stopping.wait()
                except TimeoutError:
                    pass
                self._pending.update(self.runtime.table.take_changed())
                try:
                    if not scope_ready:
                        await state.create_scope(self.scope)
                        scope_ready = True
                    await self._save(state)
                except RequestError as exc:
                    self._failed(exc)
                else:
                    if self._failing:
                        log.warning("module %s: saving to the state service again", self.scope)
                        self._failing = False

    async def _save(self, state: StateClient) -> None:
        ops: list[dict[str, Any]] = [
            {"op": "set", "scope": self.scope, "key": f"value.{name}", "value": last.as_json()}
            for name, last in self._pending.items()
        ]
        ops.append(
            {"op": "set", "scope": self.scope, "key": "status", "value": self.runtime.status()}
        )
        for start in range(0, len(ops), _BATCH_OPS):
            await state.batch(ops[start : start + _BATCH_OPS])
        self._pending.clear()
        self.saves += 1

    def _failed(self, exc: RequestError) -> None:
        self.failures += 1
        if not self._failing:
            log.warning(
                "module %s: cannot save to the state service (%s); keeping the values for the "
                "next attempt",
                self.scope,
                exc,
            )
            self._failing = True
