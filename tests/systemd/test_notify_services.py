"""sd_notify from the asyncio services, against a test NOTIFY_SOCKET: the state service, a
module and the module host say READY=1 only once they serve (database open, registered with the
broker), ping WATCHDOG=1 at half the period from their event loop, go silent when that loop is
blocked, and stop in order on SIGTERM (STOPPING=1, exit 0) well within the units'
TimeoutStopSec=15s.
(tests/unit/systemd/test_notify.py does the same for the broker's poll loop.)"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from plantd.runtime import run_until_signal
from plantd.testing import NotifySocket, ipc_endpoints, write_config

STOP_WITHIN = 15.0  # the units' TimeoutStopSec=


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    with NotifySocket(tmp_path / "notify.sock") as sock:
        yield sock


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    # Services start before the broker here: endpoints known before anything binds.
    config = write_config(
        tmp_path / "etc",
        {
            **ipc_endpoints(tmp_path / "sockets"),
            "paths": {"data": str(tmp_path / "data"), "run": str(tmp_path / "run")},
            "state": {"workers": 2},
        },
    )
    (config / "modules.d").mkdir()
    (config / "modules.d" / "demo.yaml").write_text(
        "driver: fake\n"
        "groups:\n"
        "  - name: main\n"
        "    interval: 200ms\n"
        "    points:\n"
        "      - {name: level, value: 1.0, pattern: sine, period: 5}\n"
    )
    (config / "sinks.d").mkdir()
    (config / "sinks.d" / "upstream.yaml").write_text(
        "type: postgres\npostgres: {dsn: 'host=127.0.0.1 port=1 connect_timeout=1'}\n"
    )
    return config


def start(args: list[str], notify: NotifySocket | None, tmp_path: Path, name: str,
          watchdog_usec: int = 1_000_000) -> subprocess.Popen[bytes]:  # fmt: skip
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}  # fmt: skip
    if notify is not None:
        env.update(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC=str(watchdog_usec))
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [sys.executable, "-m", *args], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    return process


def stop(*processes: subprocess.Popen[bytes] | None) -> None:
    for process in processes:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


def check_watchdog_and_stop(process: subprocess.Popen[bytes], notify: NotifySocket) -> None:
    """Pings every half period; none while the process is stopped; STOPPING and exit 0 on
    SIGTERM, in good time."""
    pings = [at for at, fields in notify.messages(2.6) if "WATCHDOG" in fields]
    assert len(pings) >= 3, pings
    assert all(b - a < 1.0 for a, b in itertools.pairwise(pings))
    process.send_signal(signal.SIGSTOP)
    notify.messages(0.2)
    assert not [f for _, f in notify.messages(1.5) if "WATCHDOG" in f]
    process.send_signal(signal.SIGCONT)
    assert notify.wait_for("WATCHDOG", timeout=3)
    began = time.monotonic()
    process.terminate()
    assert notify.wait_for("STOPPING")["STOPPING"] == "1"
    assert process.wait(timeout=STOP_WITHIN) == 0
    assert time.monotonic() - began < STOP_WITHIN


def test_state_is_ready_once_its_database_is_open_and_it_is_registered(
    tmp_path: Path, config_dir: Path, notify: NotifySocket
) -> None:
    state = start(["plantd.state", "--config", str(config_dir)], notify, tmp_path, "state")
    broker = None
    try:
        # No broker: the database is open but nobody can reach the service. Not ready yet,
        # though the loop runs (and pings). However long the start takes on a busy machine.
        early = notify.until("WATCHDOG")
        assert not [f for f in early if "READY" in f]
        assert (tmp_path / "data" / "state.db").exists()
        broker = start(["plantd.broker", "--config", str(config_dir)], None, tmp_path, "broker")
        ready = notify.wait_for("READY")
        assert ready["READY"] == "1"
        assert "state.db" in ready["STATUS"]
        result = subprocess.run(
            [sys.executable, "-m", "plantd.cli", "--config", str(config_dir), "mmi", "service",
             "org.plantd.State"], capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        check_watchdog_and_stop(state, notify)
    finally:
        stop(state, broker)


def test_state_that_cannot_open_its_database_is_never_ready(
    tmp_path: Path, config_dir: Path, notify: NotifySocket
) -> None:
    (tmp_path / "data").write_text("a file where the data directory should be")
    state = start(["plantd.state", "--config", str(config_dir)], notify, tmp_path, "state")
    try:
        assert state.wait(timeout=30) == 1
        assert not [f for _, f in notify.messages(0.3) if "READY" in f]
    finally:
        stop(state)


def test_a_module_is_ready_once_registered_then_pings(
    tmp_path: Path, config_dir: Path, notify: NotifySocket
) -> None:
    broker = start(["plantd.broker", "--config", str(config_dir)], None, tmp_path, "broker")
    module = start(
        ["plantd.cli", "--config", str(config_dir), "module", "run", "demo"],
        notify,
        tmp_path,
        "module",
    )
    try:
        ready = notify.wait_for("READY")
        assert ready["STATUS"] == "module demo: 1 points, driver fake"
        check_watchdog_and_stop(module, notify)
    finally:
        stop(module, broker)


def test_the_module_host_is_ready_once_every_module_is_registered_then_pings(
    tmp_path: Path, config_dir: Path, notify: NotifySocket
) -> None:
    (config_dir / "modules.d" / "other.yaml").write_text(
        (config_dir / "modules.d" / "demo.yaml").read_text()
    )
    host = start(
        ["plantd.cli", "--config", str(config_dir), "module", "host"], notify, tmp_path, "host"
    )
    broker = None
    try:
        # No broker: no module is registered, so not ready, though the loop runs (and pings).
        early = notify.until("WATCHDOG")
        assert not [f for f in early if "READY" in f]
        broker = start(["plantd.broker", "--config", str(config_dir)], None, tmp_path, "broker")
        ready = notify.wait_for("READY")
        assert ready["STATUS"] == "module host: 2 of 2 modules running (demo, other)"
        check_watchdog_and_stop(host, notify)
    finally:
        stop(host, broker)


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["plantd.historian"], "storing samples in"),
        # An upstream that cannot be reached does not keep the sink from being ready: it keeps
        # its queue and retries, which is its job.
        (["plantd.sinks", "upstream"], "sink upstream: postgres upstream"),
    ],
    ids=["historian", "sink"],
)
def test_historian_and_sinks_are_ready_once_registered_then_ping(
    tmp_path: Path, config_dir: Path, notify: NotifySocket, args: list[str], status: str
) -> None:
    program = [args[0], "--config", str(config_dir), *args[1:]]
    process = start(program, notify, tmp_path, args[0])
    broker = None
    try:
        assert not [f for _, f in notify.messages(1.0) if "READY" in f]  # no broker yet
        broker = start(["plantd.broker", "--config", str(config_dir)], None, tmp_path, "broker")
        ready = notify.wait_for("READY")
        assert ready["STATUS"].startswith(status)
        check_watchdog_and_stop(process, notify)
    finally:
        stop(process, broker)


class _Blocker:
    """A service whose work blocks the event loop for a while (a driver calling a blocking
    library on the loop instead of in a thread)."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.stopped = asyncio.Event()

    async def run(self) -> None:
        self.connected.set()
        await asyncio.sleep(1.2)
        # The loop is blocked: nothing else runs, the watchdog task neither.
        time.sleep(2.0)  # noqa: ASYNC251 - the point of this service
        await self.stopped.wait()

    def stop(self) -> None:
        self.stopped.set()


