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

Push sources. A device that sends data by itself (OPC UA subscriptions, a serial instrument
that streams lines, GPIO edge events) is not polled. Its driver also implements
:class:`PushDriver`::

    driver.pushes(group)                    # → True: this group is pushed, not polled
    async for readings in driver.stream(group):   # → {point name: Reading}, as data arrives
        ...

For each group where ``pushes(group)`` is true the runtime runs a *stream task* instead of a
poll task: once ``open()`` succeeded it iterates ``stream(group)`` and records every mapping it
yields — only the points named in it (a change notification names what changed; points it
leaves out keep their last value). Rules for ``stream``:

- It should begin with the current value of every point it can (OPC UA subscriptions do), so
  that after a reconnect every point is good again without waiting for its next change.
- It yields mappings as they arrive; batching what arrived together into one mapping is
  cheaper than one mapping per point. It never has to return.
- The driver detects a dead source itself (a keep-alive, a port that vanished) and raises
  :class:`~plantd.errors.DeviceUnavailable` from the iterator: the runtime marks the group
  ``bad``, closes and reconnects with backoff, then calls ``stream(group)`` again on the new
  connection. Ending the iteration is treated the same way (the source went away).
- :class:`~plantd.errors.DeviceFault` or any other exception marks the group ``bad``; the
  runtime calls ``stream(group)`` again after ``group.interval`` (at least 1 s), connected.
- When the connection is lost elsewhere or the module stops, the runtime stops iterating
  (the task is cancelled and the iterator's ``aclose()`` is awaited); ``close()`` may run while a
  stream is open, and the stream must then end or raise, not hang.

``read(group)`` stays mandatory for pushed groups: a ``read`` with ``fresh: true`` and the
read-back after a ``write`` use it, and so does the conformance check.

Operations. A driver may offer operations of its own (OPC UA method calls) through an
optional ``operations()`` answering ``{name: DriverOperation}``; the module's service exposes
each beside ``points``/``read``/``write``/``status`` (see :mod:`plantd.module._commands`).

Request timing. A driver that talks to its device request by request may offer an optional
``observe_requests(observe)``: the runtime calls it once, before ``open()``, with a callable the
driver then calls with the seconds of each device request (``plantd_module_request_seconds``).
Call it once per request, never per point: it is on the hot path.

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

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable

from plantd.bus import Quality, SampleValue
from plantd.module._config import GroupConfig, ModuleConfig, PointConfig

__all__ = ["Driver", "DriverClass", "DriverOperation", "PushDriver", "Reading", "pushes"]


class Reading(NamedTuple):
    """What a driver read for one point.

    ``timestamp`` is the device's source timestamp when it has one (OPC UA), else None and the
    runtime stamps the moment the read completed. A named tuple rather than a dataclass: a
    driver makes one per point per poll, and a tuple is the cheapest record Python builds.
    """

    value: SampleValue
    quality: Quality = Quality.GOOD
    timestamp: float | None = None
    error: str | None = None

    @classmethod
    def bad(cls, error: str) -> Reading:
        """A reading that failed: no value, quality BAD, and why."""
        return cls(None, Quality.BAD, None, error)


@runtime_checkable
class Driver(Protocol):
    """What the runtime asks of a driver: open, read, write, status, close (see the module
    docstring for the whole contract and what each error means)."""

    async def open(self) -> None:
        """Connect to the device; DeviceUnavailable if it cannot be reached."""
        ...

    async def close(self) -> None:
        """Disconnect; idempotent, and called after a failed :meth:`open` too."""
        ...

    async def read(self, group: Any) -> Mapping[str, Reading]:
        """Read every point of ``group`` (the driver's own group type): ``{name: Reading}``;
        a point left out is bad."""
        ...

    async def write(self, point: Any, value: Any) -> SampleValue:
        """Write ``value`` to ``point``; answers the value as written. ValueError if it does
        not fit the point, DeviceFault if the device refuses."""
        ...

    def status(self) -> dict[str, Any]:
        """The driver's own figures and states, JSON-ready (part of the module's status)."""
        ...


@runtime_checkable
class PushDriver(Driver, Protocol):
    """A driver whose device sends data by itself, for some or all of its groups."""

    def pushes(self, group: Any) -> bool:
        """True if ``group`` is delivered by :meth:`stream` instead of being polled."""
        ...

    def stream(self, group: Any) -> AsyncIterator[Mapping[str, Reading]]:
        """Readings of ``group`` as the device sends them (see the module docstring)."""
        ...


def pushes(driver: Driver, group: GroupConfig) -> bool:
    """Whether the runtime should consume ``group`` as a stream rather than poll it."""
    return isinstance(driver, PushDriver) and driver.pushes(group)


@dataclass(frozen=True, slots=True)
class DriverOperation:
    """An operation a driver adds to its module's service: ``call(params)`` answers JSON data.

    ``call`` raises ``ValueError`` for params that do not fit (``module.bad-value``),
    ``DeviceFault`` when the device refuses, ``DeviceUnavailable`` when it is unreachable.
    """

    doc: str
    call: Callable[[dict[str, Any]], Awaitable[Any]]


class DriverClass(Protocol):
    """What the entry point names: a class with ``config_type``, constructed from a config."""

    config_type: ClassVar[type[ModuleConfig]]
    """The :class:`ModuleConfig` subclass a module file is read into for this driver."""

    def __call__(self, config: Any) -> Driver:
        """A driver for the module ``config`` (of :attr:`config_type`), not yet open."""
        ...


# Re-exported for driver authors: the base classes their config dataclasses extend.
_BASES = (GroupConfig, ModuleConfig, PointConfig)
