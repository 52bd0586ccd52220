"""Module files, ``modules.d/NAME.yaml``: one per module instance (a driver and its device).

For now only what every module file shares is checked: it is a YAML mapping with a ``driver``
key naming the driver. The full module schema (connection, points, polling, sinks) comes later
and is read with the same ``parse_dataclass``; :class:`ModuleHeader` then stays the part that
is read before the driver is known.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from plantd.config._markers import Check
from plantd.config._schema import parse_dataclass
from plantd.config._yaml import read_yaml
from plantd.errors import ConfigError

__all__ = [
    "MODULES_DIR",
    "RESERVED_MODULE_NAMES",
    "ModuleHeader",
    "check_module_file",
    "check_modules_dir",
    "reserved_by",
]

MODULES_DIR = "modules.d"

# The name becomes the MDP service org.plantd.module.NAME, the unit plantd-module@NAME and the
# bus topic prefix data.NAME., so it may not hold dots (they separate topic levels) or spaces.
_MODULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*", re.ASCII)
# Taken by the diagnostic Echo service (org.plantd.module.Echo), whose operations are reads,
# and by plantd-control's calculated points, published on data.calc.*.
RESERVED_MODULE_NAMES = frozenset({"Echo", "calc"})


def reserved_by(name: str) -> str:
    """What has taken the reserved module name ``name``."""
    return "plantd's Echo service" if name == "Echo" else "plantd-control's calculated points"


def _driver_problem(driver: str) -> str | None:
    if driver and driver == driver.strip():
        return None
    return f"expected the name of a driver, like 'modbus', got {driver!r}"


@dataclass(frozen=True, slots=True)
class ModuleHeader:
    """The keys every module file has, whatever its driver."""

    driver: Annotated[str, Check(_driver_problem)]


def check_module_file(path: Path) -> list[str]:
    """Every problem with one module file (an empty list if it is fine)."""
    problems: list[str] = []
    if not _MODULE_NAME.fullmatch(path.stem):
        problems.append(
            f"{path}: module name {path.stem!r} (the file name) may hold only letters, digits, "
            "'-' and '_' (it names the module's service and its bus topics)"
        )
    elif path.stem in RESERVED_MODULE_NAMES:
        problems.append(
            f"{path}: module name {path.stem!r} is taken by {reserved_by(path.stem)}; "
            "rename the file"
        )
    try:
        document = read_yaml(path)
        problems.extend(document.problems)
        parse_dataclass(
            ModuleHeader,
            document.data,
            source=str(path),
            lines=document.lines,
            unknown_keys="ignore",
        )
    except ConfigError as exc:
        problems.extend(exc.problems)
    return problems


def check_modules_dir(config_dir: Path) -> tuple[list[Path], list[str]]:
    """The module files under ``config_dir`` and every problem with them.

    A ``.yml`` file there is a problem: it would be ignored, and its module never started.
    Hidden files (editor backups and locks such as ``.#pump.yaml``) are not module files.
    """
    directory = config_dir / MODULES_DIR
    if not directory.is_dir():
        return [], []
    files = _visible(directory.glob("*.yaml"))
    problems = [
        f"{stray}: ignored: module files must end in .yaml"
        for stray in _visible(directory.glob("*.yml"))
    ]
    for file in files:
        problems.extend(check_module_file(file))
    return files, problems


def _visible(paths: Iterable[Path]) -> list[Path]:
    return sorted(path for path in paths if not path.name.startswith("."))
