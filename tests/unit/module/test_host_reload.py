"""Reloading the module host (SIGHUP): the files of ``modules.d/`` read again, and only what
changed applied — a new module starts, a changed one restarts alone, a removed (or now
isolated) one stops, a file that does not load is refused and what runs keeps running.

In this process, with the fake driver, on a ManualClock, and a publisher that records what each
module publishes (no broker: the modules' workers never register, which the reload does not
need). The clock makes the count of polls exact: an untouched module polls on, poll after poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from plantd.bus import Quality, SampleValue
from plantd.config import PlantdConfig, load_config
from plantd.module import _host
from plantd.module._host import HostedModule, ModuleHost, State
from plantd.module._main import load_host, rescan_host
from plantd.module._runtime import ModuleRuntime
from plantd.testing import FakeDriver, ManualClock, ipc_endpoints, write_config

MODULE = """
driver: fake
groups:
  - name: main
    interval: INTERVAL
    points:
      - {name: count, value: 0, pattern: counter}
"""
BROKEN = "driver: fake\ngroups:\n  - name: main\n    intervall: 1s\n"  # line 4: the typo


def module(interval: str = "1s") -> str:
    return MODULE.replace("INTERVAL", interval)


class RecordingPublisher:
    """Stands in for a module's BusPublisher: the counter values it was given, in order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.counts: list[SampleValue] = []
        self.closed = False

    async def wait_for_subscribers(self, timeout: float = 1.0) -> bool:
        return True

    def publish_batch(
        self, topic: str, samples: Iterable[tuple[str, SampleValue, float, Quality]]
    ) -> int:
        batch = list(samples)
        self.counts += [value for name, value, _, _ in batch if name == "count"]
        return len(batch)

    def close(self) -> None:
        self.closed = True


class NoStateSync:
    """Stands in for a module's state sync: no state service here, and none waited for (a
    real one's last save on stop would wait for it, in real time)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        await self._stopping.wait()

    def stop(self) -> None:
        self._stopping.set()


@pytest.fixture(autouse=True)
def _no_sockets_for_samples_and_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_host, "BusPublisher", RecordingPublisher)
    monkeypatch.setattr(_host, "StateSync", NoStateSync)


@dataclass
class Hosting:
    config: PlantdConfig
    host: ModuleHost
    clock: ManualClock
    lines: list[str] = field(default_factory=list)  # the status line after every change

    @property
    def folder(self) -> Path:
        assert self.config.source_dir is not None
        return self.config.source_dir / "modules.d"

    def write(self, name: str, text: str) -> None:
        (self.folder / f"{name}.yaml").write_text(text)

    def runtime(self, name: str) -> ModuleRuntime:
        runtime = self.host.modules[name].runtime
        assert runtime is not None
        return runtime

    def driver(self, name: str) -> FakeDriver:
        driver = self.runtime(name).driver
        assert isinstance(driver, FakeDriver)
        return driver

    def publisher(self, name: str) -> RecordingPublisher:
        publisher = self.runtime(name).publisher
        assert isinstance(publisher, RecordingPublisher)
        return publisher

    async def reload(self, names: tuple[str, ...] = ()) -> None:
        await self.host.reload(rescan_host(self.config, names))
        await self.until(lambda: all(self._polling(h) for h in self.host.modules.values()))

    async def until(self, done: Callable[[], bool]) -> None:
        """Until ``done()``: the modules' first steps include real I/O (their sockets)."""
        async with asyncio.timeout(10):  # a guard against a hang, not a measurement
            while not done():
                await self.clock.settle()
                await asyncio.sleep(0.01)

    @staticmethod
    def _polling(hosted: HostedModule) -> bool:
        if hosted.state in (State.BROKEN, State.NO_KEY):
            return True
        runtime = hosted.runtime
        return (
            runtime is not None
            and isinstance(runtime.driver, FakeDriver)
            and (runtime.driver.is_open)
        )


@pytest.fixture
async def hosting(tmp_path: Path) -> AsyncIterator[Hosting]:
    config_dir = write_config(tmp_path / "etc", ipc_endpoints(tmp_path / "nobody"))
    (config_dir / "modules.d").mkdir()
    for name in ("a", "b"):
        (config_dir / "modules.d" / f"{name}.yaml").write_text(module())
    async with _hosting(load_config(config_dir)) as running:
        yield running


