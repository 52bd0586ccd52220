"""sd_notify against a test NOTIFY_SOCKET: READY after bind, WATCHDOG cadence, and silence when
the loop is blocked — with the real broker and module processes."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from plantd.config import load_config
from plantd.systemd import Notifier, Watchdog
from plantd.testing import NotifySocket, ipc_endpoints, wait_for_broker, write_config


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    with NotifySocket(tmp_path / "notify.sock") as sock:
        yield sock


def test_notifier_is_a_no_op_outside_systemd() -> None:
    notifier = Notifier.from_environ({})
    assert not notifier.enabled
    assert notifier.send(ready=1) is False
    assert not Watchdog(notifier, {"WATCHDOG_USEC": "1000000"}).enabled


def test_abstract_socket_addresses(tmp_path: Path) -> None:
    name = f"plantd-test-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    try:
        with Notifier("@" + name) as notifier:
            assert notifier.send(status="hello")
        assert server.recv(100) == b"STATUS=hello"
    finally:
        server.close()


def test_watchdog_for_another_pid_is_ignored(notify: NotifySocket) -> None:
    with Notifier(str(notify.path)) as notifier:
        assert not Watchdog(notifier, {"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).enabled
        environ = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
        watchdog = Watchdog(notifier, environ)
        watchdog.ping(now=0.0)
        watchdog.ping(now=0.5)  # within half the period: not sent again
        watchdog.ping(now=1.0)
    assert [fields for _, fields in notify.messages(0.3)] == [{"WATCHDOG": "1"}] * 2


def _config(tmp_path: Path) -> Path:
    # A worker starts before the broker here: endpoints known before anything binds.
    return write_config(
        tmp_path / "etc",
        {**ipc_endpoints(tmp_path / "sockets"), "paths": {"run": str(tmp_path / "run")}},
    )


def _start(
    args: list[str], notify: NotifySocket | None, watchdog_usec: int = 0
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    if notify is not None:
        env.update(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC=str(watchdog_usec))
    return subprocess.Popen(
        [sys.executable, "-m", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def test_broker_ready_after_bind_then_watchdog_and_status(
    tmp_path: Path, notify: NotifySocket
) -> None:
    config_dir = _config(tmp_path)
    broker = _start(["plantd.broker", "--config", str(config_dir)], notify, 1_000_000)
    try:
        ready = notify.wait_for("READY")
        assert ready["READY"] == "1"
        # READY comes after bind: the endpoint answers now.
        wait_for_broker(load_config(config_dir).broker.endpoint, timeout=2)
        pings = [at for at, fields in notify.messages(2.6) if "WATCHDOG" in fields]
        assert len(pings) >= 3  # every half period (0.5 s), give or take wake-ups
        # Cadence, not a deadline: the typical gap is within the period (one late wake-up on a
        # loaded machine is the scheduler's, not the broker's).
        gaps = sorted(b - a for a, b in itertools.pairwise(pings))
        assert gaps[len(gaps) // 2] < 1.0
        # Blocked loop: no pings while the process is stopped, pings again once it goes on.
        broker.send_signal(signal.SIGSTOP)
        notify.messages(0.2)  # drain what was in flight
        assert not [f for _, f in notify.messages(1.5) if "WATCHDOG" in f]
        broker.send_signal(signal.SIGCONT)
        assert notify.wait_for("WATCHDOG", timeout=3)
        broker.terminate()
        assert notify.wait_for("STOPPING")["STOPPING"] == "1"
        assert broker.wait(timeout=10) == 0
    finally:
        broker.kill()
        broker.wait()


def test_a_worker_is_ready_only_once_registered(tmp_path: Path, notify: NotifySocket) -> None:
    config_dir = _config(tmp_path)
    echo = _start(["plantd.cli", "--config", str(config_dir), "serve", "echo"], notify, 1_000_000)
    broker = None
    try:
        # No broker yet: the worker cannot serve, so it must not claim READY.
        early = notify.messages(1.5)
        assert not [f for _, f in early if "READY" in f]
        assert [f for _, f in early if "WATCHDOG" in f], "the loop runs, so it pings"
        broker = _start(["plantd.broker", "--config", str(config_dir)], None)
        fields = notify.wait_for("READY")
        assert fields["STATUS"] == "1 Echo worker(s)"
    finally:
        for process in (echo, broker):
            if process is not None:
                process.kill()
                process.wait()
