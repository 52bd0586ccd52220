"""Module files (``modules.d/NAME.yaml``): what every driver's module config shares.

A module file names its driver, then describes one connection (a TCP device or gateway, a serial
line, an OPC UA server…) and the points polled over it, in groups that share a poll interval:

    driver: modbus
    description: Energy meter, cabinet 3
    connection: {…}              # the driver's own keys
    defaults:                    # for every point unless it says otherwise
      deadband: 0.1
      max_silence: 60s
    groups:
      - name: fast
        interval: 100ms
        points:
          - name: voltage_l1     # published on data.<module>.voltage_l1
            …                    # the driver's own keys (address, type, byte order…)

Each driver subclasses :class:`ModuleConfig`, :class:`GroupConfig`, :class:`PointConfig` (and
declares its connection dataclass), narrowing ``connection``, ``groups`` and ``points`` to its
own types, so one ``parse_dataclass`` reads the whole file and every unknown or wrong key is
named with its line. These are keyword-only dataclasses so subclasses can add required fields.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

from plantd.config import (
    INTERNAL,
    RESERVED_MODULE_NAMES,
    Check,
    Duration,
    Ge,
    Gt,
    KeyPath,
    ModuleHeader,
    parse_dataclass,
    read_yaml,
    reserved_by,
)
from plantd.errors import ConfigError

__all__ = [
    "GroupConfig",
    "ModuleConfig",
    "PointConfig",
    "PointDefaults",
    "parse_module_file",
    "read_driver_name",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*", re.ASCII)
M = TypeVar("M", bound="ModuleConfig")


def _name_problem(name: str) -> str | None:
    if name in RESERVED_MODULE_NAMES:
        return f"{name!r} is taken by {reserved_by(name)}; rename the file"
    if _NAME.fullmatch(name):
        return None
    return f"expected letters, digits, '-' and '_' (it becomes a bus topic level), got {name!r}"


@dataclass(frozen=True, kw_only=True)
class PointDefaults:
    """Publishing rules a point inherits unless it sets its own."""

    deadband: Annotated[float, Ge(0)] = 0.0
    """Publish a numeric value only when it moved at least this much (absolute)."""
    deadband_percent: Annotated[float, Ge(0)] = 0.0
    """…or at least this percentage of the last published value."""
    max_silence: Annotated[float, Duration, Gt(0)] | None = None
    """Publish anyway when nothing was published for this long (a heartbeat value)."""


@dataclass(frozen=True, kw_only=True)
class PointConfig:
    """One value read from the device. Drivers add their own keys (address, type, …)."""

    name: Annotated[str, Check(_name_problem)]
    description: str = ""
    writable: bool = False
    minimum: float | None = None
    """Writes below this are refused."""
    maximum: float | None = None
    """Writes above this are refused."""
    deadband: Annotated[float, Ge(0)] | None = None
    deadband_percent: Annotated[float, Ge(0)] | None = None
    max_silence: Annotated[float, Duration, Gt(0)] | None = None

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        """Problems no single key shows (a minimum above the maximum), each with the path of
        the key to blame; ``parse_dataclass`` calls this after reading the point."""
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            yield ("minimum",), f"minimum {self.minimum} is above maximum {self.maximum}"

    def check_write(self, value: Any) -> str | None:
        """None if ``value`` may be written to this point, else why not."""
        if not self.writable:
            return f"point {self.name!r} is not writable (set writable: true in its config)"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None  # range checks apply to numbers; the driver checks types
        if isinstance(value, float) and not math.isfinite(value):
            return f"{value} is not a value that can be written to {self.name!r}"
        if self.minimum is not None and value < self.minimum:
            return f"{value} is below the minimum {self.minimum} of {self.name!r}"
        if self.maximum is not None and value > self.maximum:
            return f"{value} is above the maximum {self.maximum} of {self.name!r}"
        return None


@dataclass(frozen=True, kw_only=True)
class GroupConfig:
    """Points polled together, every ``interval`` seconds."""

    name: Annotated[str, Check(_name_problem)]
    interval: Annotated[float, Duration, Gt(0)] = 1.0
    points: tuple[PointConfig, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ModuleConfig:
    """A whole module file. ``name`` comes from the file name, not from its contents."""

    driver: str
    description: str = ""
    defaults: PointDefaults = field(default_factory=PointDefaults)
    groups: tuple[GroupConfig, ...] = ()
    state_interval: Annotated[float, Duration, Gt(0)] = 1.0
    """How often the module's status (and, with ``state_values``, its changed last values) is
    saved to the state service."""
    state_values: bool = False
    """Keep each point's last value in the state service too (``value.<point>`` keys)."""
    isolated: bool = False
    """Run in a process of its own (``plantd-module@NAME``) instead of the module host."""
    name: str = field(default="", metadata=INTERNAL)
    source: Path | None = field(default=None, metadata=INTERNAL)

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        """Problems no single key shows (a group or point name used twice), each with the
        path of the key to blame; ``parse_dataclass`` calls this after reading the file."""
        seen: dict[str, str] = {}
        groups: set[str] = set()
        for g, group in enumerate(self.groups):
            if group.name in groups:
                yield ("groups", g, "name"), f"group name {group.name!r} is used twice"
            groups.add(group.name)
            for p, point in enumerate(group.points):
                if point.name in seen:
                    yield (
                        ("groups", g, "points", p, "name"),
                        f"point name {point.name!r} is already used in group {seen[point.name]!r}",
                    )
                seen.setdefault(point.name, group.name)

    def points(self) -> Iterator[tuple[GroupConfig, PointConfig]]:
        """Every point of the module with its group, in file order."""
        for group in self.groups:
            for point in group.points:
                yield group, point

    def resolve_path(self, text: str) -> str:
        """A device path from this file, as the OS should open it: relative paths are relative
        to the module file's directory (as every path in a module file is); absolute paths
        and URLs (``socket://…``, ``rfc2217://…``) are left as they are."""
        if "://" in text or self.source is None or Path(text).is_absolute():
            return text
        return str(self.source.parent / text)

    def point(self, name: str) -> PointConfig | None:
        """The point called ``name``, or None if the module has none."""
        return next((p for _, p in self.points() if p.name == name), None)


def parse_module_file(path: Path, config_type: type[M]) -> M:
    """Read and validate ``path`` as ``config_type``; raises ConfigError naming every problem."""
    document = read_yaml(path)
    if document.problems:
        raise ConfigError(list(document.problems))
    parsed = parse_dataclass(
        config_type, document.data, source=str(path), lines=document.lines, base_dir=path.parent
    )
    name = path.stem
    problem = _name_problem(name)
    if problem:
        raise ConfigError([f"{path}: module name: {problem}"])
    return _with_identity(parsed, name, path)


def _with_identity(parsed: M, name: str, path: Path) -> M:
    return dataclasses.replace(parsed, name=name, source=path)


def read_driver_name(path: Path) -> str:
    """Only the ``driver`` key of a module file (before the driver's schema is known)."""
    document = read_yaml(path)
    if document.problems:
        raise ConfigError(list(document.problems))
    header = parse_dataclass(
        ModuleHeader, document.data, source=str(path), lines=document.lines, unknown_keys="ignore"
    )
    return header.driver