class _hosting:
    """A host of the config's modules, running on a ManualClock until the block ends."""

    def __init__(self, config: PlantdConfig) -> None:
        self.config = config

    async def __aenter__(self) -> Hosting:
        clock = ManualClock()
        lines: list[str] = []
        host = ModuleHost(
            self.config,
            load_host(self.config),
            clock=clock,
            on_change=lambda host: lines.append(host.summary()),
        )
        self.hosting = Hosting(self.config, host, clock, lines)
        self.task = asyncio.create_task(host.run())
        await clock.settle()  # run() has started every module's task
        await self.hosting.until(lambda: all(Hosting._polling(h) for h in host.modules.values()))
        return self.hosting

    async def __aexit__(self, *exc: object) -> None:
        self.hosting.host.stop()
        await self.hosting.clock.advance(60)
        await asyncio.wait_for(self.task, timeout=10)
        assert {h.state for h in self.hosting.host.modules.values()} <= {
            State.STOPPED,
            State.BROKEN,
        }


def counts_in_a_row(publisher: RecordingPublisher) -> list[SampleValue]:
    """The counter values ``publisher`` was given, checked to be one run's, without a hole."""
    counts = publisher.counts
    assert counts == list(range(1, len(counts) + 1)), counts
    return counts


async def test_a_new_file_starts_its_module_and_the_others_run_on(hosting: Hosting) -> None:
    await hosting.clock.advance(2.0)
    a = hosting.runtime("a")
    hosting.write("c", module("500ms"))
    await hosting.reload()
    assert list(hosting.host.modules) == ["a", "b", "c"]
    assert hosting.host.modules["c"].state is State.STARTING  # no broker: never registered
    await hosting.clock.advance(2.0)
    assert hosting.driver("c").reads["main"] == 5  # at 0, 0.5, 1, 1.5 and 2 s
    assert hosting.runtime("a") is a
    assert counts_in_a_row(hosting.publisher("a")) == [1, 2, 3, 4, 5]  # at 0, 1, 2, 3, 4 s
    assert hosting.lines[-1] == "module host: 0 of 3 modules running; starting: a, b, c"


async def test_a_changed_file_restarts_that_module_alone(hosting: Hosting) -> None:
    await hosting.clock.advance(1.0)
    a, b = hosting.runtime("a"), hosting.runtime("b")
    old_b = hosting.host.modules["b"]
    hosting.write("b", module("250ms"))
    await hosting.reload()
    new_b = hosting.host.modules["b"]
    assert new_b is not old_b
    assert old_b.state is State.STOPPED
    assert not b.driver.is_open  # type: ignore[attr-defined]
    assert b.publisher.closed  # type: ignore[attr-defined]
    assert hosting.runtime("b").module.groups[0].interval == 0.25
    await hosting.clock.advance(1.0)
    assert counts_in_a_row(hosting.publisher("b")) == [1, 2, 3, 4, 5]  # from 0 to 1 s by 0.25
    assert hosting.runtime("a") is a
    assert counts_in_a_row(hosting.publisher("a")) == [1, 2, 3]


async def test_a_removed_file_stops_its_module_and_leaves_the_status(hosting: Hosting) -> None:
    b = hosting.host.modules["b"]
    a, b_driver = hosting.runtime("a"), hosting.driver("b")
    (hosting.folder / "b.yaml").unlink()
    await hosting.reload()
    assert b.state is State.STOPPED
    assert not b_driver.is_open
    assert list(hosting.host.status()) == ["a"]
    assert hosting.lines[-1] == "module host: 0 of 1 modules running; starting: a"
    await hosting.clock.advance(1.0)
    assert hosting.runtime("a") is a
    assert counts_in_a_row(hosting.publisher("a")) == [1, 2]


async def test_a_file_that_says_isolated_now_leaves_the_host(hosting: Hosting) -> None:
    b = hosting.host.modules["b"]
    assert b.runtime is not None
    b_driver = b.runtime.driver
    assert isinstance(b_driver, FakeDriver)
    hosting.write("b", module() + "isolated: true\n")
    await hosting.reload()
    assert b.state is State.STOPPED
    assert not b_driver.is_open
    assert list(hosting.host.modules) == ["a"]


