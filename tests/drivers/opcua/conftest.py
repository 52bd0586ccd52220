"""Fixtures: an OPC UA simulator on a free port, and module files pointing at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from plantd_drivers.opcua import OpcuaModule

from hil.opcua import OpcuaSimulator, SimulatorModel, load_model
from plantd.module import parse_module_file
from tests.drivers.module_harness import write_module

LINE = Path(__file__).resolve().parents[3] / "hil" / "opcua" / "examples" / "line.yaml"

MODULE = """
driver: opcua
connection:
  endpoint: {endpoint}
  namespaces: {{sim: "urn:plantd:sim"}}
  keepalive: 250ms
  timeout: 2s
groups:
  - name: live
    interval: 100ms
    points:
      - {{name: temperature, path: "sim:Line1/sim:Temperature"}}
      - {{name: count, node: "ns=sim;s=Line1.Count"}}
  - name: settings
    interval: 100ms
    mode: poll
    points:
      - {{name: speed, node: "ns=sim;s=Line1.Speed", writable: true, maximum: 5000}}
      - {{name: recipe, path: "sim:Line1/sim:Recipe", writable: true}}
      - {{name: running, path: "sim:Line1/sim:Running"}}
methods:
  - {{name: add, method: "sim:Line1/sim:Add", description: "Add two numbers"}}
  - {{name: reset_count, method: "sim:Line1/sim:ResetCount"}}
"""


def line_model() -> SimulatorModel:
    return load_model(LINE)


@pytest.fixture
async def sim() -> AsyncIterator[OpcuaSimulator]:
    endpoint = "opc.tcp://127.0.0.1:0/plantd/sim"  # the simulator says which port it got
    async with OpcuaSimulator(line_model(), endpoint=endpoint) as simulator:
        yield simulator


ModuleMaker = Callable[..., OpcuaModule]


@pytest.fixture
def make_module(tmp_path: Path, sim: OpcuaSimulator) -> ModuleMaker:
    def make(text: str = MODULE, name: str = "line", **fields: str) -> OpcuaModule:
        path = write_module(
            tmp_path / "modules.d", text.format(endpoint=sim.endpoint, **fields), name
        )
        return parse_module_file(path, OpcuaModule)

    return make
