"""Finding drivers: every driver, built in or not, comes through the ``plantd.drivers``
entry-point group; the core imports a driver's package only when a module file names it."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import cast

from plantd.errors import ConfigError
from plantd.module._driver import DriverClass

__all__ = ["ENTRY_POINT_GROUP", "available_drivers", "load_driver"]

ENTRY_POINT_GROUP = "plantd.drivers"
"""The entry-point group a driver class is registered under (name: the module file's
``driver:``)."""


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_drivers() -> list[str]:
    """The names of every installed driver, sorted (none is imported)."""
    return sorted(_entry_points())


def load_driver(name: str, *, source: str = "") -> DriverClass:
    """The driver class registered as ``name``; ConfigError if there is none or it is broken."""
    where = f"{source}: " if source else ""
    found = _entry_points().get(name)
    if found is None:
        known = ", ".join(available_drivers()) or "none installed"
        raise ConfigError(
            [
                f"{where}driver: no driver named {name!r} (installed: {known}); a driver's extra "
                f"may be missing, e.g. pip install 'plantd[{name}]'"
            ]
        )
    try:
        loaded = found.load()
    except ImportError as exc:
        raise ConfigError(
            [
                f"{where}driver: the {name!r} driver cannot be loaded: {exc} "
                f"(is its extra installed? pip install 'plantd[{name}]')"
            ]
        ) from exc
    if not hasattr(loaded, "config_type"):
        raise ConfigError([f"{where}driver: {found.value} is not a plantd driver (no config_type)"])
    return cast(DriverClass, loaded)
