"""The door between the module runtime and a driver — the same for built-in and third-party ones.

A driver is a class registered under the entry-point group ``plantd.drivers``::

    [project.entry-points."plantd.drivers"]
    modbus = "plantd_drivers.modbus:ModbusDriver"

The runtime reads the module file into the driver's ``config_type`` (a :class:`ModuleConfig`
subclass), constructs the driver with it, and then, for the module's whole life:

    await driver.open()                     # connect; may raise DeviceUnavailable
    await driver.read(group)                # → {point name: Reading}, once per group interval
    await driver.write(point, value)        # → the value as written (after any read-back)
    driver.status()                         # → the driver's own figures, JSON-ready
    await driver.close()                    # idempotent; also after a failed open()

Errors say who is at fault, and the runtime acts on them:

- :class:`~plantd.errors.DeviceUnavailable` from ``open``/``read``/``write``: the connection is
  gone or unusable. The runtime marks the module's points ``bad``, closes, and reconnects with
  capped, jittered backoff, for ever.
- :class:`~plantd.errors.DeviceFault`: the device answered and refused (an exception code). The
  connection stays; a ``read`` fault marks that group's points ``bad``.
- ``ValueError`` from ``write``: the value does not fit the point (type, range, encoding).
- Per-point problems go in the ``Reading`` (``quality=BAD``, ``error=…``) instead of raising, so
  one bad register does not spoil its group. Points missing from ``read``'s answer are ``bad``.
- Anything else is a driver bug: logged once, the group's points marked ``bad``, and polling
  goes on.

Drivers never import plantd internals beyond this module, ``plantd.bus`` (for ``Quality``),
``plantd.config`` (markers) and ``plantd.errors``; the core never imports a hardware library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from plantd.bus import Quality, SampleValue
from plantd.module._config import GroupConfig, ModuleConfig, PointConfig

__all__ = ["Driver", "DriverClass", "Reading"]


@dataclass(frozen=True, slots=True)
class Reading:
    """What a driver read for one point.

    ``timestamp`` is the device's source timestamp when it has one (OPC UA), else None and the
    runtime stamps the moment the read completed.
    """

    value: SampleValue
    quality: Quality = Quality.GOOD
    timestamp: float | None = None
    error: str | None = None

    @classmethod
    def bad(cls, error: str) -> Reading:
        return cls(None, Quality.BAD, None, error)


@runtime_checkable
class Driver(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def read(self, group: Any) -> Mapping[str, Reading]: ...

    async def write(self, point: Any, value: Any) -> SampleValue: ...

    def status(self) -> dict[str, Any]: ...


class DriverClass(Protocol):
    """What the entry point names: a class with ``config_type``, constructed from a config."""

    config_type: ClassVar[type[ModuleConfig]]

    def __call__(self, config: Any) -> Driver: ...


# Re-exported for driver authors: the base classes their config dataclasses extend.
_BASES = (GroupConfig, ModuleConfig, PointConfig)
