"""The Modbus driver: TCP, RTU on a serial line, and RTU over TCP (serial device servers).

Registered as ``modbus`` under the ``plantd.drivers`` entry-point group; needs the ``modbus``
extra (``pip install 'plantd[modbus]'``: an exactly pinned pymodbus, and pyserial). Its
command-line tools, ``plant modbus plan`` and ``plant modbus probe``, come through the
``plantd.cli`` group. User documentation: ``docs/drivers/modbus.md``.

Inside, sans-IO parts and the I/O shell are kept apart:

    _types      data types, byte/word orders, exception codes
    _codec      registers ↔ values, one codec for reads and writes        (sans-IO)
    _planner    points → merged requests; cuts learned from refusals      (sans-IO)
    _breaker    per-unit circuit breaker                                  (sans-IO)
    _config     the module file's schema and cross-key rules
    _transport  the only module that imports pymodbus's client
    _line       one connection: queue, inter-frame silence, retries, reconnects, breakers
    _group      one group: its plan, decoders, and what each answer means
    _driver     the driver door
    _cli        plant modbus plan | probe

The value vocabulary (tables, types, orders, :func:`register_count`) and the rules that give a
point its effective table, type and order are public: the simulators of :mod:`hil` use the
same ones instead of declaring them again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plantd_drivers.modbus._codec import PointCodec
from plantd_drivers.modbus._config import (
    Clamp,
    ModbusConnection,
    ModbusGroup,
    ModbusModule,
    ModbusPoint,
    point_order,
    point_table,
    point_type,
)
from plantd_drivers.modbus._types import (
    BIT_TABLES,
    ORDERS,
    TABLES,
    TYPES,
    Order,
    Table,
    ValueType,
    register_count,
)

if TYPE_CHECKING:
    from plantd_drivers.modbus._driver import ModbusDriver

__all__ = [
    "BIT_TABLES",
    "ORDERS",
    "TABLES",
    "TYPES",
    "Clamp",
    "ModbusConnection",
    "ModbusDriver",
    "ModbusGroup",
    "ModbusModule",
    "ModbusPoint",
    "Order",
    "PointCodec",
    "Table",
    "ValueType",
    "point_order",
    "point_table",
    "point_type",
    "register_count",
]


def __getattr__(name: str) -> Any:
    # pymodbus is imported only when the driver itself is wanted, so that `plant` (which loads
    # this package for its `modbus` commands) starts without it.
    if name == "ModbusDriver":
        from plantd_drivers.modbus._driver import ModbusDriver

        return ModbusDriver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
