"""The module host (``plant module host``): several modules in one process, each with its own
worker, publisher, state sync and key, against a real broker. One module's trouble — a broken
file, a missing key, a failing driver, a crash — stays its own."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from plantd.bus import BusSubscriber, Quality, Sample
from plantd.cli import _up_cmd
from plantd.client import AsyncClient, Client
from plantd.config import load_config
from plantd.errors import RequestTimeout, ServiceError
from plantd.module import ModuleHost, load_host
from plantd.module._host import State
from plantd.reconfigure import snapshot
from plantd.service import call, call_async
from plantd.testing import FakeDriver, ManagedProcess, NotifySocket, wait_for_workers
from tests.conftest import Stack
from tests.integration.module.test_runtime import write_module

PUMP = """
driver: fake
state_interval: 200ms
groups:
  - name: main
    interval: 100ms
    points:
      - {name: flow, value: FLOW}
      - {name: speed, value: 0, writable: true, maximum: 1500}
      - {name: pulses, value: 0, pattern: counter}
"""
NAMES = ("a", "b", "c")


def pump(flow: float) -> str:
    return PUMP.replace("FLOW", str(flow))


def write_pumps(stack: Stack, names: tuple[str, ...] = NAMES) -> None:
    for n, name in enumerate(names):
        write_module(stack, pump(1.5 + n), name=name)


def start_host(
    stack: Stack, *names: str, notify: NotifySocket | None = None, name: str = "host"
) -> ManagedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    if notify is not None:
        env["NOTIFY_SOCKET"] = str(notify.path)
    process = ManagedProcess.plantd(
        ["plantd.cli", "--config", str(stack.config_dir), "module", "host", *names],
        name=name,
        log_dir=stack.log_dir,
        env=env,
    ).start()
    stack.processes.append(process)
    return process


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
        except (ServiceError, RequestTimeout):
            result = None
        if result:
            return result
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def good(values: dict[str, Any]) -> dict[str, Any] | None:
    """A module's ``read`` answer once its flow is good (None before)."""
    return values if values.get("flow", {}).get("quality") == "good" else None


