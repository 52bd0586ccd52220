"""Real plantd processes for tests and rigs: start, wait until they serve, kill -9, restart."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from plantd.client import Client
from plantd.errors import RequestTimeout

__all__ = [
    "ManagedProcess",
    "make_keys",
    "wait_for_broker",
    "wait_for_workers",
    "write_config",
]


def write_config(directory: Path, sections: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write ``plantd.yaml`` into ``directory`` (created) and return the directory.

    Without a ``security`` section the stack is a plain loopback one (``security.mode:
    none``), as most tests of other features want. With ``security: {mode: curve}`` the keys
    every process of a stack needs are made too (:func:`make_keys`).
    """
    directory.mkdir(parents=True, exist_ok=True)
    data = {k: dict(v) for k, v in sections.items()}
    data.setdefault("security", {"mode": "none"})
    (directory / "plantd.yaml").write_text(yaml.safe_dump(data))
    if data["security"].get("mode", "curve") == "curve":
        make_keys(directory)
    return directory


def make_keys(config_dir: Path, modules: Sequence[str] = (), sinks: Sequence[str] = ()) -> None:
    """The key set of a test stack: the broker's, the plantd services', one per module and
    sink (those in its ``modules.d``/``sinks.d`` and those named), and an admin for the user
    running the tests, whose secret ``plant`` finds by itself (``user.LOGIN``)."""
    from plantd.config import load_config
    from plantd.security import KeySet, local_principals

    principals = local_principals(config_dir)
    principals += [f"module.{name}" for name in modules] + [f"sink.{name}" for name in sinks]
    login = pwd.getpwuid(os.geteuid()).pw_name
    KeySet(load_config(config_dir)).init(sorted(set(principals)), [login])


class ManagedProcess:
    """A child process whose output goes to a log file, killable and restartable."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.env = dict(os.environ if env is None else env)
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def plantd(
        cls, args: Sequence[str], *, name: str, log_dir: Path, env: Mapping[str, str] | None = None
    ) -> ManagedProcess:
        """``python -m <args>`` with the interpreter running the tests."""
        return cls([sys.executable, "-m", *args], name=name, log_dir=log_dir, env=env)

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, and reap it: the process gets no chance to say goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def terminate(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait; returns the exit code (SIGKILL after ``timeout``)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def restart(self) -> ManagedProcess:
        self.kill()
        return self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def wait_for_broker(
    endpoint: str, timeout: float = 15.0, process: ManagedProcess | None = None
) -> dict[str, Any]:
    """Block until the broker at ``endpoint`` answers ``mmi.broker``; return its answer.

    With ``process``, give up at once if it exits (its log then says why).
    """
    deadline = time.monotonic() + timeout
    with Client(endpoint, timeout=0.25, retries=0) as client:
        while True:
            try:
                info: dict[str, Any] = json.loads(client.request("mmi.broker", b"")[0])
                return info
            except RequestTimeout:
                if process is not None and not process.running():
                    raise RuntimeError(
                        f"{process.name} exited with {process.process and process.process.poll()}:"
                        f"\n{process.log_text()[-2000:]}"
                    ) from None
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)


def wait_for_workers(endpoint: str, service: str, count: int = 1, timeout: float = 15.0) -> None:
    """Block until ``count`` workers of ``service`` are registered (idle or busy)."""
    deadline = time.monotonic() + timeout
    with Client(endpoint, timeout=0.5, retries=0) as client:
        while True:
            try:
                table = json.loads(client.request("mmi.workers", service.encode())[0])
                row = table.get(service, {"idle": 0, "busy": 0})
                if row["idle"] + row["busy"] >= count:
                    return
            except RequestTimeout:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{count} worker(s) of {service!r} not registered in {timeout} s"
                )
            time.sleep(0.05)
