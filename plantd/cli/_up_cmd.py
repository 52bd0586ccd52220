"""``plant up``: the local appliance stack in the foreground, for a checkout or a demo.

Starts the processes systemd starts on the appliance (the broker; then the services that
exist: the state service and the Echo worker), each as its own child process with the same
``--config``, restarts any that dies (with capped backoff, as systemd's ``Restart=`` would),
and stops them all in reverse order on Ctrl-C or SIGTERM.

For a demo or a HIL bench, the config directory may also hold simulator files in ``sim.d/``
(``plant sim run FILE`` each, started right after the broker so their devices are there when
the modules start) and module files in ``modules.d/``: one module host for all of them
(``plant module host``), as on the appliance, and one ``plant module run NAME`` for each file
with ``isolated: true``.
"""

from __future__ import annotations

import argparse
import os
import pwd
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plantd.cli._common import OUTPUT_OPTIONS, cli_config
from plantd.security import KeySet, local_principals

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
        # A session of its own: Ctrl-C in the terminal reaches only `plant up`, which then
        # stops the children in order, instead of all of them at once (and racing restarts).
        self.process = subprocess.Popen(self.argv, start_new_session=True)
        self.started = time.monotonic()


def register(sub: Any) -> None:
    up = sub.add_parser(
        "up",
        parents=[OUTPUT_OPTIONS],
        help="run the local stack (broker, services) in the foreground",
    )
    up.set_defaults(run=_run_up)


def _stack(config_args: list[str], config_dir: Path | None) -> list[_Child]:
    from plantd.module import is_isolated, module_files  # the runtime comes with them

    python = sys.executable
    cli = [python, "-m", "plantd.cli", *config_args]
    sims = _visible_yaml(config_dir / "sim.d") if config_dir else []
    modules = module_files(config_dir)
    isolated = [path.stem for path in modules if is_isolated(path)]
    hosted = [path.stem for path in modules if path.stem not in isolated]
    return [
        _Child("broker", [python, "-m", "plantd.broker", *config_args]),
        *(_Child(f"sim {path.stem}", [*cli, "sim", "run", str(path)]) for path in sims),
        _Child("state", [python, "-m", "plantd.state", *config_args]),
        _Child("echo", [*cli, "serve", "echo"]),
        *([_Child(f"modules {' '.join(hosted)}", [*cli, "module", "host"])] if hosted else []),
        *(_Child(f"module {name}", [*cli, "module", "run", name]) for name in isolated),
    ]


def _visible_yaml(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if not p.name.startswith("."))


def _run_up(args: argparse.Namespace) -> int:
    config = cli_config(args)  # validate before starting anything
    config_args = ["--config", str(config.source_dir)] if config.source_dir else []
    for directory in (config.paths.data, config.paths.run):
        Path(directory).mkdir(parents=True, exist_ok=True)
    if config.security.enabled:
        # Every process of the stack needs its key, and you one to command it: make those
        # that are missing (a throwaway set for a checkout; see docs/security.md).
        login = pwd.getpwuid(os.geteuid()).pw_name
        made = KeySet(config).init(local_principals(config.source_dir), [login])
        if made:
            where = config.security.keys_dir(config.source_dir)
            print(f"plant up: made {len(made)} key(s) in {where} (you: user.{login}, admin)")
    children = _stack(config_args, config.source_dir)
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.start()
        time.sleep(0.3)  # the broker binds first; the others would only retry meanwhile
    print(
        f"plantd stack up (broker {config.broker.endpoint}). Try, in another terminal:\n"
        f"  {_plant(config_args)} mmi workers\n"
        f"  {_plant(config_args)} echo hello\n"
        + _demo_hints(children, config_args)
        + "Ctrl-C stops everything.",
        flush=True,
    )
    while not stopping.wait(0.2):
        now = time.monotonic()
        for child in children:
            _supervise(child, now)
    # Reverse order, each gone before the next: modules and services leave the broker first.
    for child in reversed(children):
        if child.process is None:
            continue
        if child.process.poll() is None:
            child.process.terminate()
        try:
            child.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()
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


def _demo_hints(children: list[_Child], config_args: list[str]) -> str:
    """What to try with the simulated plant, when the config directory has one."""
    names = [
        name
        for child in children
        if child.name.startswith(("module ", "modules "))
        for name in child.name.split()[1:]
    ]
    sims = [child.name.split(" ", 1)[1] for child in children if child.name.startswith("sim ")]
    plant = _plant(config_args)
    hints = [f"  {plant} bus tail data.", f"  {plant} module read {names[0]}"] if names else []
    if "station" in names and "pump-station" in sims:  # the shipped demo plant
        hints += [
            f"  {plant} module write station speed_setpoint 90   # watch field.tank_level rise",
            f"  {plant} sim inject pump-station field silent --unit 2 --duration 10s",
        ]
    elif sims:
        hints.append(f"  {plant} sim status {sims[0]}")
    return "".join(hint + "\n" for hint in hints)


def _plant(config_args: list[str]) -> str:
    return " ".join([".venv/bin/plant", *config_args])
