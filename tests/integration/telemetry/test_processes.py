"""Each kind of plantd process reports on the bus as its source: the broker (from inside),
a service run by service_main, an isolated module, and the module host — whose modules'
records go out as module.<name>, its own as modules. Also: under CURVE a module's key may
publish log.module.<its name>.* and nothing of another's."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from plantd.client import Client
from plantd.config import load_config
from plantd.errors import RequestTimeout, SecurityError
from plantd.security import Credentials, service_identity
from plantd.telemetry import start_telemetry
from plantd.testing import ManagedProcess, bus_log_records, wait_for_workers
from tests.conftest import Stack

log = logging.getLogger("plantd.test.telemetry")

PUMP = """
driver: fake
groups:
  - name: main
    interval: 100ms
    points:
      - {name: flow, value: 1.5}
"""


@pytest.fixture(autouse=True)
def _verbose() -> Iterator[None]:
    old = log.level
    log.setLevel(logging.DEBUG)
    yield
    log.setLevel(old)


def write_module(stack: Stack, name: str, text: str = PUMP) -> None:
    modules = stack.config_dir / "modules.d"
    modules.mkdir(exist_ok=True)
    (modules / f"{name}.yaml").write_text(text)


def start(stack: Stack, name: str, *args: str) -> ManagedProcess:
    process = ManagedProcess.plantd(list(args), name=name, log_dir=stack.log_dir).start()
    stack.processes.append(process)
    return process


@pytest.mark.slow
@pytest.mark.stack(metrics={"interval": "200ms"})
def test_the_broker_and_a_service_report_as_themselves(stack: Stack) -> None:
    stack.start_broker()
    config = load_config(stack.config_dir)
    with bus_log_records(config.bus.backend, ["metrics.", "log.state."]) as bus:
        start(stack, "state", "plantd.state", "--config", str(stack.config_dir))
        wait_for_workers(stack.endpoint, "org.plantd.State")
        broker = bus.wait_for(lambda topic, fields: topic == "metrics.broker")
        state = bus.wait_for(lambda topic, fields: topic == "metrics.state")
        # Its records, from the moment it serves.
        record = bus.wait_for(lambda topic, fields: fields.get("message", "").startswith("ready"))
    assert broker[1]["source"] == "broker"
    assert "plantd_process_start_time_seconds" in broker[1]["text"]
    assert state[1]["source"] == "state"
    assert record[0] == "log.state.info"
    assert record[1]["logger"].startswith("plantd.")


@pytest.mark.slow
def test_the_host_sends_each_modules_records_as_its_own(stack: Stack) -> None:
    stack.start_broker()
    config = load_config(stack.config_dir)
    write_module(stack, "a")
    write_module(stack, "b")
    write_module(stack, "broken", "driver: fake\ngroups: 42\n")
    with bus_log_records(config.bus.backend, ["log.module.", "log.modules."]) as bus:
        start(stack, "host", "plantd.cli", "--config", str(stack.config_dir), "module", "host")
        a = bus.wait_for(lambda topic, fields: fields["message"] == "module a: serving")
        b = bus.wait_for(lambda topic, fields: fields["message"] == "module b: serving")
        own = bus.wait_for(lambda topic, fields: topic.startswith("log.modules."))
    assert a[0] == "log.module.a.info"
    assert (a[1]["source"], a[1]["module"]) == ("module.a", "a")
    assert b[0] == "log.module.b.info"
    assert own[1]["source"] == "modules"
    assert "module" not in own[1]


@pytest.mark.slow
def test_an_isolated_module_reports_as_module_name(stack: Stack) -> None:
    stack.start_broker()
    config = load_config(stack.config_dir)
    write_module(stack, "c")
    with bus_log_records(config.bus.backend, ["log.module."]) as bus:
        start(stack, "module-c", "plantd.cli", "--config", str(stack.config_dir),
              "module", "run", "c")  # fmt: skip
        topic, fields = bus.wait_for(lambda topic, fields: "driver fake" in fields["message"])
    assert topic == "log.module.c.info"
    assert fields["source"] == "module.c"


@pytest.mark.stack(security={"mode": "curve"})
def test_a_module_key_publishes_its_own_records_only(stack: Stack) -> None:
    stack.start_broker()
    config = load_config(stack.config_dir)
    m1 = stack.credentials("module.m1")

    def route(record: logging.LogRecord) -> str | None:
        return "module.m2" if getattr(record, "forged", False) else None

    with (
        bus_log_records(config.bus.backend, ["log.module.", "metrics.module."]) as bus,
        start_telemetry(config, "module.m1", credentials=m1, route=route) as telemetry,
    ):
        bus.wait_for(lambda t, f: f["message"] == "warm-up", meanwhile=lambda: log.info("warm-up"))
        for n in range(20):
            log.warning("forged %d", n, extra={"forged": True})  # as module.m2: refused
        log.warning("own")
        own = bus.wait_for(lambda topic, fields: fields["message"] == "own")
        # Its metrics too (metrics.module.m1 is its own).
        bus.wait_for(
            lambda topic, fields: topic == "metrics.module.m1", meanwhile=telemetry.snapshot
        )
    assert own[0] == "log.module.m1.warning"
    # The same socket sent them all, the forged ones first: the broker dropped them.
    assert [topic for topic, _ in bus.items if "m2" in topic] == []


@pytest.mark.slow
@pytest.mark.stack(security={"mode": "curve"}, metrics={"interval": "200ms"})
def test_under_curve_the_host_and_the_broker_report(stack: Stack) -> None:
    stack.start_broker()
    config = load_config(stack.config_dir)
    write_module(stack, "a")
    write_module(stack, "broken", "driver: fake\ngroups: 42\n")
    stack.credentials("module.a")
    prefixes = ["log.module.", "log.modules.", "metrics.broker"]
    with bus_log_records(config.bus.backend, prefixes) as bus:
        start(stack, "host", "plantd.cli", "--config", str(stack.config_dir), "module", "host")
        # service.modules may publish log.module.*: each module's records, and its own.
        a = bus.wait_for(lambda topic, fields: fields.get("message") == "module a: serving")
        own = bus.wait_for(lambda topic, fields: topic.startswith("log.modules."))
        # The broker's own snapshots pass its guarded bus (published inside, keyless).
        bus.wait_for(lambda topic, fields: topic == "metrics.broker")
    assert a[0] == "log.module.a.info"
    assert own[1]["source"] == "modules"


def refused_old_key(stack: Stack, old: Credentials) -> None:
    """Wait until the broker refuses ``old`` (it reads its keys again every 0.25 s)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with Client(stack.endpoint, timeout=0.5, retries=0, credentials=old) as client:
                client.request("mmi.broker", b"")
        except SecurityError:
            return
        except RequestTimeout:
            pass
        time.sleep(0.05)
    raise AssertionError("the broker still takes the old key")


@pytest.mark.stack(security={"mode": "curve"})
def test_an_identity_is_followed_as_its_key_rotates(stack: Stack) -> None:
    stack.start_broker()
    config = load_config(stack.config_dir)
    stack.credentials("service.modules")
    identity = service_identity(config, "service.modules")
    assert identity is not None
    old = identity.credentials()
    with (
        bus_log_records(config.bus.backend, ["log.modules."]) as bus,
        start_telemetry(config, "modules", credentials=identity),
    ):
        bus.wait_for(lambda t, f: f["message"] == "before", meanwhile=lambda: log.info("before"))
        stack.keyset().rotate("service.modules")
        assert identity.credentials() != old
        refused_old_key(stack, old)
        # The broker cut the old key; the telemetry thread takes the new one.
        bus.wait_for(
            lambda t, f: f["message"] == "after", timeout=20, meanwhile=lambda: log.info("after")
        )
