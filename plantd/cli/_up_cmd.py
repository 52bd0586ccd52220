"""``plant up``: the local appliance stack in the foreground, for a checkout or a demo.

Starts the processes systemd starts on the appliance (the broker; then the services that
exist: the state service and the Echo worker), each as its own child process with the same
``--config``, restarts any that dies (with capped backoff, as systemd's ``Restart=`` would),
and stops them all in reverse order on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plantd.cli._common import OUTPUT_OPTIONS, cli_config

__all__ = ["register"]

_RESTART_MAX = 10.0


@dataclass
class _Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restart_at: float = 0.0
    delay: float = 0.5
    started: float = field(default=0.0)

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv)
        self.started = time.monotonic()


def register(sub: Any) -> None:
    up = sub.add_parser(
        "up",
        parents=[OUTPUT_OPTIONS],
        help="run the local stack (broker, services) in the foreground",
    )
    up.set_defaults(run=_run_up)


def _stack(config_args: list[str]) -> list[_Child]:
    python = sys.executable
    return [
        _Child("broker", [python, "-m", "plantd.broker", *config_args]),
        _Child("state", [python, "-m", "plantd.state", *config_args]),
        _Child("echo", [python, "-m", "plantd.cli", *config_args, "serve", "echo"]),
    ]


def _run_up(args: argparse.Namespace) -> int:
    config = cli_config(args)  # validate before starting anything
    config_args = ["--config", str(config.source_dir)] if config.source_dir else []
    for directory in (config.paths.data, config.paths.run):
        Path(directory).mkdir(parents=True, exist_ok=True)
    children = _stack(config_args)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.start()
        time.sleep(0.3)  # the broker binds first; the others would only retry meanwhile
    print(
        f"plantd stack up (broker {config.broker.endpoint}). Try, in another terminal:\n"
        f"  {_plant(config_args)} mmi workers\n"
        f"  {_plant(config_args)} echo hello\n"
        "Ctrl-C stops everything.",
        flush=True,
    )
    while not stopping:
        time.sleep(0.2)
        now = time.monotonic()
        for child in children:
            _supervise(child, now)
    for child in reversed(children):
        if child.process is not None and child.process.poll() is None:
            child.process.terminate()
    for child in reversed(children):
        if child.process is not None:
            try:
                child.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.process.kill()
    return 0


def _supervise(child: _Child, now: float) -> None:
    process = child.process
    if process is None:
        if now >= child.restart_at:
            child.start()
        return
    code = process.poll()
    if code is None:
        if now - child.started > 30:
            child.delay = 0.5  # a healthy run resets the backoff
        return
    print(
        f"plant up: {child.name} exited with {code}; restarting in {child.delay:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    child.process = None
    child.restart_at = now + child.delay
    child.delay = min(child.delay * 2, _RESTART_MAX)


def _plant(config_args: list[str]) -> str:
    return " ".join([".venv/bin/plant", *config_args])
