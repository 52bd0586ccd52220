"""OPC UA driver (``driver: opcua``, extra ``plantd[opcua]``, asyncua).

Points by NodeId or browse path, data-change subscriptions (default) or polling per group,
status codes as sample quality with source timestamps, session supervision by the module
runtime, writes with the node's data type, methods as module operations, Basic256Sha256
security with a trust list, and ``plant opcua browse``. See ``docs/drivers/opcua.md``.
"""

from __future__ import annotations

from plantd_drivers.opcua._config import (
    OpcuaConnection,
    OpcuaGroup,
    OpcuaMethod,
    OpcuaModule,
    OpcuaPoint,
    OpcuaSecurity,
)
from plantd_drivers.opcua._driver import OpcuaDriver
from plantd_drivers.opcua._security import ServerNotTrusted

__all__ = [
    "OpcuaConnection",
    "OpcuaDriver",
    "OpcuaGroup",
    "OpcuaMethod",
    "OpcuaModule",
    "OpcuaPoint",
    "OpcuaSecurity",
    "ServerNotTrusted",
]
