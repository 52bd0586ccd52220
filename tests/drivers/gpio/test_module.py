"""A GPIO module in the runtime (simulated chip): debounced edges published on the bus,
outputs written through the module's ``write`` operation, safe state on orderly shutdown and
on loss of the controlling service."""

from __future__ import annotations

import pytest
from plantd_drivers.gpio import GpioDriver

from hil.gpio import SimulatedChip
from plantd.bus import Quality
from plantd.errors import ServiceError
from tests.conftest import Stack
from tests.drivers.gpio.conftest import ModuleMaker
from tests.drivers.module_harness import running_module


async def test_a_gpio_module_publishes_edges_and_takes_writes(
    stack: Stack, make_module: ModuleMaker
) -> None:
    chip = SimulatedChip()
    driver = GpioDriver(make_module(), chip=chip)
    async with running_module(stack, driver.config, driver) as running:
        await running.sample("data.panel.door", Quality.GOOD)
        chip.bounce(1, False, edges=9, spacing=0.001)  # the door opens, bouncing
        chip.advance(0.05)
        door = await running.sample("data.panel.door", Quality.GOOD, lambda s: s.value is True)
        assert door.value is True
        assert await running.call("write", {"point": "pump", "value": True}) == {
            "point": "pump",
            "value": True,
        }
        assert chip.output(5) is True
        pump = await running.sample("data.panel.pump", Quality.GOOD, lambda s: s.value is True)
        assert pump.value is True
        with pytest.raises(ServiceError) as refused:
            await running.call("write", {"point": "door", "value": True})
        assert refused.value.code == "module.not-writable"
        # nobody writes the pump again: after hold_timeout it goes to its safe state
        await running.sample("data.panel.pump", Quality.GOOD, lambda s: s.value is False)
        assert chip.output(5) is False
        await running.call("write", {"point": "pump", "value": True})
        assert chip.output(5) is True
    assert chip.output(5) is False  # the module stopped: safe state
    assert chip.requests == {}  # every line released
