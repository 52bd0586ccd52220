"""A simulated OPC UA server (asyncua) whose address space and value behaviour come from YAML.

    from hil.opcua import OpcuaSimulator, load_model

    async with OpcuaSimulator(load_model(Path("hil/opcua/examples/line.yaml"))) as sim:
        ...                                   # point a module at sim.endpoint
        await sim.restart(down_for=1.0)       # and watch it come back by itself

From a shell: ``python -m hil.opcua FILE.yaml [--endpoint opc.tcp://127.0.0.1:4841/x]``.
The model format is described in :mod:`hil.opcua._model`.
"""

from __future__ import annotations

from hil.opcua._model import (
    MethodModel,
    ObjectModel,
    SecurityModel,
    SimulatorModel,
    VariableModel,
    load_model,
    value_at,
)
from hil.opcua._server import OpcuaSimulator

__all__ = [
    "MethodModel",
    "ObjectModel",
    "OpcuaSimulator",
    "SecurityModel",
    "SimulatorModel",
    "VariableModel",
    "load_model",
    "value_at",
]
