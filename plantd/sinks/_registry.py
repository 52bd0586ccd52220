"""Finding sink kinds: every kind, built in or not, comes through the ``plantd.sinks``
entry-point group; the core imports a kind's package only when a sink file names it."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from plantd.config import did_you_mean
from plantd.errors import ConfigError
from plantd.sinks._kind import SinkKind

__all__ = ["ENTRY_POINT_GROUP", "available_sink_kinds", "load_sink_kind"]

ENTRY_POINT_GROUP = "plantd.sinks"


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_sink_kinds() -> list[str]:
    """The names a sink file's ``type`` may take, sorted."""
    return sorted(_entry_points())


def load_sink_kind(name: str, *, source: str = "") -> SinkKind[Any]:
    """The kind registered as ``name``; ConfigError if there is none or it is broken."""
    where = f"{source}: " if source else ""
    entries = _entry_points()
    found = entries.get(name)
    if found is None:
        known = ", ".join(sorted(entries)) or "none installed"
        raise ConfigError(
            [
                f"{where}type: no sink kind named {name!r} (installed: {known})"
                f"{did_you_mean(name, entries)}"
            ]
        )
    try:
        loaded = found.load()
    except ImportError as exc:
        raise ConfigError([f"{where}type: the {name!r} sink kind cannot be loaded: {exc}"]) from exc
    if not isinstance(loaded, SinkKind):
        raise ConfigError(
            [f"{where}type: {found.value} is not a plantd sink kind (a plantd.sinks.SinkKind)"]
        )
    return loaded
