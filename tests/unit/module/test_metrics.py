"""The modules' metrics in plantd.telemetry.REGISTRY, read from a runtime driven by the fake
driver on a ManualClock: polls, late polls, failures and errors by kind, samples published,
connection, bad points, and the driver's units and requests; a module whose figures cannot be
read does not fail the scrape."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from plantd.bus import Quality, SampleValue
from plantd.config import load_config
from plantd.module import parse_module_file
from plantd.module._metrics import COLLECTOR
from plantd.module._runtime import ModuleRuntime
from plantd.telemetry import REGISTRY
from plantd.testing import FakeDriver, FakeModule, ManualClock, write_config

MODULE = """
driver: fake
defaults:
  max_silence: 10s
groups:
  - name: main
    interval: 1s
    points:
      - {name: flow, value: 12.5}
      - {name: count, value: 0, pattern: counter}
"""


class NullPublisher:
    """Takes the point table's batches and sends them nowhere (no sockets)."""

    async def wait_for_subscribers(self, timeout: float = 1.0) -> bool:
        return True

    def publish_batch(
        self, topic: str, samples: Iterable[tuple[str, SampleValue, float, Quality]]
    ) -> int:
        return len(list(samples))

    def close(self) -> None:
        pass


@dataclass
class Harness:
    name: str
    runtime: ModuleRuntime
    driver: FakeDriver
    clock: ManualClock
    read_times: list[float]  # how long the next reads take, in clock time
    task: asyncio.Task[None]

    def value(self, metric: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(metric, {"module": self.name, **labels})

    def count(self, metric: str, **labels: str) -> float:
        """A counter's value, 0 if it has none yet."""
        return self.value(metric, **labels) or 0.0


_modules = iter(range(1_000_000))


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    config = load_config(write_config(tmp_path / "etc", {}))
    name = f"metrics{next(_modules)}"  # the registry is process-wide: a name of its own
    path = tmp_path / f"{name}.yaml"
    path.write_text(MODULE)
    module = parse_module_file(path, FakeModule)
    driver = FakeDriver(module)
    clock = ManualClock()
    runtime = ModuleRuntime(
        config,
        module,
        driver,
        publisher=NullPublisher(),  # type: ignore[arg-type]
        reconnect_initial=1.0,
        reconnect_max=8.0,
        clock=clock,
    )
    read_times: list[float] = []
    read = driver.read

    async def timed_read(group: Any) -> Any:
        if read_times:
            await clock.sleep(read_times.pop(0))
        return await read(group)

    driver.read = timed_read  # type: ignore[method-assign]
    task = asyncio.create_task(runtime.run())
    await clock.settle()
    yield Harness(name, runtime, driver, clock, read_times, task)
    runtime.stop()
    await clock.advance(60.0)
    await asyncio.wait_for(task, timeout=10)


async def test_polls_samples_points_and_connection(harness: Harness) -> None:
    group = {"group": "main"}
    polls = harness.count("plantd_module_polls_total", **group)
    published = harness.count("plantd_module_samples_published_total")
    await harness.clock.advance(3.0)
    assert harness.count("plantd_module_polls_total", **group) - polls == 3
    # the counter point changes on every poll; the constant one stays quiet (max_silence 10 s)
    assert harness.count("plantd_module_samples_published_total") - published == 3
    assert harness.value("plantd_module_connected") == 1
    assert harness.value("plantd_module_points") == 2
    assert harness.value("plantd_module_bad_points") == 0
    assert harness.count("plantd_module_late_polls_total", **group) == 0
    assert harness.count("plantd_module_poll_failures_total", **group) == 0


async def test_a_poll_that_overruns_counts_the_deadlines_it_missed(harness: Harness) -> None:
    late = harness.count("plantd_module_late_polls_total", group="main")
    harness.read_times.append(2.5)  # the poll at 1 s runs until 3.5 s: deadlines 2 and 3 missed
    await harness.clock.advance(5.0)
    assert harness.count("plantd_module_late_polls_total", group="main") - late == 2


async def test_failures_by_kind_and_bad_points(harness: Harness) -> None:
    failures = harness.count("plantd_module_poll_failures_total", group="main")
    device = harness.count("plantd_module_errors_total", kind="device")
    connection = harness.count("plantd_module_errors_total", kind="connection")
    harness.driver.faults["main"] = "illegal data address"
    await harness.clock.advance(2.0)
    assert harness.count("plantd_module_poll_failures_total", group="main") - failures == 2
    assert harness.count("plantd_module_errors_total", kind="device") - device == 2
    assert harness.value("plantd_module_bad_points") == 2
    assert harness.value("plantd_module_connected") == 1

    harness.driver.faults.clear()
    harness.driver.unavailable = "cable cut"
    await harness.clock.advance(1.0)  # the poll loses the connection
    assert harness.value("plantd_module_connected") == 0
    assert harness.count("plantd_module_errors_total", kind="connection") - connection == 1
    await harness.clock.advance(10.0)  # failed attempts to open count as connection errors
    assert harness.count("plantd_module_errors_total", kind="connection") - connection > 1
    assert harness.value("plantd_module_bad_points") == 2
    for kind in ("timeout", "protocol", "decode", "other"):  # every kind has a series
        assert harness.value("plantd_module_errors_total", kind=kind) == 0

    harness.driver.unavailable = None
    await harness.clock.advance(9.0)  # reconnected within the 8 s backoff, and polled
    assert harness.value("plantd_module_connected") == 1
    assert harness.value("plantd_module_bad_points") == 0


async def test_units_circuit_states_requests_and_request_errors_from_the_driver_status(
    harness: Harness,
) -> None:
    figures: dict[str, Any] = {
        "no_answer": 4,
        "refused": 1,
        "bad_answers": 2,
        "requests_per_cycle": {"main": 3},
        "units": {
            "1": {"state": "ok"},
            "2": {"state": "quarantined"},
            "3": {"state": "probing"},
        },
    }
    harness.driver.status = lambda: figures  # type: ignore[method-assign]
    assert harness.value("plantd_module_units_quarantined") == 2
    states = {
        (unit, state): harness.value("plantd_module_unit_circuit_state", unit=unit, state=state)
        for unit in ("1", "2", "3")
        for state in ("closed", "open", "half_open")
    }
    assert {key for key, on in states.items() if on == 1} == {
        ("1", "closed"),
        ("2", "open"),
        ("3", "half_open"),
    }
    assert sum(v or 0 for v in states.values()) == 3
    assert harness.value("plantd_module_requests_per_poll", group="main") == 3
    assert harness.value("plantd_module_errors_total", kind="timeout") == 4
    assert harness.value("plantd_module_errors_total", kind="protocol") == 2
    assert harness.value("plantd_module_errors_total", kind="device") == 1

    figures["units"]["2"] = {"state": "ok"}
    assert harness.value("plantd_module_units_quarantined") == 1
    assert harness.value("plantd_module_unit_circuit_state", unit="2", state="closed") == 1


async def test_a_driver_without_units_has_no_circuit_series(harness: Harness) -> None:
    assert harness.value("plantd_module_units_quarantined") is None
    assert harness.value("plantd_module_requests_per_poll", group="main") is None


async def test_a_driver_whose_status_fails_still_reports_the_runtime(harness: Harness) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("dictionary changed size during iteration")

    harness.driver.status = broken  # type: ignore[method-assign]
    await harness.clock.advance(1.0)
    assert harness.count("plantd_module_polls_total", group="main") >= 1
    assert harness.value("plantd_module_units_quarantined") is None


class _HalfGone:
    """A runtime caught mid-restart: its figures cannot be read."""

    module = SimpleNamespace(name="halfgone")

    @property
    def stats(self) -> dict[str, Any]:
        raise AttributeError("the runtime is being rebuilt")


async def test_a_module_whose_figures_cannot_be_read_is_skipped_and_logged_once(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    broken = _HalfGone()
    COLLECTOR.track(broken)  # type: ignore[arg-type]
    try:
        with caplog.at_level(logging.WARNING, logger="plantd.module._metrics"):
            for _ in range(3):
                families = {family.name for family in REGISTRY.collect()}
                assert "plantd_module_polls" in families
                assert harness.value("plantd_module_points") == 2  # the others still come
                assert (
                    REGISTRY.get_sample_value("plantd_module_points", {"module": "halfgone"})
                    is None
                )
        complaints = [r for r in caplog.records if "halfgone" in r.getMessage()]
        assert len(complaints) == 1
    finally:
        COLLECTOR.untrack(broken)  # type: ignore[arg-type]


async def test_a_stopped_module_is_no_longer_reported(harness: Harness) -> None:
    assert harness.value("plantd_module_points") == 2
    harness.runtime.stop()
    await asyncio.wait_for(harness.task, timeout=10)
    assert harness.value("plantd_module_points") is None
    assert harness.value("plantd_module_polls_total", group="main") is None
