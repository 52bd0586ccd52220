"""What a re-read configuration changes, for a process that takes part of it live (SIGHUP).

One rule for every such process (the broker, the historian): compare a section field by field,
put each changed field either in ``live`` (applied: the process reads it per message, per
batch, per pass) or among the changes that need a restart, and say each in one line for the
log. The process decides which fields are live; docs/reload.md lists them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["ConfigChanges", "section_changes", "sections_changed"]


@dataclasses.dataclass
class ConfigChanges:
    """``live``: the new values to run with, by field; ``applied`` and ``restart``: a line per
    changed field (``broker.max_frames: 64 -> 128``), taken or not."""

    live: dict[str, Any] = dataclasses.field(default_factory=dict)
    applied: list[str] = dataclasses.field(default_factory=list)
    restart: list[str] = dataclasses.field(default_factory=list)


def section_changes(
    name: str, running: Any, read: Any, is_live: Callable[[str], bool], *, values: bool = True
) -> ConfigChanges:
    """The fields of section ``name`` (a dataclass) that differ between ``running`` and
    ``read``. ``values=False`` leaves the values out of the lines (a section that may hold
    secrets, or whose values are long)."""
    changes = ConfigChanges()
    for field in dataclasses.fields(running):
        old, new = getattr(running, field.name), getattr(read, field.name)
        if old == new:
            continue
        line = f"{name}.{field.name}: " + (f"{old!r} -> {new!r}" if values else "changed")
        if is_live(field.name):
            changes.live[field.name] = new
            changes.applied.append(line)
        else:
            changes.restart.append(line)
    return changes


def sections_changed(running: Any, read: Any, sections: Iterable[str]) -> list[str]:
    """``SECTION: changed`` for each of ``sections`` that differs (all need a restart)."""
    return [
        f"{section}: changed"
        for section in sections
        if getattr(running, section) != getattr(read, section)
    ]
