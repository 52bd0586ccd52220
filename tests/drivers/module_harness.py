"""Running a real driver inside a ModuleRuntime, against a broker, for the drivers' tests.

    async with running_module(stack, module, driver) as running:
        sample = await running.sample("data.m.speed", Quality.GOOD)

The module's name decides its topics (``data.<module>.<point>``); parse it from a file named
``<module>.yaml`` (see :func:`write_module`). The runtime keeps real time unless a test passes
``clock=`` (a :class:`plantd.testing.ManualClock`, which the test then advances); a real
driver's own timeouts are real time either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plantd.bus import BusPublisher, BusSubscriber, Quality, Sample
from plantd.client import AsyncClient
from plantd.clock import SYSTEM_CLOCK, Clock
from plantd.config import load_config
from plantd.module import Driver, ModuleConfig
from plantd.module._commands import module_service
from plantd.module._runtime import ModuleRuntime
from plantd.service import ServiceWorker, call_async
from plantd.testing import wait_for_workers
from tests.conftest import Stack


def write_module(directory: Path, text: str, name: str = "m") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


@dataclass
class RunningModule:
    runtime: ModuleRuntime
    client: AsyncClient
    subscriber: BusSubscriber
    received: list[tuple[str, Sample]] = field(default_factory=list)
    """Every sample so far: waiting for one topic does not lose another's."""
    _next: dict[str, int] = field(default_factory=dict)  # per topic: where its search resumes

    async def sample(
        self,
        topic: str,
        quality: Quality | None = None,
        where: Callable[[Sample], bool] | None = None,
        timeout: float = 10.0,
    ) -> Sample:
        """The next sample on ``topic`` (with ``quality``, and matching ``where``), after the
        one this returned last for ``topic``."""
        index = self._next.get(topic, 0)
        async with asyncio.timeout(timeout):
            while True:
                while index < len(self.received):
                    seen_topic, sample = self.received[index]
                    index += 1
                    if seen_topic != topic:
                        continue
                    if quality is not None and sample.quality is not quality:
                        continue
                    if where is None or where(sample):
                        self._next[topic] = index
                        return sample
                message = await self.subscriber.receive()
                if isinstance(message.payload, Sample):
                    self.received.append((message.topic, message.payload))

    async def until(self, condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        """Return once ``condition`` holds (asked every 20 ms), at most ``timeout`` seconds: for
        what the runtime knows before anything reaches the bus (a failed reconnect)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"never within {timeout:g} s: {what}")
            await asyncio.sleep(0.02)

    async def call(self, operation: str, params: dict[str, Any] | None = None) -> Any:
        return await call_async(self.client, self.runtime.service, operation, params)


async def joined(subscriber: BusSubscriber, frontend: str, topic: str) -> None:
    """Wait until ``subscriber`` receives what is published now (ZeroMQ's slow joiner: a
    subscriber that has not joined yet misses the first samples, which may never come again)."""
    probe = BusPublisher(frontend)
    try:
        async with asyncio.timeout(10):
            while await subscriber.receive_within(0.05) is None:
                probe.publish_record(topic, {"probe": True})
    finally:
        probe.close()


@asynccontextmanager
async def running_module(
    stack: Stack, module: ModuleConfig, driver: Driver, *, clock: Clock = SYSTEM_CLOCK
) -> AsyncIterator[RunningModule]:
    if not stack.processes:
        stack.start_broker()
    config = load_config(stack.config_dir)
    runtime = ModuleRuntime(
        config, module, driver, reconnect_initial=0.1, reconnect_max=0.5, clock=clock
    )
    sink = ServiceWorker(module_service(runtime), config)
    subscriber = BusSubscriber(config.bus.backend, [f"data.{module.name}."])
    await joined(subscriber, config.bus.frontend, f"data.{module.name}.-probe")
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(runtime.run(sink))
            await asyncio.to_thread(wait_for_workers, stack.endpoint, runtime.service)
            async with AsyncClient(stack.endpoint, timeout=5, retries=0) as client:
                yield RunningModule(runtime, client, subscriber)
            runtime.stop()
    finally:
        subscriber.close()