def plant(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def topics_seen(endpoint: str, prefixes: list[str], within: float = 5.0) -> set[str]:
    """The point topics that bring a good sample within ``within`` seconds."""
    subscriber = BusSubscriber(endpoint, prefixes)
    seen: set[str] = set()
    try:
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            message = await subscriber.receive_within(left)
            if message is not None and isinstance(message.payload, Sample):
                seen.add(message.topic)
    finally:
        subscriber.close()
    return seen


# -- one process, three modules ---------------------------------------------------------------


def test_a_host_serves_its_modules_and_publishes_their_data(stack: Stack) -> None:
    stack.start_broker()
    write_pumps(stack)
    write_module(stack, pump(9.0) + "isolated: true\n", name="alone")  # not the host's
    host = start_host(stack)
    for name in NAMES:
        wait_for_workers(stack.endpoint, f"org.plantd.module.{name}")
    with Client(stack.endpoint, timeout=3, retries=2) as client:
        for n, name in enumerate(NAMES):
            service = f"org.plantd.module.{name}"
            values = wait_for(lambda s=service: good(call(client, s, "read")))
            assert values["flow"]["value"] == 1.5 + n
            written = call(client, service, "write", {"point": "speed", "value": 100 + n})
            assert written == {"point": "speed", "value": 100 + n}
            assert call(client, service, "read", {"points": ["speed"]})["speed"]["value"] == (
                100 + n
            )
        services = json.loads(client.request("mmi.services", b"")[0])
        assert "org.plantd.module.alone" not in services
    # The CLI as a user runs it, against the hosted modules.
    read = plant(stack, "module", "read", "b", "flow", "--json")
    assert json.loads(read.stdout)["flow"]["value"] == 2.5
    topics = asyncio.run(topics_seen(stack.settings["bus"]["backend"], ["data."]))
    assert {f"data.{name}.pulses" for name in NAMES} <= topics
    assert not [t for t in topics if t.startswith("data.alone.")]
    assert host.terminate() == 0  # SIGTERM: every module's worker says goodbye
    services = plant(stack, "mmi", "services").stdout
    assert not [name for name in NAMES if f"org.plantd.module.{name}" in services]
    log = host.log_text()
    assert "module a (driver fake): 3 points in 1 groups" in log
    assert "alone" not in log


# -- in this process: failures on demand ----------------------------------------------------------


@dataclass
class Hosting:
    host: ModuleHost
    client: AsyncClient
    subscriber: BusSubscriber
    changed: asyncio.Event  # set by the host after any module's move

    def driver(self, name: str) -> FakeDriver:
        runtime = self.host.modules[name].runtime
        assert runtime is not None
        assert isinstance(runtime.driver, FakeDriver)
        return runtime.driver

    async def samples(self, within: float) -> list[tuple[str, Sample]]:
        found = []
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            message = await self.subscriber.receive_within(left)
            if message is not None and isinstance(message.payload, Sample):
                found.append((message.topic, message.payload))
        return found

    async def until(self, topic: str, quality: Quality, timeout: float = 5.0) -> Sample:
        async with asyncio.timeout(timeout):
            while True:
                message = await self.subscriber.receive()
                payload = message.payload
                if (
                    message.topic == topic
                    and isinstance(payload, Sample)
                    and payload.quality is quality
                ):
                    return payload

    async def until_true(self, done: Callable[[], bool], timeout: float = 10.0) -> None:
        """Until ``done()``, looked at after every move of a module."""
        async with asyncio.timeout(timeout):
            while not done():
                self.changed.clear()
                await self.changed.wait()

    async def until_state(self, name: str, state: State, timeout: float = 10.0) -> None:
        await self.until_true(lambda: self.host.modules[name].state is state, timeout)


@pytest.fixture
async def hosting(stack: Stack) -> AsyncIterator[Hosting]:
    stack.start_broker()
    write_pumps(stack)
    config = load_config(stack.config_dir)
    changed = asyncio.Event()
    host = ModuleHost(
        config,
        load_host(config),
        restart_initial=0.2,
        restart_max=0.5,
        healthy_after=1.0,
        on_change=lambda host: changed.set(),
    )
    subscriber = BusSubscriber(config.bus.backend, ["data."])
    async with asyncio.TaskGroup() as group:
        group.create_task(host.run())
        async with asyncio.timeout(15):
            await host.connected.wait()
        async with AsyncClient(stack.endpoint, timeout=3, retries=1) as client:
            yield Hosting(host, client, subscriber, changed)
        host.stop()
    subscriber.close()
    assert {h.state for h in host.modules.values()} == {State.STOPPED}


def gapless(samples: list[tuple[str, Sample]], topic: str) -> list[int]:
    """The sequence numbers of ``topic``, checked to be one publisher's and without a hole."""
    mine = [sample for t, sample in samples if t == topic]
    assert mine, f"no sample on {topic}"
    assert len({s.epoch for s in mine}) == 1, f"{topic}: its publisher changed"
    seqs = [s.seq for s in mine]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{topic}: {seqs}"
    return seqs


async def test_a_failing_driver_stays_its_modules_trouble(hosting: Hosting) -> None:
    assert {h.state for h in hosting.host.modules.values()} == {State.RUNNING}
    hosting.driver("b").unavailable = "cable cut"
    bad = await hosting.until("data.b.pulses", Quality.BAD)
    assert bad.value is None
    samples = await hosting.samples(1.0)
    # a and c go on polling and publishing, good, without a gap; b is bad and reconnecting.
    assert len(gapless(samples, "data.a.pulses")) >= 5
    assert len(gapless(samples, "data.c.pulses")) >= 5
    assert all(s.quality is Quality.GOOD for t, s in samples if not t.startswith("data.b."))
    assert not [s for t, s in samples if t.startswith("data.b.") and s.quality is Quality.GOOD]
    status = await call_async(hosting.client, "org.plantd.module.b", "status")
    assert "cable cut" in status["connection"]["last_error"]
    assert (await call_async(hosting.client, "org.plantd.module.a", "status"))["connection"][
        "state"
    ] == "connected"
    hosting.driver("b").unavailable = None
    await hosting.until("data.b.pulses", Quality.GOOD)
    assert hosting.host.modules["b"].restarts == 0  # the runtime's job, not the host's


async def test_a_crashed_module_is_restarted_and_the_others_run_on(
    hosting: Hosting, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plantd.module._host")
    a_before = hosting.host.modules["a"].runtime

    async def driver_bug(group: Any) -> Any:
        return None  # not a mapping: the runtime's bookkeeping fails on it

    crashing = hosting.driver("b")
    crashing.read = driver_bug  # type: ignore[method-assign]
    await hosting.until_state("b", State.CRASHED)
    samples = await hosting.samples(1.0)  # b is down (backoff), a and c are not disturbed
    gapless(samples, "data.a.pulses")
    gapless(samples, "data.c.pulses")
    await hosting.until_true(lambda: hosting.host.modules["b"].failing is None)  # healthy 1 s
    b = hosting.host.modules["b"]
    assert b.state is State.RUNNING
    assert b.restarts == 1
    assert hosting.driver("b") is not crashing  # a new driver (and runtime, worker, publisher)
    assert hosting.host.modules["a"].runtime is a_before
    assert hosting.host.modules["a"].restarts == 0
    await hosting.until("data.b.pulses", Quality.GOOD)
    values = await call_async(hosting.client, "org.plantd.module.b", "read", {"points": ["flow"]})
    assert values["flow"]["value"] == 2.5
    crashes = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert len(crashes) == 1  # once, with its traceback
    assert crashes[0].exc_info is not None
    assert "module b crashed" in crashes[0].getMessage()
    assert any("module b runs again (1 restart(s))" in r.getMessage() for r in caplog.records)
    assert hosting.host.summary() == "module host: 3 of 3 modules running (a, b, c)"


async def test_a_module_that_keeps_crashing_is_logged_once(
    hosting: Hosting, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, logger="plantd.module._host")

    async def driver_bug(self: FakeDriver, group: Any) -> Any:
        if self.config.name == "c":
            raise_from_the_runtime = None
            return raise_from_the_runtime
        return await original(self, group)

    original = FakeDriver.read
    monkeypatch.setattr(FakeDriver, "read", driver_bug)  # every new driver of c has the bug
    await hosting.until_true(lambda: hosting.host.modules["c"].restarts >= 3)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage().split(" (")[0] for r in errors] == ["module c crashed"]
    assert hosting.host.modules["c"].failing == "crashed"
    samples = await hosting.samples(0.5)
    gapless(samples, "data.a.pulses")
    monkeypatch.setattr(FakeDriver, "read", original)
    await hosting.until_state("c", State.RUNNING)


# -- what does not load ---------------------------------------------------------------------------


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    with NotifySocket(tmp_path / "notify.sock") as sock:
        yield sock


def test_a_broken_file_is_reported_and_the_others_run(stack: Stack, notify: NotifySocket) -> None:
    stack.start_broker()
    write_pumps(stack, ("a", "c"))
    write_module(stack, "driver: fake\ngroups:\n  - name: g\n    intervall: 1s\n", name="broken")
    write_module(stack, "driver: nosuch\n", name="nodriver")
    host = start_host(stack, notify=notify)
    ready = notify.wait_for("READY")
    assert ready["STATUS"] == (
        "module host: 2 of 4 modules running (a, c); broken file: broken, nodriver"
    )
    for name in ("a", "c"):
        wait_for_workers(stack.endpoint, f"org.plantd.module.{name}")
    assert host.running()
    log = host.log_text()
    assert "broken.yaml:4: groups[0].intervall: unknown key (did you mean 'interval'?)" in log
    assert "no driver named 'nosuch'" in log
    # Named on the command line, a broken file keeps the host from starting, as `module run`.
    result = plant(stack, "module", "host", "a", "broken")
    assert result.returncode == 2
    assert "broken.yaml:4: groups[0].intervall: unknown key" in result.stderr
    assert plant(stack, "module", "host", "nosuch").returncode == 2


def test_nothing_to_host_is_a_configuration_error(stack: Stack) -> None:
    write_module(stack, pump(1.0) + "isolated: true\n", name="alone")
    result = plant(stack, "module", "host")
    assert result.returncode == 2
    assert "no module to host" in result.stderr
    write_module(stack, "driver: nosuch\n", name="nodriver")
    result = plant(stack, "module", "host")
    assert result.returncode == 2  # every one of them broken: nothing would run
    assert "no driver named 'nosuch'" in result.stderr


# -- under CURVE: each module its own principal -------------------------------------------------


@pytest.mark.stack(security={"mode": "curve"})
def test_under_curve_each_module_is_its_own_principal(stack: Stack, notify: NotifySocket) -> None:
    write_pumps(stack, ("a", "b", "c", "d"))
    for name in ("a", "b", "c"):
        stack.credentials(f"module.{name}")  # d has none (yet)
    stack.start_broker()  # after the keys: whatever it refuses from now on is the host's
    # (not the start-up probe's: on a loaded machine it may give up on a handshake and retry,
    # which the broker audits as a refused connection of nobody in particular)
    since = time.time()
    state = ManagedProcess.plantd(
        ["plantd.state", "--config", str(stack.config_dir)], name="state", log_dir=stack.log_dir
    ).start()
    stack.processes.append(state)
    wait_for_workers(stack.endpoint, "org.plantd.State")
    host = start_host(stack, notify=notify)
    ready = notify.wait_for("READY")
    assert ready["STATUS"] == "module host: 3 of 4 modules running (a, b, c); no key: d"
    assert "module d cannot run" in host.log_text()
    assert "module.d.key_secret: no secret key there" in host.log_text()
    with Client(stack.endpoint, timeout=3, retries=2) as admin:
        for name in ("a", "b", "c"):
            service = f"org.plantd.module.{name}"
            wait_for(lambda s=service: good(call(admin, s, "read")))
            # Each module keeps its own scope in the state service, as module.NAME.
            wait_for(lambda s=service: call(admin, "org.plantd.State", "get",
                                            {"scope": s, "key": "status"}))  # fmt: skip
        topics = asyncio.run(topics_seen(stack.settings["bus"]["backend"], ["data."]))
        assert {f"data.{name}.pulses" for name in ("a", "b", "c")} <= topics
        # Nobody was refused anything: each module registered its own service, published its
        # own topics and wrote its own scope, each with its own key.
        refused = call(admin, "org.plantd.Audit", "query", {"result": "denied"})["records"]
        assert [r for r in refused if r["time"] >= since] == []
        records = call(admin, "org.plantd.Audit", "query", {"limit": 1000})["records"]
        assert not [r for r in records if r["principal"].startswith("module.")
                    and r["result"] != "ok"]  # fmt: skip

        # d's key is made (as `plant keys init` does): the host starts it by itself.
        stack.credentials("module.d")
        wait_for_workers(stack.endpoint, "org.plantd.module.d", timeout=40)
        wait_for(lambda: "module d runs now: its key is there" in host.log_text())
        statuses = [f["STATUS"] for _, f in notify.messages(0.5) if "STATUS" in f]
        assert statuses[-1] == "module host: 4 of 4 modules running (a, b, c, d)"

        # Revoking one module's key cuts that module only: the keys are really theirs.
        assert plant(stack, "keys", "revoke", "module.b").returncode == 0
        wait_for(lambda: not _registered(admin, "org.plantd.module.b"), what="b is cut")
        for name in ("a", "c", "d"):
            service = f"org.plantd.module.{name}"
            wait_for(lambda s=service: good(call(admin, s, "read")), what=f"{name} serves")
        assert host.running()

        # A rotated key: the host starts that module again with its new key.
        assert plant(stack, "keys", "rotate", "module.a").returncode == 0
        wait_for(lambda: "module a: its key changed" in host.log_text(), what="a restarts")
        wait_for(lambda: good(call(admin, "org.plantd.module.a", "read")), what="a serves")
    assert host.terminate() == 0


def _registered(client: Client, service: str) -> bool:
    table = json.loads(client.request("mmi.workers", service.encode())[0])
    row = table.get(service, {"idle": 0, "busy": 0})
    return bool(row["idle"] + row["busy"])


# -- plant up ------------------------------------------------------------------------------------


def test_plant_up_runs_one_host_and_each_isolated_module_alone(tmp_path: Path) -> None:
    config = tmp_path / "etc"
    (config / "modules.d").mkdir(parents=True)
    for name in ("b", "a", "c"):
        (config / "modules.d" / f"{name}.yaml").write_text(pump(1.0))
    (config / "modules.d" / "opc.yaml").write_text(pump(1.0) + "isolated: true\n")
    children = list(_up_cmd._stack(["--config", str(config)], config, snapshot(config)).values())
    assert [child.name for child in children] == [
        "broker", "state", "logger", "historian", "echo", "modules a b c", "module opc",
        "control", "proxy",
    ]  # fmt: skip
    assert children[-4].argv[-2:] == ["module", "host"]
    assert children[-3].argv[-3:] == ["module", "run", "opc"]
    only_isolated = tmp_path / "other"
    (only_isolated / "modules.d").mkdir(parents=True)
    (only_isolated / "modules.d" / "opc.yaml").write_text(pump(1.0) + "isolated: true\n")
    stack = _up_cmd._stack(["--config", str(only_isolated)], only_isolated, snapshot(only_isolated))
    names = [c.name for c in stack.values()]
    assert names == [
        "broker", "state", "logger", "historian", "echo", "module opc", "control", "proxy",
    ]  # fmt: skip


# -- only the drivers it needs --------------------------------------------------------------------


def test_a_host_imports_only_the_drivers_its_modules_name(tmp_path: Path) -> None:
    config = tmp_path / "etc"
    (config / "modules.d").mkdir(parents=True)
    (config / "plantd.yaml").write_text("security: {mode: none}\n")
    for n in range(3):
        (config / "modules.d" / f"m{n}.yaml").write_text(
            f"driver: modbus\nconnection: {{host: 127.0.0.1, port: {1502 + n}}}\n"
            "groups: [{name: g, unit: 1, table: holding, interval: 1s, "
            "points: [{name: p, address: 0, type: uint16}]}]\n"
        )
    (config / "modules.d" / "opc.yaml").write_text(
        "driver: opcua\nisolated: true\nconnection: {endpoint: 'opc.tcp://127.0.0.1:4840'}\n"
    )
    probe = (
        "import sys, pathlib; from plantd.config import load_config; "
        "from plantd.module import load_host; "
        f"hosted = load_host(load_config(pathlib.Path({str(config)!r}))); "
        "print(sorted(h.name for h in hosted), "
        "sorted(m for m in ('asyncua', 'pymodbus', 'periphery') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "['m0', 'm1', 'm2'] ['pymodbus']"
