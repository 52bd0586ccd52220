"""Choosing the GPIO chip by ``connection.backend``: back ends come through the
``plantd.gpio_chips`` entry-point group, the built-in ones (``cdev``, and the rig's
``simulated``) like a third party's; a name nobody registered is refused with the known ones."""

from __future__ import annotations

from importlib.metadata import EntryPoint, EntryPoints

import pytest
from plantd_drivers.gpio import GpioDriver, _backends
from plantd_drivers.gpio._backends import (
    CHIP_ENTRY_POINT_GROUP,
    chip_backends,
    load_chip_backend,
)
from plantd_drivers.gpio._periphery import CdevChip

from hil.gpio import SimulatedChip
from plantd.errors import ConfigError
from tests.drivers.gpio.conftest import MODULE, ModuleMaker

# A back end of our own, as a third party's package would register it.
CHOSEN: list[str] = []


def counting_chip(path: str) -> SimulatedChip:
    CHOSEN.append(path)
    return SimulatedChip()


def with_backend(name: str) -> str:
    return MODULE.replace("connection: {chip: /dev/gpiochip-test}", f"connection: {{{name}}}")


def test_the_built_in_back_ends_are_registered() -> None:
    assert {"cdev", "simulated"} <= set(chip_backends())
    assert load_chip_backend("cdev") is CdevChip


async def test_backend_simulated_opens_the_rigs_chip_on_the_real_clock(
    make_module: ModuleMaker,
) -> None:
    driver = GpioDriver(make_module(with_backend("backend: simulated")))
    await driver.open()
    try:
        assert isinstance(driver.chip, SimulatedChip)
        assert driver.chip.realtime
        assert driver.status()["backend"] == "simulated"
        assert (await driver.read(driver.config.groups[1]))["alarm"].value is True  # safe state
    finally:
        await driver.close()


def test_the_default_back_end_is_the_character_device(make_module: ModuleMaker) -> None:
    assert make_module().connection.backend == "cdev"


def test_an_unknown_back_end_is_refused_with_the_known_ones(make_module: ModuleMaker) -> None:
    with pytest.raises(ConfigError) as refused:
        make_module(with_backend("backend: sysfs"))
    message = str(refused.value)
    assert "connection.backend" in message
    assert "no GPIO back end named 'sysfs'" in message
    assert "cdev, simulated" in message
    with pytest.raises(ConfigError, match=r"no GPIO back end named 'sysfs' \(installed: cdev"):
        load_chip_backend("sysfs")


async def test_a_third_party_back_end_needs_no_edit_to_the_driver(
    make_module: ModuleMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = _backends.entry_points(group=CHIP_ENTRY_POINT_GROUP)
    ours = EntryPoint("ours", f"{__name__}:counting_chip", CHIP_ENTRY_POINT_GROUP)

    def entry_points(*, group: str) -> EntryPoints:
        assert group == CHIP_ENTRY_POINT_GROUP
        return EntryPoints([*installed, ours])

    monkeypatch.setattr(_backends, "entry_points", entry_points)
    CHOSEN.clear()
    module = make_module(with_backend("backend: ours, chip: /dev/gpiochip7"))
    driver = GpioDriver(module)
    await driver.open()
    try:
        assert CHOSEN == ["/dev/gpiochip7"]
        assert isinstance(driver.chip, SimulatedChip)
    finally:
        await driver.close()


def test_a_back_end_that_cannot_load_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = EntryPoint("broken", "plantd_no_such_package:chip", CHIP_ENTRY_POINT_GROUP)
    monkeypatch.setattr(_backends, "entry_points", lambda *, group: EntryPoints([broken]))
    with pytest.raises(ConfigError, match=r"GPIO back end 'broken' .* cannot load"):
        load_chip_backend("broken")
