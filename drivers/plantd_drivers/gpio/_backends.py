"""Choosing the chip: GPIO back ends come through the ``plantd.gpio_chips`` entry-point group.

A module file's ``connection.backend`` names a back end; its entry point is a
:class:`ChipFactory`, called with ``connection.chip`` (the chip's path, which a back end
without a device ignores) to make the driver's :class:`~plantd_drivers.gpio.Chip`::

    [project.entry-points."plantd.gpio_chips"]
    cdev = "plantd_drivers.gpio._periphery:CdevChip"    # the kernel's character device
    simulated = "hil.gpio:realtime_chip"                # the test rig's in-process chip

The driver imports only what the module file names, so the simulator (``hil``) stays a
plug-in of the driver, not a dependency of it.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Protocol, cast

from plantd.errors import ConfigError
from plantd_drivers.gpio._chip import Chip

__all__ = [
    "CHIP_ENTRY_POINT_GROUP",
    "ChipFactory",
    "chip_backends",
    "load_chip_backend",
    "unknown_backend",
]

CHIP_ENTRY_POINT_GROUP = "plantd.gpio_chips"


class ChipFactory(Protocol):
    """What a back end's entry point names: ``factory(path) -> Chip``."""

    def __call__(self, path: str, /) -> Chip: ...


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=CHIP_ENTRY_POINT_GROUP)}


def chip_backends() -> list[str]:
    """The names of the installed back ends, sorted."""
    return sorted(_entry_points())


def unknown_backend(name: str) -> str:
    """What is wrong with ``backend: name`` when no back end has that name."""
    known = ", ".join(chip_backends()) or "none installed"
    return f"no GPIO back end named {name!r} (installed: {known})"


def load_chip_backend(name: str) -> ChipFactory:
    """The factory of the back end ``name``; ConfigError if there is none or it cannot load."""
    found = _entry_points().get(name)
    if found is None:
        raise ConfigError([f"connection.backend: {unknown_backend(name)}"])
    try:
        loaded = found.load()
    except ImportError as exc:
        raise ConfigError(
            [f"connection.backend: the GPIO back end {name!r} ({found.value}) cannot load: {exc}"]
        ) from exc
    return cast(ChipFactory, loaded)
