"""The OPC UA package is light until its driver is wanted: ``plant`` must start fast and small
on a Raspberry Pi, and asyncua costs about a second and 25 MB."""

from __future__ import annotations

import subprocess
import sys

from plantd.module import load_driver


def test_plant_starts_without_importing_asyncua() -> None:
    code = (
        "import sys, plantd.cli; plantd.cli.build_parser(); "
        "print('asyncua' in sys.modules, 'plantd_drivers.opcua._cli' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_the_driver_still_loads_through_the_entry_point() -> None:
    driver = load_driver("opcua")
    assert driver.__name__ == "OpcuaDriver"
