"""A third party's sink kind (``type: memo``, installed as its own distribution) forwarded
by the core against a real broker, and listed by ``plant sink list``: no edit of the core."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from plantd.bus import BusPublisher
from plantd.client import AsyncClient
from plantd.config import load_config
from plantd.runtime import set_within
from plantd.service import call_async
from plantd.sinks import Sink, load_sink
from plantd.testing import wait_for_workers
from tests.conftest import Stack
from tests.integration.sinks._helpers import plant_json, write_file
from tests.unit.sinks._memo_kind import MODULE, MemoUpstream, install

REPOSITORY = Path(__file__).resolve().parents[3]

SINK = """
type: memo
queue: {commit_interval: 20ms}
repair: {enabled: false}
memo: {label: tank-farm, keep: 100}
"""


async def test_a_third_party_kind_is_forwarded_through_the_core(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = install(monkeypatch, tmp_path / "site", {"memo": f"{MODULE}:SINK_KIND"})
    stack.start_broker()
    write_file(stack, "sinks.d", "up", SINK)
    config = load_config(stack.config_dir)
    sink = Sink(config, load_sink(config, "up"))
    upstream = sink.upstream
    assert isinstance(upstream, MemoUpstream)
    publisher = BusPublisher(config.bus.frontend)
    try:
        async with asyncio.timeout(20), asyncio.TaskGroup() as tasks:
            tasks.create_task(sink.run())
            await asyncio.to_thread(wait_for_workers, stack.endpoint, sink.service)
            # Until the subscription has reached the publisher (ZeroMQ's slow joiner).
            while not await set_within(upstream.arrived, 0.05):
                publisher.publish_sample("data.warm.up", 0.0)
            for n in range(1, 21):
                publisher.publish_sample("data.tank.level", float(n))
            while [o.sample.value for o in upstream.kept if o.topic == "data.tank.level"] != [
                float(n) for n in range(1, 21)
            ]:
                upstream.arrived.clear()
                await upstream.arrived.wait()

            async with AsyncClient.from_config(stack.endpoint, config.client) as client:
                status = await call_async(client, sink.service, "status")
            assert (status["type"], status["upstream"]["label"]) == ("memo", "tank-farm")
            assert upstream.context.latest()["tank"]["level"].value == 20.0
            sink.stop()
    finally:
        publisher.close()

    # The CLI's core lists it too, in a process that has the distribution installed.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(REPOSITORY)]))
    assert plant_json(stack, "sink", "list") == {"up": "memo"}
