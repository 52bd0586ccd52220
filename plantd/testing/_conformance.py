"""The driver conformance check: what every driver's tests call.

``await check_driver(driver, module)`` drives a driver through the contract of
:mod:`plantd.module._driver` against a device (real or simulated) and raises
``AssertionError`` naming the first broken rule:

  D1  ``close()`` before ``open()`` is harmless; so is closing twice.
  D2  after ``open()``, ``read(group)`` answers a mapping from (a subset of) the group's point
      names to :class:`Reading` objects, for every group.
  D3  a ``bad`` reading carries no value and says why (``error``); a good one has no error.
  D4  ``status()`` is JSON-serialisable, before and after reads.
  D5  writing a point not declared writable is refused (``ValueError`` or ``DeviceFault``),
      never silently done.
  D6  after ``close()``, ``read`` raises ``DeviceUnavailable`` — not some other exception.
  D7  ``open()`` works again after ``close()`` (reconnection is just that).
  D8  a push driver's ``stream(group)`` delivers, within ``stream_timeout``, a mapping that
      follows D2/D3 for every group it pushes, and closes cleanly when the consumer stops.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from plantd.bus import Quality
from plantd.errors import DeviceFault, DeviceUnavailable
from plantd.module import Driver, ModuleConfig, Reading, pushes

__all__ = ["check_driver"]


def _checked(group: Any, readings: Any, where: str) -> dict[str, Reading]:
    """D2 and D3 for one answer of a driver."""
    names = {point.name for point in group.points}
    assert hasattr(readings, "items"), f"D2: {where} returned {type(readings)}"
    for name, reading in readings.items():
        assert name in names, f"D2: {where} answered unknown point {name!r}"
        assert isinstance(reading, Reading), f"D2: {name}: {reading!r} is not a Reading"
        if reading.quality is Quality.BAD:
            assert reading.value is None, f"D3: bad reading of {name} carries a value"
            assert reading.error, f"D3: bad reading of {name} does not say why"
        else:
            assert reading.error is None, f"D3: good reading of {name} has an error"
    return dict(readings)


async def check_driver(
    driver: Driver, module: ModuleConfig, *, stream_timeout: float = 10.0
) -> dict[str, Any]:
    """Run the checks; returns the readings of the first pass, for further assertions."""
    await driver.close()
    await driver.close()  # D1
    await driver.open()
    first: dict[str, Any] = {}
    for group in module.groups:
        first.update(_checked(group, await driver.read(group), f"read({group.name})"))  # D2
        if pushes(driver, group):  # D8
            stream = driver.stream(group)  # type: ignore[attr-defined]
            try:
                async with asyncio.timeout(stream_timeout):
                    delivered = await anext(stream)
            except TimeoutError:
                raise AssertionError(
                    f"D8: stream({group.name}) delivered nothing in {stream_timeout:g} s"
                ) from None
            finally:
                await stream.aclose()
            _checked(group, delivered, f"stream({group.name})")
    json.dumps(driver.status())  # D4
    read_only = next((p for _, p in module.points() if not p.writable), None)
    if read_only is not None:
        try:
            await driver.write(read_only, 0)
        except (ValueError, DeviceFault):
            pass
        else:
            raise AssertionError(f"D5: write to read-only point {read_only.name!r} succeeded")
    await driver.close()
    if module.groups:
        try:
            await driver.read(module.groups[0])
        except DeviceUnavailable:
            pass
        else:
            raise AssertionError("D6: read after close() did not raise DeviceUnavailable")
    await driver.open()  # D7
    if module.groups:
        await driver.read(module.groups[0])
    json.dumps(driver.status())
    await driver.close()
    return first
