"""Hot-plug in the module host: a real broker, state service and ``plant module host``, reloaded
with SIGHUP as ``plant up`` and systemd do. A module file added, changed, removed, or broken,
each seen on the bus (or in the host's log) within 2 s of the signal — while the two modules
that were not touched lose no sample: their sequence numbers run on without a gap."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from plantd.bus import BusSubscriber, Sample
from plantd.client import Client
from plantd.testing import ManagedProcess, wait_for_workers
from tests.conftest import Stack
from tests.integration.module.test_host import start_host
from tests.integration.module.test_runtime import write_module

MODULE = """
driver: fake
state_interval: 200ms
groups:
  - name: main
    interval: INTERVAL
    points:
      - {name: count, value: 0, pattern: counter}
"""
BROKEN = "driver: fake\ngroups:\n  - name: main\n    intervall: 1s\n"  # line 4: the typo
EFFECT_WITHIN = 2.0  # the requirement, from the signal to what the bus shows
PATIENCE = 10.0  # how long a step may take before the test gives up (a loaded machine)


def module(interval: str) -> str:
    return MODULE.replace("INTERVAL", interval)


@dataclass
class Seen:
    """A sample as it arrived: its topic, the sample, and when (``time.monotonic()``)."""

    topic: str
    sample: Sample
    at: float


@dataclass
class Bus:
    """Every sample of ``data.`` since the subscriber started, collected in the background."""

    subscriber: BusSubscriber
    seen: list[Seen] = field(default_factory=list)

    async def collect(self) -> None:
        while True:
            message = await self.subscriber.receive()
            if isinstance(message.payload, Sample):
                self.seen.append(Seen(message.topic, message.payload, time.monotonic()))

    def of(self, module: str, since: float = 0.0) -> list[Seen]:
        return [s for s in self.seen if s.topic.startswith(f"data.{module}.") and s.at >= since]

    async def first(self, predicate: Callable[[Seen], bool], since: float) -> Seen:
        """The first sample after ``since`` that ``predicate`` takes, waited for."""
        deadline = time.monotonic() + PATIENCE
        while True:
            for seen in self.seen:
                if seen.at >= since and predicate(seen):
                    return seen
            assert time.monotonic() < deadline, "not seen on the bus"
            await asyncio.sleep(0.02)


def gapless(bus: Bus, module: str) -> int:
    """How many samples ``module`` published since the subscriber started, checked to be one
    publisher's (one epoch) with no sequence number missing, per topic."""
    topics = {s.topic for s in bus.of(module)}
    assert topics, f"nothing from {module}"
    total = 0
    for topic in topics:
        mine = [s.sample for s in bus.seen if s.topic == topic]
        assert len({s.epoch for s in mine}) == 1, f"{topic}: its publisher changed"
        seqs = [s.seq for s in mine]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{topic}: {seqs}"
        total += len(seqs)
    return total


def sighup(process: ManagedProcess) -> float:
    """Send SIGHUP; when it was sent."""
    sent = time.monotonic()
    os.kill(process.pid, signal.SIGHUP)
    return sent


def registered(endpoint: str, service: str) -> bool:
    with Client(endpoint, timeout=2, retries=2) as client:
        table = json.loads(client.request("mmi.workers", service.encode())[0])
    row = table.get(service, {"idle": 0, "busy": 0})
    return bool(row["idle"] + row["busy"])


async def until_log(process: ManagedProcess, text: str, since: float) -> float:
    """When ``text`` was first found in the process's log (looked for every 20 ms)."""
    deadline = since + PATIENCE
    while text not in process.log_text():
        assert time.monotonic() < deadline, f"not logged: {text}"
        await asyncio.sleep(0.02)
    return time.monotonic()


