"""Modules: one driver, its points and connection, run as a bus source and an MDP sink.

For driver authors: subclass :class:`ModuleConfig`, :class:`GroupConfig`, :class:`PointConfig`,
implement the :class:`Driver` protocol, and register the class under the ``plantd.drivers``
entry-point group. Check it with :func:`plantd.testing.check_driver`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from plantd.module._host import HostedModule, ModuleHost
    from plantd.module._main import is_isolated, load_host, module_files

__all__ = [
    "ENTRY_POINT_GROUP",
    "Driver",
    "DriverClass",
    "DriverOperation",
    "GroupConfig",
    "HostedModule",
    "ModuleConfig",
    "ModuleHost",
    "PointConfig",
    "PointDefaults",
    "PushDriver",
    "Reading",
    "available_drivers",
    "is_isolated",
    "load_driver",
    "load_host",
    "module_files",
    "parse_module_file",
    "pushes",
    "read_driver_name",
]


def __getattr__(name: str) -> Any:
    # The runtime, the MDP worker and the state client come with these: only when wanted.
    if name in ("HostedModule", "ModuleHost"):
        from plantd.module import _host

        return getattr(_host, name)
    if name in ("is_isolated", "load_host", "module_files"):
        from plantd.module import _main

        return getattr(_main, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