async def test_a_broken_new_file_is_listed_broken_and_logged_with_its_line(
    hosting: Hosting, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plantd.module._host")
    a, b = hosting.runtime("a"), hosting.runtime("b")
    hosting.write("c", BROKEN)
    await hosting.reload()
    assert hosting.host.status()["c"]["state"] == "broken"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "module c cannot run" in errors[0]
    assert "c.yaml:4: groups[0].intervall: unknown key" in errors[0]
    assert hosting.runtime("a") is a
    assert hosting.runtime("b") is b
    assert hosting.lines[-1].endswith("; broken file: c")
    # Fixed, it starts.
    hosting.write("c", module())
    await hosting.reload()
    assert hosting.host.modules["c"].state is State.STARTING
    await hosting.clock.advance(1.0)
    assert counts_in_a_row(hosting.publisher("c")) == [1, 2]


async def test_a_broken_change_is_refused_and_the_module_runs_on_as_it_was(
    hosting: Hosting, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plantd.module._host")
    b = hosting.runtime("b")
    hosting.write("b", BROKEN)
    await hosting.reload()
    assert hosting.runtime("b") is b
    status = hosting.host.status()["b"]
    assert status["state"] == "starting"  # as it was (no broker here to be running)
    assert "b.yaml:4: groups[0].intervall: unknown key" in status["refused"]
    assert hosting.lines[-1].endswith("; changed file refused: b")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "module b: its changed file is refused; it runs on as it was" in errors[0]
    assert "b.yaml:4: groups[0].intervall: unknown key" in errors[0]
    await hosting.reload()  # refused again: said once
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    await hosting.clock.advance(2.0)
    assert counts_in_a_row(hosting.publisher("b")) == [1, 2, 3]  # it never stopped
    # The file put back as it was: nothing to do, and nothing refused any more.
    hosting.write("b", module())
    await hosting.reload()
    assert hosting.runtime("b") is b
    assert hosting.host.status()["b"]["refused"] is None
    # A good change: now it restarts.
    hosting.write("b", module("2s"))
    await hosting.reload()
    assert hosting.runtime("b") is not b


async def test_an_unchanged_module_is_not_touched(hosting: Hosting) -> None:
    runtimes = {name: hosting.runtime(name) for name in ("a", "b")}
    await hosting.clock.advance(1.0)
    (hosting.folder / "a.yaml").touch()  # the same bytes: no change
    hosting.write("b", module() + "# a comment: the same configuration\n")
    await hosting.reload()
    await hosting.reload()
    await hosting.clock.advance(1.0)
    for name in ("a", "b"):
        assert hosting.runtime(name) is runtimes[name]
        assert hosting.host.modules[name].restarts == 0
        assert counts_in_a_row(hosting.publisher(name)) == [1, 2, 3]


async def test_a_reload_that_fails_leaves_the_host_running(
    hosting: Hosting, caplog: pytest.LogCaptureFixture
) -> None:
    a = hosting.runtime("a")

    def load() -> list[HostedModule]:
        raise OSError("modules.d: permission denied")

    hosting.host.reload_soon(load)
    await hosting.until(lambda: any("reload failed" in r.getMessage() for r in caplog.records))
    hosting.write("c", module())
    hosting.host.reload_soon(lambda: rescan_host(hosting.config))  # the next one works
    await hosting.until(lambda: "c" in hosting.host.modules)
    assert hosting.runtime("a") is a


async def test_a_host_started_with_names_reloads_those_files_only(tmp_path: Path) -> None:
    config_dir = write_config(tmp_path / "etc", ipc_endpoints(tmp_path / "nobody"))
    (config_dir / "modules.d").mkdir()
    for name in ("a", "b", "c"):
        (config_dir / "modules.d" / f"{name}.yaml").write_text(module())
    config = load_config(config_dir)
    assert [h.name for h in rescan_host(config, ("a", "b"))] == ["a", "b"]
    (config_dir / "modules.d" / "b.yaml").unlink()
    assert [h.name for h in rescan_host(config, ("a", "b"))] == ["a"]  # gone: its module stops
    (config_dir / "modules.d" / "a.yaml").write_text(BROKEN)
    [a] = rescan_host(config, ("a", "b"))
    assert a.state is State.BROKEN  # named, but a reload raises nothing: it is refused


@pytest.mark.parametrize("change", ["interval", "same"])
async def test_a_module_without_its_key_restarts_when_its_file_changes(
    tmp_path: Path, change: str
) -> None:
    endpoints: dict[str, Any] = dict(ipc_endpoints(tmp_path / "nobody"))
    config_dir = write_config(tmp_path / "etc", {**endpoints, "security": {"mode": "curve"}})
    (config_dir / "modules.d").mkdir()
    (config_dir / "modules.d" / "a.yaml").write_text(module())  # no key for module.a
    async with _hosting(load_config(config_dir)) as hosting:
        before = hosting.host.modules["a"]
        assert before.state is State.NO_KEY
        hosting.write("a", module("2s" if change == "interval" else "1s") + "# edited\n")
        await hosting.reload()
        after = hosting.host.modules["a"]
        assert after.state is State.NO_KEY
        if change == "interval":
            assert after is not before
            assert before.state is State.STOPPED
        else:
            assert after is before  # the same configuration: nothing to restart
