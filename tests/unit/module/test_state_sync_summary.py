"""Which changes of a module's status are worth a write to the state service
(:func:`status_summary`), on a runtime that is not running: no sockets, no clock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plantd.config import load_config
from plantd.module import Reading, parse_module_file
from plantd.module._runtime import GroupStats, ModuleRuntime
from plantd.module._schedule import Schedule
from plantd.module._state_sync import status_summary
from plantd.testing import FakeDriver, FakeModule, write_config

MODULE = """
driver: fake
groups:
  - name: fast
    interval: 1s
    points:
      - {name: flow, value: 12.5}
      - {name: level, value: 1.5}
"""


class NullPublisher:
    def publish_sample(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


class StatusDriver(FakeDriver):
    """A fake whose driver status is a Modbus-like mix of states and counters."""

    def __init__(self, config: FakeModule) -> None:
        super().__init__(config)
        self.info: dict[str, Any] = {
            "connected": True,
            "last_error": None,
            "requests": 100,
            "units": {"1": {"state": "ok", "quarantines": 0, "next_try_in": None}},
            "learned_cuts": {},
        }
        self.broken: Exception | None = None

    def status(self) -> dict[str, Any]:
        if self.broken is not None:
            raise self.broken
        return {**super().status(), **self.info}


@pytest.fixture
def runtime(tmp_path: Path) -> ModuleRuntime:
    config = load_config(write_config(tmp_path / "etc", {}))
    path = tmp_path / "meter.yaml"
    path.write_text(MODULE)
    module = parse_module_file(path, FakeModule)
    built = ModuleRuntime(config, module, StatusDriver(module), publisher=NullPublisher())  # type: ignore[arg-type]
    built.stats["fast"] = GroupStats(Schedule(1.0, 0.0))
    built.connection.connected(0.0)
    for name in ("flow", "level"):  # the first poll
        built.table.record(name, Reading(1.0), 1.0)
    driver(built).reads["fast"] += 1
    return built


def changes(runtime: ModuleRuntime, edit: Callable[[ModuleRuntime], None]) -> bool:
    before = status_summary(runtime)
    edit(runtime)
    return status_summary(runtime) != before


def driver(runtime: ModuleRuntime) -> StatusDriver:
    assert isinstance(runtime.driver, StatusDriver)
    return runtime.driver


def poll(runtime: ModuleRuntime) -> None:
    stats = runtime.stats["fast"]
    stats.schedule.polled(0.5)
    stats.last_poll, stats.last_duration = 2.0, 0.01
    runtime.table.record("flow", Reading(13.0), 2.0)  # published, counted
    runtime.table.record("level", Reading(1.0), 2.0)
    driver(runtime).reads["fast"] += 1


def failing_again(runtime: ModuleRuntime) -> None:
    runtime.stats["fast"].failures += 1  # the same error, once more


def attempt_again(runtime: ModuleRuntime) -> None:
    runtime.connection.failed(10.0, "refused")
    runtime.connection.connecting(11.0)
    runtime.connection.failed(12.0, "refused")  # failed_attempts 1 → 2, state backoff again


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(poll, id="a poll"),
        pytest.param(failing_again, id="a group failing with the same error"),
        pytest.param(lambda r: driver(r).info.update(requests=101), id="driver counter"),
        pytest.param(
            lambda r: driver(r).info["units"]["1"].update(quarantines=2), id="driver trips"
        ),
    ],
)
def test_what_moves_with_every_poll_is_not_a_change(
    runtime: ModuleRuntime, edit: Callable[[ModuleRuntime], None]
) -> None:
    assert not changes(runtime, edit)


def test_the_attempts_of_a_connection_that_stays_down_are_not_a_change(
    runtime: ModuleRuntime,
) -> None:
    runtime.connection.failed(9.0, "refused")
    assert not changes(runtime, attempt_again)


def set_group_error(runtime: ModuleRuntime) -> None:
    runtime.stats["fast"].error = "device fault: illegal address"


def overrun(runtime: ModuleRuntime) -> None:
    runtime.stats["fast"].schedule.polled(5.0)  # due at 1.0: deadlines missed


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda r: r.connection.failed(5.0, "refused"), id="connection lost"),
        pytest.param(lambda r: r.connection.connected(5.0), id="reconnected"),
        pytest.param(lambda r: r.table.record("level", Reading.bad("overflow")), id="bad point"),
        pytest.param(set_group_error, id="group error"),
        pytest.param(overrun, id="overrun"),
        pytest.param(lambda r: driver(r).info.update(connected=False), id="driver state"),
        pytest.param(lambda r: driver(r).info.update(last_error="timeout"), id="driver error"),
        pytest.param(
            lambda r: driver(r).info["units"]["1"].update(state="quarantined"), id="unit state"
        ),
        pytest.param(
            lambda r: driver(r).info["units"]["1"].update(next_try_in=7.2), id="None to a number"
        ),
        pytest.param(
            lambda r: driver(r).info.update(learned_cuts={"1/holding": [40]}), id="a key appears"
        ),
        pytest.param(
            lambda r: setattr(driver(r), "broken", RuntimeError("boom")), id="driver status fails"
        ),
    ],
)
def test_what_a_reader_needs_is_a_change(
    runtime: ModuleRuntime, edit: Callable[[ModuleRuntime], None]
) -> None:
    assert changes(runtime, edit)


async def test_the_summary_agrees_with_the_status(runtime: ModuleRuntime) -> None:
    runtime.table.record("level", Reading.bad("overflow"))
    set_group_error(runtime)
    full = runtime.status()  # (it reads the running loop's clock)
    summary = status_summary(runtime)
    assert summary["bad_points"] == full["bad_points"] == 1
    connection = full["connection"]
    assert summary["connection"] == [
        connection["state"],
        connection["last_error"],
        connection["connects"],
    ]
    group = full["groups"]["fast"]
    assert summary["groups"] == {"fast": [group["error"], group["overruns"]]}
