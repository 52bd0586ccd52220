"""Every example module file in ``examples/modules.d`` validates with its driver's schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantd.config import check_module_file
from plantd.module import load_driver, parse_module_file, read_driver_name

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "modules.d"
OURS = ["opcua-line.yaml", "gas-analyser.yaml", "gps.yaml", "gpio-panel.yaml"]


@pytest.mark.parametrize("name", OURS)
def test_the_example_validates(name: str) -> None:
    path = EXAMPLES / name
    assert check_module_file(path) == []
    driver = load_driver(read_driver_name(path), source=str(path))
    module = parse_module_file(path, driver.config_type)
    assert module.groups
    driver(module)  # constructing a driver touches no hardware
