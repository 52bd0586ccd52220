"""The systemd side of ``plant reload``: on the appliance, systemd runs the stack, so applying
a change to ``modules.d/`` or ``sinks.d/`` is a few ``systemctl`` commands (docs/reload.md, "On
the appliance"). ``plant reload`` (:mod:`plantd.cli._reload_cmd`) decides what changed and
which files are refused; this module says whether systemd runs the configuration
(:func:`systemd_manages`) and applies the plan with systemctl (:func:`apply_systemd`).

What each change takes:

- first ``systemctl daemon-reload``, which runs the plantd-module-generator again: its
  ``plantd.target.wants/`` links (what starts at the next boot) and its access drop-ins
  (the devices and addresses each unit may reach);
- the module host (``plantd-modules.service``), if any of its files changed: ``systemctl
  reload`` (SIGHUP: the host starts, restarts or stops only the modules whose files changed),
  unless its access drop-in changed — a new device or address is a new sandbox, which only a
  new process gets, so then ``systemctl restart``, and every hosted module restarts with it;
  stopped when no module is left for it, started when it was not running;
- an isolated module (``plantd-module@NAME.service``): started, restarted or stopped;
- a sink (``plantd-sink@NAME.service``): started, ``systemctl reload-or-restart`` (SIGHUP:
  the sink re-reads its file and keeps its queue; a sink that is not running is started) or
  stopped.

A file new to the applied snapshot whose unit already runs (the first ``plant reload`` after a
boot: the snapshot lives in /run) is applied only if it is not older than the unit's process.

Then the applied snapshot is saved. A systemctl command that fails is reported (the unit, the
exit status, ``systemctl status UNIT``) and the others are still run: one sink that does not
start must not keep a module from starting.

plantd-reload.path watches the two directories, but not while the service it started runs:
a change that lands then would be lost. So, once done, the files are compared with what
``plant reload`` read when it began, and if they differ ``<paths.run>/reload-again`` is
created, which the path unit sees when the service ends, and runs it again.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from plantd.config import DEFAULT_CONFIG_DIR, PlantdConfig
from plantd.reconfigure import APPLIED_FILE, Plan, Snapshot, snapshot

__all__ = [
    "AGAIN_FILE",
    "HOST_DROP_IN",
    "HOST_UNIT",
    "apply_systemd",
    "systemd_manages",
]

Runner = Callable[..., "subprocess.CompletedProcess[str]"]

SYSTEMD_BOOTED = Path("/run/systemd/system")  # there when systemd is PID 1 (sd_booted(3))
GENERATOR_DIR = Path("/run/systemd/generator")  # the generator's `normal` directory
HOST_UNIT = "plantd-modules.service"
HOST_DROP_IN = Path(f"{HOST_UNIT}.d") / "50-plantd-access.conf"  # under GENERATOR_DIR
TARGET = "plantd.target"
AGAIN_FILE = "reload-again"  # in paths.run: plantd-reload.path's PathExists=
# plantd.target in one of these states: systemd runs the stack (or is bringing it up).
_TARGET_UP = {"active", "activating", "reloading"}
_RUNNING = {"active", "reloading"}


def systemd_manages(
    config: PlantdConfig,
    *,
    run: Runner = subprocess.run,
    booted: Path = SYSTEMD_BOOTED,
) -> bool:
    """Whether systemd runs the stack of ``config``, so that ``plant reload`` applies a change
    with :func:`apply_systemd`.

    All three must hold: systemd is PID 1 (``/run/systemd/system`` exists); ``config`` is
    the directory the units name (``/etc/plantd``: a checkout's ``plant up --config ./dev`` on
    a laptop that runs systemd is not the appliance, whatever else is installed there); and
    ``plantd.target`` is active, or starting. A stopped target means somebody stopped the
    stack: reloading it would start what they stopped, so it is not systemd's to apply (and
    ``plant up --config /etc/plantd``, if that is what runs, gets the change instead).
    """
    if not booted.exists() or config.source_dir is None:
        return False
    if not _same_directory(config.source_dir, DEFAULT_CONFIG_DIR):
        return False
    return _state(run, TARGET) in _TARGET_UP


def _same_directory(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def apply_systemd(
    config: PlantdConfig,
    plan: Plan,
    new_snapshot: Snapshot,
    *,
    run: Runner = subprocess.run,
    seen: Snapshot | None = None,
    generator_dir: Path = GENERATOR_DIR,
) -> list[str]:
    """Apply ``plan`` with systemctl and save ``new_snapshot`` (the files applied: a refused
    file keeps its old entry, or none) as the applied one. ``seen`` is the snapshot ``plant
    reload`` took before it checked the files (default: taken now): if the files differ from
    it once this is done, the path unit is asked to run again. Returns one line per thing
    done; a line for a command that failed starts with ``failed:``."""
    config_dir = config.source_dir or DEFAULT_CONFIG_DIR
    if seen is None:
        seen = snapshot(config_dir)
    systemctl = _Systemctl(run)
    drop_in = generator_dir / HOST_DROP_IN
    before = _read(drop_in)
    systemctl("daemon-reload", note="the generator's links and access drop-ins")
    # A module that moved between the host and a process of its own is removed from one and
    # added to the other: the old one stops before the new one starts (they answer to the
    # same service name).
    for name in plan.removed.get("module", []):
        systemctl("stop", _module(name))
    if plan.touches("host"):
        _apply_host(systemctl, bool(new_snapshot.of("host")), _read(drop_in) != before)
    added = new_snapshot.of("module")
    for name in plan.added.get("module", []):
        _start(systemctl, _module(name), added[name].path, "restart")
    for name in plan.changed.get("module", []):
        systemctl("restart", _module(name))
    for name in plan.removed.get("sink", []):
        systemctl("stop", _sink(name))
    sinks = new_snapshot.of("sink")
    for name in plan.added.get("sink", []):
        _start(systemctl, _sink(name), sinks[name].path, "reload-or-restart")
    for name in plan.changed.get("sink", []):
        systemctl("reload-or-restart", _sink(name))
    run_dir = config.paths.run
    new_snapshot.save(run_dir / APPLIED_FILE)
    if _digests(snapshot(config_dir)) != _digests(seen):
        (run_dir / AGAIN_FILE).touch()
        systemctl.lines.append("files changed while this ran: applying them next")
    return systemctl.lines


def _apply_host(systemctl: _Systemctl, hosted: bool, new_sandbox: bool) -> None:
    state = _state(systemctl.run, HOST_UNIT)
    if not hosted:
        if state != "inactive":
            systemctl("stop", HOST_UNIT, note="no module left in it")
    elif state in _RUNNING and new_sandbox:
        systemctl("restart", HOST_UNIT, note="new devices or addresses: every hosted module")
    elif state in _RUNNING:
        systemctl("reload", HOST_UNIT, note="only the modules whose files changed")
    elif state == "activating":
        systemctl("restart", HOST_UNIT, note="it was starting with the files as they were")
    else:
        systemctl("start", HOST_UNIT)


def _start(systemctl: _Systemctl, unit: str, path: Path, renew: str) -> None:
    """Start the unit of a file that is new to the applied snapshot. It may run already: after
    a boot there is no applied snapshot yet (it lives in /run), so every file is new to the
    first ``plant reload``. Then it runs with the file as it was when it started: if the file
    is not older than that, ``renew`` (restart, or reload a sink) applies it; if it is, the
    unit is left alone."""
    if _state(systemctl.run, unit) not in _RUNNING:
        systemctl("start", unit)
        return
    started = _started_at(systemctl.run, unit)
    try:
        written = path.stat().st_mtime
    except OSError:
        written = None
    if started is None or written is None or written >= started:
        systemctl(renew, unit, note="it ran with an older file")
    else:
        systemctl.lines.append(f"{unit}: already running with this file")


class _Systemctl:
    """Runs systemctl commands and keeps a line for each."""

    def __init__(self, run: Runner) -> None:
        self.run = run
        self.lines: list[str] = []

    def __call__(self, verb: str, unit: str | None = None, *, note: str = "") -> bool:
        argv = ["systemctl", verb] + ([unit] if unit else [])
        done = f"systemctl {verb}" + (f" {unit}" if unit else "")
        try:
            result = self.run(argv, capture_output=True, text=True, check=False)
            status, error = result.returncode, (result.stderr or "").strip()
        except OSError as exc:  # no systemctl at all
            status, error = 127, str(exc)
        if status == 0:
            self.lines.append(done + (f" ({note})" if note else ""))
            return True
        hint = f"; see `systemctl status {unit}`" if unit else ""
        reason = f": {error.splitlines()[-1]}" if error else ""
        self.lines.append(f"failed: {done}: exit status {status}{reason}{hint}")
        return False


def _state(run: Runner, unit: str) -> str:
    """``systemctl is-active UNIT``'s word (``active``, ``inactive``, ``failed``, …)."""
    try:
        result = run(["systemctl", "is-active", unit], capture_output=True, text=True, check=False)
    except OSError:
        return "unknown"
    return (result.stdout or "").strip() or "unknown"


def _started_at(run: Runner, unit: str) -> float | None:
    """When the unit's main process started (seconds since the epoch; ``--timestamp=unix``
    prints ``@SECONDS``), or None if systemctl cannot say."""
    argv = ["systemctl", "show", "--property=ExecMainStartTimestamp", "--timestamp=unix"]
    try:
        result = run([*argv, "--value", unit], capture_output=True, text=True, check=False)
        return float((result.stdout or "").strip().lstrip("@"))
    except (OSError, ValueError):
        return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _digests(taken: Snapshot) -> dict[tuple[str, str], str]:
    return {key: entry.digest for key, entry in taken.entries.items()}


def _module(name: str) -> str:
    return f"plantd-module@{name}.service"


def _sink(name: str) -> str:
    return f"plantd-sink@{name}.service"
