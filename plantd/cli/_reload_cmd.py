"""``plant reload``: apply the changes of ``modules.d/`` and ``sinks.d/`` to what runs now.

The same rule as ``plant up``'s file watch and the appliance's path unit
(:mod:`plantd.reconfigure`, docs/reload.md): the files about to be applied are checked as
``plant config check`` checks them; a file found wrong is refused (its ``file:line`` problems
on stderr, exit 2) and the instance that runs keeps running; the others are applied. What will
change is printed against the snapshot last applied (``<paths.run>/applied-config.json``).

Who applies it: systemd, when it runs the stack (``plantd.target`` active: the units of the
changed modules and sinks are started, restarted or stopped, the module host reloaded; see
:mod:`plantd.cli._reload_systemd`); else ``plant up``, when one holds this configuration's
``<paths.data>/plant-up.lock`` (it gets SIGHUP and applies the changes itself); else nothing
runs the configuration, and that is exit 1.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from plantd._entry import CONFIG_ERROR
from plantd.cli._common import OUTPUT_OPTIONS, cli_config, emit
from plantd.cli._up_cmd import LOCK_FILE
from plantd.cli._watch import applicable, candidates, refusal_lines
from plantd.config import PlantdConfig
from plantd.reconfigure import APPLIED_FILE, Plan, Snapshot, plan, refusals, snapshot

__all__ = ["plant_up_pid", "register"]

NOTHING_RUNS = 1


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "reload",
        parents=[OUTPUT_OPTIONS],
        help="apply the changes of modules.d/ and sinks.d/ to the running stack",
        description="Check the changed files of modules.d/ and sinks.d/ (a bad one is refused, "
        "exit 2, and what runs keeps running) and apply the others to what runs the "
        "configuration: systemd (plantd.target) or plant up.",
    )
    parser.add_argument("--check", action="store_true", help="say what would change; apply nothing")
    parser.set_defaults(run=run_reload)


def run_reload(args: argparse.Namespace) -> int:
    config = cli_config(args)
    if config.source_dir is None:
        print("plant reload: no config directory (give --config DIR)", file=sys.stderr)
        return NOTHING_RUNS
    config_dir = config.source_dir.absolute()
    applied_file = Path(config.paths.run) / APPLIED_FILE
    applied = Snapshot.load(applied_file) or Snapshot()
    new = snapshot(config_dir)
    wanted = plan(applied, new)
    refused: dict[str, list[str]] = {}
    if wanted:
        from plantd.configcheck import check_directory  # loads every driver: only when needed

        problems = check_directory(config_dir, args.environ).problems
        refused = dict(refusals(problems, candidates(wanted, new)))
    for line in refusal_lines("plant reload", refused, applied, config_dir):
        print(line, file=sys.stderr)
    target = applicable(applied, new, refused)
    changes = plan(applied, target)
    lines = changes.describe() or ["nothing to change"]
    status = CONFIG_ERROR if refused else 0
    report: dict[str, Any] = {
        "config_dir": str(config_dir),
        "changes": changes.describe(),
        "refused": refused,
        "applied_by": None,
    }
    runner, done = _apply(args, config, changes, target, new)
    if runner is None:
        print(
            f"plant reload: nothing runs the configuration in {config_dir} (start it with "
            "plant up or systemctl start plantd.target)",
            file=sys.stderr,
        )
        return NOTHING_RUNS
    report["applied_by"] = None if args.check else runner
    emit(args, report, "\n".join(line for line in [*lines, done] if line))
    if not status and any(line.startswith("failed:") for line in done.splitlines()):
        status = 1  # a systemctl command failed (said above); the others were applied
    return status


def _apply(
    args: argparse.Namespace,
    config: PlantdConfig,
    changes: Plan,
    target: Snapshot,
    seen: Snapshot,
) -> tuple[str | None, str]:
    """Who runs the configuration (``systemd``, ``plant up`` or None), and what was done;
    with ``--check``, nothing is done."""
    systemd = _systemd_side()
    if systemd is not None and systemd.systemd_manages(config):
        if args.check or not changes:
            return "systemd", "(--check: nothing applied)" if args.check else ""
        # It saves the applied snapshot itself, and asks for another run if the files
        # changed since ``seen`` (taken before they were checked).
        lines: list[str] = systemd.apply_systemd(config, changes, target, seen=seen)
        return "systemd", "\n".join(lines or ["applied by systemd (plantd.target)"])
    pid = plant_up_pid(Path(config.paths.data))
    if pid is None:
        return None, ""
    if args.check:
        return "plant up", f"(--check: nothing applied; plant up, pid {pid}, runs it)"
    # plant up checks and applies the files itself (and saves what it applied): the same rule,
    # so it refuses what was refused here. Sent even when nothing changed since it last
    # looked: it looks at once, instead of within half a second.
    os.kill(pid, signal.SIGHUP)
    return "plant up", f"sent SIGHUP to plant up (pid {pid}), which applies it"


def _systemd_side() -> Any:
    """The appliance's side (:mod:`plantd.cli._reload_systemd`), or None where it is not
    installed."""
    try:
        return importlib.import_module("plantd.cli._reload_systemd")
    except ImportError:
        return None


def plant_up_pid(data: Path) -> int | None:
    """The pid of the ``plant up`` that holds ``<data>/plant-up.lock`` now, or None: a pid left
    in the file by one that is gone does not count (the kernel dropped its lock)."""
    try:
        fd = os.open(data / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 64).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)  # we got it: nobody holds it
        return None
    finally:
        os.close(fd)
