"""The historian's metrics on a real store (a real SQLite file) and a real bus: samples stored
and batches counted once per batch, the database's size read from the files, samples lost on
the bus counted from their sequence numbers.

The registry is the process's: every figure is read before and after, and the test asserts
the difference."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from plantd._zmq import sync_context
from plantd.broker._bus import BusProxy
from plantd.bus import BusPublisher, Sample
from plantd.config import HistorianConfig, load_config
from plantd.historian import Historian, HistoryStore
from plantd.historian._metrics import database_bytes
from plantd.telemetry import REGISTRY
from plantd.testing import ipc_endpoints, write_config

T0 = 1_700_000_000.0


def value(name: str, **labels: str) -> float:
    found = REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


def batch(first: int, size: int, points: int = 4) -> list[tuple[str, Sample]]:
    """``size`` samples, numbered from ``first``, spread over ``points`` points."""
    return [
        (f"pump.p{n % points}", Sample(float(n), T0 + n, seq=n, epoch=1))
        for n in range(first, first + size)
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    the_store = HistoryStore(tmp_path / "history.db", HistorianConfig())
    try:
        yield the_store
    finally:
        the_store.close()


def test_the_catalogue_names_are_exposed() -> None:
    text = generate_latest(REGISTRY).decode()
    for line in (
        "# TYPE plantd_historian_samples_total counter",
        "# TYPE plantd_historian_batch_seconds histogram",
        "# TYPE plantd_historian_database_bytes gauge",
        "# TYPE plantd_historian_gaps_total counter",
    ):
        assert line in text


def test_samples_and_batches_are_counted_once_per_batch(store: HistoryStore) -> None:
    samples = value("plantd_historian_samples_total")
    batches = value("plantd_historian_batch_seconds_count")
    for n in range(5):
        assert store.write_batch(batch(n * 100, 100)) == 100
    assert store.write_batch(batch(0, 100)) == 0  # the same samples again: nothing stored
    assert store.stats.samples == 500
    assert value("plantd_historian_samples_total") - samples == 500
    assert value("plantd_historian_batch_seconds_count") - batches == 6


def test_samples_stored_twice_across_a_settle_count_once_in_the_end(
    store: HistoryStore,
) -> None:
    samples = value("plantd_historian_samples_total")
    store.write_batch(batch(0, 50))
    store._writer.call(store._settle_now)  # into ``samples``: ``recent`` is empty again
    store.write_batch(batch(0, 50))  # the same samples: stored in ``recent`` for now…
    store._writer.call(store._settle_now)  # …and found to be there already
    assert store.stats.samples == 50
    store.write_batch(batch(50, 80))  # the counter never goes down: it catches up
    assert store.stats.samples == 130
    assert value("plantd_historian_samples_total") - samples == 130


def test_the_database_size_counts_every_open_store_while_it_is_open(tmp_path: Path) -> None:
    path = tmp_path / "sized.db"
    before = value("plantd_historian_database_bytes")
    store = HistoryStore(path, HistorianConfig())
    try:
        opened = value("plantd_historian_database_bytes")
        assert opened - before == database_bytes(path) > 0
        for n in range(10):
            store.write_batch(batch(n * 200, 200, points=50))
        grown = value("plantd_historian_database_bytes")
        assert grown > opened
        assert grown - before == database_bytes(path)
    finally:
        store.close()
    assert value("plantd_historian_database_bytes") == before


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.01)


async def test_samples_lost_on_the_bus_are_counted(tmp_path: Path) -> None:
    # A real bus forwarder in this process, on ipc sockets of the test's own; no broker (the
    # historian's service worker waits for one in vain, which is no matter here).
    sections = {
        **ipc_endpoints(tmp_path / "sockets"),
        "paths": {"data": str(tmp_path / "data"), "run": str(tmp_path / "run")},
        "historian": {"batch_interval": 0.05},
    }
    config = load_config(write_config(tmp_path / "etc", sections))
    bus = BusProxy(config.bus, sync_context())
    bus.start()
    historian = Historian(config)
    running = asyncio.create_task(historian.run())
    publisher = BusPublisher(config.bus.frontend)
    try:
        assert await publisher.wait_for_subscribers(10)
        gaps = value("plantd_historian_gaps_total")
        samples = value("plantd_historian_samples_total")
        topic = "data.pump.level"
        publisher.publish_sample(topic, 1.0)
        publisher.publish_sample(topic, 2.0)
        for _ in range(3):  # three samples the historian never sees
            publisher.next_seq(topic)
        publisher.publish_sample(topic, 6.0)
        publisher.publish_sample("data.pump.flow", 1.0)  # another topic: its own numbering
        await until(lambda: historian.received == 4)
        await historian.flush()
        assert historian.gaps.missing == 3
        assert value("plantd_historian_gaps_total") - gaps == 3
        assert value("plantd_historian_samples_total") - samples == 4
    finally:
        publisher.close()
        historian.stop()
        await running
        bus.stop()
