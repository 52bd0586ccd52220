"""Modules: one driver, its points and connection, run as a bus source and an MDP sink.

For driver authors: subclass :class:`ModuleConfig`, :class:`GroupConfig`, :class:`PointConfig`,
implement the :class:`Driver` protocol, and register the class under the ``plantd.drivers``
entry-point group. Check it with :func:`plantd.testing.check_driver`.
"""

from __future__ import annotations

from plantd.module._config import (
    GroupConfig,
    ModuleConfig,
    PointConfig,
    PointDefaults,
    parse_module_file,
    read_driver_name,
)
from plantd.module._driver import Driver, DriverClass, DriverOperation, PushDriver, Reading, pushes
from plantd.module._registry import ENTRY_POINT_GROUP, available_drivers, load_driver

__all__ = [
    "ENTRY_POINT_GROUP",
    "Driver",
    "DriverClass",
    "DriverOperation",
    "GroupConfig",
    "ModuleConfig",
    "PointConfig",
    "PointDefaults",
    "PushDriver",
    "Reading",
    "available_drivers",
    "load_driver",
    "parse_module_file",
    "pushes",
    "read_driver_name",
]