@pytest.fixture
async def bus(stack: Stack) -> AsyncIterator[Bus]:
    stack.start_broker()
    state = ManagedProcess.plantd(
        ["plantd.state", "--config", str(stack.config_dir)], name="state", log_dir=stack.log_dir
    ).start()
    stack.processes.append(state)
    wait_for_workers(stack.endpoint, "org.plantd.State")
    the_bus = Bus(BusSubscriber(stack.settings["bus"]["backend"], ["data."]))
    collector = asyncio.create_task(the_bus.collect())
    try:
        yield the_bus
    finally:
        collector.cancel()
        the_bus.subscriber.close()


async def test_module_files_are_hot_plugged_and_the_others_lose_no_sample(
    stack: Stack, bus: Bus
) -> None:
    for name in ("a", "b"):
        write_module(stack, module("100ms"), name=name)
    host = start_host(stack)
    for name in ("a", "b"):
        await asyncio.to_thread(wait_for_workers, stack.endpoint, f"org.plantd.module.{name}")
    await bus.first(lambda s: s.topic == "data.b.count", since=0.0)

    # Added: its samples are on the bus within 2 s.
    write_module(stack, module("100ms"), name="c")
    sent = sighup(host)
    first = await bus.first(lambda s: s.topic == "data.c.count", since=sent)
    assert first.at - sent <= EFFECT_WITHIN, f"c's first sample {first.at - sent:.2f} s after"
    old_epoch = first.sample.epoch

    # Changed (100 ms -> 500 ms): it restarts with a new publisher (a new epoch), at the new
    # rate, both seen within 2 s.
    write_module(stack, module("500ms"), name="c")
    sent = sighup(host)
    fresh = await bus.first(
        lambda s: s.topic == "data.c.count" and s.sample.epoch != old_epoch, since=sent
    )
    second = await bus.first(
        lambda s: (
            s.topic == "data.c.count"
            and s.sample.epoch == fresh.sample.epoch
            and (s.sample.seq == fresh.sample.seq + 1)
        ),
        since=fresh.at,
    )
    assert second.at - sent <= EFFECT_WITHIN, f"c's new rate {second.at - sent:.2f} s after"
    assert second.sample.timestamp - fresh.sample.timestamp == pytest.approx(0.5, abs=0.1)

    # Removed: its samples stop, and its service leaves the broker, within 2 s.
    (stack.config_dir / "modules.d" / "c.yaml").unlink()
    sent = sighup(host)
    while await asyncio.to_thread(registered, stack.endpoint, "org.plantd.module.c"):
        assert time.monotonic() - sent < PATIENCE, "c is still registered"
    gone = time.monotonic()
    assert gone - sent <= EFFECT_WITHIN, f"c left the broker {gone - sent:.2f} s after"
    await asyncio.sleep(1.5)  # three of its polls
    last = max(s.at for s in bus.of("c"))
    assert last - sent <= EFFECT_WITHIN, f"c's last sample {last - sent:.2f} s after"
    assert not bus.of("c", since=gone + 0.5)  # (what was in flight has arrived by then)

    # A broken file: refused with its file:line, logged; the host runs on.
    write_module(stack, BROKEN, name="d")
    sent = sighup(host)
    logged = await until_log(host, "d.yaml:4: groups[0].intervall: unknown key", since=sent)
    assert logged - sent <= EFFECT_WITHIN
    # ... and a broken change of a running module: b keeps running from its old file.
    write_module(stack, BROKEN, name="b")
    sent = sighup(host)
    await until_log(host, "module b: its changed file is refused", since=sent)
    await asyncio.sleep(1.0)
    assert host.running()
    assert bus.of("b", since=time.monotonic() - 0.5), "b stopped publishing"

    # Throughout, a and b ran on: one publisher each, no sequence number missing.
    assert gapless(bus, "a") >= 20  # (10 a second, for the whole test)
    assert gapless(bus, "b") >= 20
    assert host.terminate() == 0
    log = host.log_text()
    assert "module a: its file changed" not in log
    assert "module c: its file changed; starting it again" in log