async def test_no_watchdog_while_the_event_loop_is_blocked(notify: NotifySocket) -> None:
    environ = {
        "NOTIFY_SOCKET": str(notify.path),
        "WATCHDOG_USEC": "500000",
        "WATCHDOG_PID": str(os.getpid()),
    }
    service = _Blocker()
    received: list[tuple[float, dict[str, str]]] = []
    # Stamp each message as it arrives, on a thread that the blocked loop does not stop.
    reader = threading.Thread(target=lambda: received.extend(notify.messages(4.6)))
    started = time.monotonic()
    reader.start()
    task = asyncio.create_task(run_until_signal([service], environ=environ))
    await asyncio.sleep(4.0)
    os.kill(os.getpid(), signal.SIGTERM)  # run_until_signal's handler: an orderly stop
    await asyncio.wait_for(task, timeout=5)
    await asyncio.to_thread(reader.join)
    messages = [(at - started, f) for at, f in received]
    pings = [at for at, f in messages if "WATCHDOG" in f]
    assert [f for _, f in messages if "READY" in f]
    assert any(at < 1.2 for at in pings)  # pinging before the block…
    assert not [at for at in pings if 1.5 < at < 3.1]  # …silent while the loop is blocked…
    assert any(at > 3.2 for at in pings)  # …and again once it runs
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) > 1.5  # longer than the period: systemd would have restarted it
