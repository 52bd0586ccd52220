"""The driver's public surface and how plantd finds it."""

from __future__ import annotations

import subprocess
import sys

import plantd_drivers.modbus
from plantd_drivers.modbus import ModbusDriver, ModbusModule

from plantd.module import load_driver


def test_public_surface() -> None:
    assert set(plantd_drivers.modbus.__all__) == {
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
    }
    for name in plantd_drivers.modbus.__all__:
        assert getattr(plantd_drivers.modbus, name) is not None


def test_registered_through_the_entry_point() -> None:
    driver = load_driver("modbus")
    assert driver is ModbusDriver
    assert driver.config_type is ModbusModule


def test_plant_starts_without_importing_pymodbus() -> None:
    code = (
        "import sys, plantd.cli; plantd.cli.build_parser(); "
        "print('pymodbus' in sys.modules, 'plantd_drivers.modbus._cli' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
