"""The forwarder in-process with a scripted upstream, against a real broker: live data first,
the backlog at its drain rate, redelivery after a failed delivery, drop-oldest with its event,
and the status over MDP."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from typing import Any

from plantd.bus import BusPublisher, BusSubscriber, Record, Sample, encode_sample
from plantd.client import AsyncClient
from plantd.config import load_config
from plantd.service import call_async
from plantd.sinks import Intake, Outgoing, Sink, UpstreamUnavailable, load_sink
from plantd.testing import wait_for_workers
from tests.conftest import Stack
from tests.integration.sinks._helpers import write_file


class ScriptedUpstream:
    """Records what it is given; ``fail`` makes the next deliveries fail; ``down`` refuses
    connections."""

    def __init__(self) -> None:
        self.batches: list[list[Outgoing]] = []
        self.fail = 0
        self.down = False
        self.connects = 0

    async def connect(self) -> None:
        if self.down:
            raise UpstreamUnavailable("scripted: down")
        self.connects += 1

    async def deliver(self, batch: Sequence[Outgoing]) -> int:
        self.batches.append(list(batch))
        if self.fail:
            self.fail -= 1
            raise UpstreamUnavailable("scripted: no acknowledgement")
        return 0

    async def close(self) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {"connects": self.connects}

    def delivered(self) -> list[tuple[str, int, bool]]:
        return [(o.topic, o.sample.seq, o.historical) for b in self.batches for o in b]


async def eventually(condition: Callable[[], bool], timeout: float) -> None:
    """Return once ``condition()`` holds; TimeoutError after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        for _ in itertools.count():
            if condition():
                return
            await asyncio.sleep(0.05)


def real(delivered: list[tuple[str, int, bool]]) -> list[tuple[str, int, bool]]:
    """Without the warm-up samples."""
    return [item for item in delivered if item[0] != "data.warm.up"]


LAST = 5051  # the last sample published on data.new.p

SINK = """
type: mqtt
reconnect_initial: 50ms
reconnect_max: 100ms
queue: {drain_rate: 200, batch_size: 50, commit_interval: 50ms, max_bytes: 64KiB}
repair: {enabled: false, timeout: 1s}
"""


async def test_backlog_drains_at_its_rate_behind_live_data(stack: Stack) -> None:
    stack.start_broker()
    write_file(stack, "sinks.d", "s", SINK)
    config = load_config(stack.config_dir)
    settings = load_sink(config, "s")
    # A backlog of 400 samples left by an earlier run, as a restart would find it.
    from plantd.sinks import DiskQueue

    queue = DiskQueue(settings.queue_path(config), max_bytes=10**6, max_age=3600)
    backlog = Intake()
    backlog.entries = [
        ("data.old.p", encode_sample(Sample(1.0, 1.0, seq=n, epoch=1))) for n in range(1, 401)
    ]
    queue.commit_now(backlog)
    queue.close()

    upstream = ScriptedUpstream()
    upstream.down = True
    sink = Sink(config, settings, upstream=upstream)
    publisher = BusPublisher(config.bus.frontend)
    events = BusSubscriber(config.bus.backend, ["event.sink.s."])
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(sink.run())
        await asyncio.to_thread(wait_for_workers, stack.endpoint, sink.service)
        async with asyncio.timeout(5):  # until the subscription has reached the publisher
            for _ in itertools.count():
                publisher.publish_sample("data.warm.up", 0.0)
                await asyncio.sleep(0.05)
                if sink.intake.received:
                    break
        upstream.down = False
        warm = sink.intake.received
        loop = asyncio.get_running_loop()
        started = loop.time()
        for n in range(1, 51):  # live data while the backlog drains
            publisher.publish_sample("data.new.p", float(n))
            await asyncio.sleep(0.01)
        await eventually(lambda: len(real(upstream.delivered())) >= 450, 10)
        elapsed = loop.time() - started
        delivered = real(upstream.delivered())
        new = [seq for topic, seq, _ in delivered if topic == "data.new.p"]
        old = [(seq, historical) for topic, seq, historical in delivered if topic == "data.old.p"]
        # (the first few may have been queued before the connection: they are backlog then)
        assert sorted(new) == list(range(1, 51))
        assert [seq for seq, _ in old] == list(range(1, 401))
        assert all(historical for _, historical in old)
        # 400 at 200/s after a first burst of 50: at least 1.5 s; live data did not wait.
        assert elapsed >= 1.5
        first_new = next(i for i, (t, _, _) in enumerate(delivered) if t == "data.new.p")
        assert first_new < 200

        # A delivery that is not acknowledged is sent again; nothing is lost.
        await eventually(lambda: sink.queue.length == 0, 5)
        upstream.fail = 1
        before = len(upstream.delivered())
        publisher.publish_sample("data.new.p", 51.0)
        await eventually(
            lambda: [s for _, s, _ in real(upstream.delivered()[before:])] == [51, 51], 5
        )

        # Over max_bytes (64 KiB) while the upstream is down: the oldest go, counted, and said.
        # (A queued sample takes ~30 bytes in a module's batch: 5,000 are well over.)
        upstream.down = True
        upstream.fail = 10**6
        for n in range(52, LAST + 1):
            publisher.publish_sample("data.new.p", float(n))
            if n % 100 == 0:
                await asyncio.sleep(0.02)
        await eventually(lambda: sink.queue.counters["dropped"] > 0, 5)
        assert sink.queue.bytes <= 64 * 1024
        async with asyncio.timeout(5):
            message = await events.receive()
            while message.topic != "event.sink.s.dropped":
                message = await events.receive()
        assert isinstance(message.payload, Record)
        assert message.payload.fields["reason"] == "max_bytes"
        await eventually(lambda: sink.intake.received - warm >= LAST and not sink.intake.pending, 5)
        async with AsyncClient(stack.endpoint, timeout=3, retries=0) as client:
            # Under load the last drops may land between the answer and this read: ask again
            # (for up to 5 s) until the two agree.
            for _ in range(50):
                status = await call_async(client, sink.service, "status")
                if status["counters"]["dropped"] == sink.queue.counters["dropped"]:
                    break
                await asyncio.sleep(0.1)
        assert status["counters"]["dropped"] == sink.queue.counters["dropped"]
        assert status["counters"]["taken"] == 400 + warm + LAST  # the old backlog, then the bus
        assert status["upstream"] == {"connects": upstream.connects}
        sink.stop()
    publisher.close()
    events.close()
