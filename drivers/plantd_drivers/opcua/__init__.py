"""OPC UA driver (``driver: opcua``, extra ``plantd[opcua]``, asyncua).

Points by NodeId or browse path, data-change subscriptions (default) or polling per group,
status codes as sample quality with source timestamps, session supervision by the module
runtime, writes with the node's data type, methods as module operations, Basic256Sha256
security with a trust list, and ``plant opcua browse``. See ``docs/drivers/opcua.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plantd_drivers.opcua._config import (
    OpcuaConnection,
    OpcuaGroup,
    OpcuaMethod,
    OpcuaModule,
    OpcuaPoint,
    OpcuaSecurity,
)

if TYPE_CHECKING:
    from plantd_drivers.opcua._driver import OpcuaDriver
    from plantd_drivers.opcua._security import ClientNotTrusted, ServerNotTrusted

__all__ = [
    "ClientNotTrusted",
    "OpcuaConnection",
    "OpcuaDriver",
    "OpcuaGroup",
    "OpcuaMethod",
    "OpcuaModule",
    "OpcuaPoint",
    "OpcuaSecurity",
    "ServerNotTrusted",
]


def __getattr__(name: str) -> Any:
    # asyncua (heavy: about 1 s and 25 MB) is imported only when the driver itself is wanted,
    # so that `plant` (which loads this package for `plant opcua`) starts without it.
    if name == "OpcuaDriver":
        from plantd_drivers.opcua._driver import OpcuaDriver

        return OpcuaDriver
    if name in ("ClientNotTrusted", "ServerNotTrusted"):
        from plantd_drivers.opcua import _security

        return getattr(_security, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
