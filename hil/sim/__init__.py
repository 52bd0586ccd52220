"""Simulator files: simulated devices, a plant model that moves their values, and run-time faults.

    from hil.sim import Fault, SimRunner, load_sim_file

    async with SimRunner(load_sim_file(Path("hil/plants/pump-station.yaml"))) as sim:
        print(sim.endpoints())                               # where each device listens
        sim.set("plc", "pump_run", False)                    # the process, by hand
        await sim.inject(Fault(device="field", unit=2, fault="silent", duration=3.0))

From a shell: ``plant sim run FILE`` (``docs/hil.md``). Inside:

    _schema    the file's dataclasses (read with plantd.config.parse_dataclass)
    _checks    rules across points: names in expressions, overlapping registers, cycles
    _expr      the expression language (parsed with ast, compiled to closures; no eval)
    _behaviour ramp, sine, random walk, steps, expr, integrate, follow     (sans-IO)
    _plant     the plant model: values, steps, writes, restarts            (sans-IO)
    _modbus    points ↔ registers of hil.modbus devices, and their servers
    _faults    the faults a device can be given, as one value
    _runner    the I/O shell: servers, the tick, faults applied and healed
    _control   the MDP service org.plantd.sim.<name>
    _generate  plant sim from-module
"""

from __future__ import annotations

from hil.sim._control import SERVICE_PREFIX, sim_service
from hil.sim._expr import ExprError, parse_expr
from hil.sim._faults import Fault, FaultKind, Heal
from hil.sim._generate import sim_from_module, sim_point_name
from hil.sim._plant import Plant
from hil.sim._runner import SimError, SimRunner, load_sim_file
from hil.sim._schema import SimDevice, SimFile, SimPoint, SimUnit

__all__ = [
    "SERVICE_PREFIX",
    "ExprError",
    "Fault",
    "FaultKind",
    "Heal",
    "Plant",
    "SimDevice",
    "SimError",
    "SimFile",
    "SimPoint",
    "SimRunner",
    "SimUnit",
    "load_sim_file",
    "parse_expr",
    "sim_from_module",
    "sim_point_name",
    "sim_service",
]
