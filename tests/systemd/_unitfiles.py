"""Reading plantd's unit files as systemd does, and a root to verify them in.

A unit file is read line by line, not with configparser: a key may repeat (ExecReload=,
PathChanged=, SystemCallFilter=), and configparser would fold the repeats into one."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"


def settings(name: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every line of ``systemd/NAME``, in order."""
    found, section = [], ""
    for raw in (UNITS / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.append((section, key, value))
    return found


def values(name: str, section: str, key: str) -> list[str]:
    """Every value of ``key`` in ``[section]`` of a unit file."""
    return [v for s, k, v in settings(name) if (s, k) == (section, key)]


def one(name: str, section: str, key: str) -> str:
    """The one value of ``key`` in ``[section]`` (it must be there exactly once)."""
    found = values(name, section, key)
    assert len(found) == 1, (name, key, found)
    return found[0]


def appliance_root(root: Path, stubs: Iterable[str]) -> Path:
    """``root`` laid out as on the appliance for ``systemd-analyze --root``: this host's
    units, ours, and an executable stub at each path of ``stubs`` (what the units run)."""
    system = root / "usr/lib/systemd/system"
    host = Path("/usr/lib/systemd/system")
    shutil.copytree(host if host.is_dir() else Path("/lib/systemd/system"), system, symlinks=True)
    for unit in [*UNITS.glob("*.service"), *UNITS.glob("*.target"), *UNITS.glob("*.path")]:
        shutil.copy(unit, system / unit.name)
    for stub in stubs:
        (root / stub).parent.mkdir(parents=True, exist_ok=True)
        (root / stub).write_text("#!/bin/sh\n")
        (root / stub).chmod(0o755)
    return root
