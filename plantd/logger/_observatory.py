"""The metrics side of plantd-logger, as one companion of the log store: the hub fed from the
bus (``metrics.``), ``org.plantd.Health`` and the ``/metrics`` + ``/health`` endpoint.

:class:`Observatory` is a :class:`plantd.runtime.Stoppable` (``run``/``stop``, and
``connected``: its Health worker registered), so ``run_logger`` runs it beside the store.
An endpoint that cannot be served (``logger.listen`` taken) is logged as an error and the
rest goes on: the logs and the Health service are worth more than a dead process.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from plantd.bus import BusSubscriber
from plantd.clock import SYSTEM_CLOCK, Clock
from plantd.config import PlantdConfig
from plantd.logger._health import configured_modules, health_service, judge_hub
from plantd.logger._http import MetricsServer, serve_metrics
from plantd.logger._metrics import MetricsHub
from plantd.logger._system import THERMAL_ZONE, SystemCollector
from plantd.service import ServiceWorker

__all__ = ["METRICS_PREFIX", "Observatory"]

log = logging.getLogger(__name__)

METRICS_PREFIX = "metrics."


class Observatory:
    def __init__(
        self,
        config: PlantdConfig,
        *,
        clock: Clock = SYSTEM_CLOCK,
        thermal_zone: Path = THERMAL_ZONE,
    ) -> None:
        self.config = config
        self.hub = MetricsHub(
            default_interval=config.metrics.interval,
            clock=clock,
            system=SystemCollector(config.paths.data, thermal_zone=thermal_zone),
        )
        self.check = judge_hub(self.hub, lambda: configured_modules(config.source_dir))
        self.worker = ServiceWorker(health_service(self.check), config)
        self.connected = self.worker.connected  # org.plantd.Health registered: ready
        self.server: MetricsServer | None = None
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()
        self.worker.stop()

    async def run(self) -> None:
        bus = self.config.bus
        subscriber = BusSubscriber(
            bus.backend, [METRICS_PREFIX], high_water_mark=bus.high_water_mark
        )
        try:
            self.server = serve_metrics(self.config, self.hub.registry, self.check)
        except OSError as exc:
            log.error("%s; serving no metrics endpoint", exc)
        try:
            async with asyncio.TaskGroup() as tasks:
                consuming = tasks.create_task(self.hub.consume(subscriber))
                tasks.create_task(self.worker.run())
                await self._stopping.wait()
                consuming.cancel()
        finally:
            subscriber.close()
            if self.server is not None:
                await asyncio.to_thread(self.server.stop)
