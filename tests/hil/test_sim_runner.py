"""A simulator file served for real (TCP, RTU over TCP, RTU on a pty) and read with plantd's
Modbus driver: values and orders on the wire, writes into the plant model, and every fault."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from plantd_drivers.modbus import ModbusDriver, ModbusModule

from hil.scenario._stack import rewrite_connection
from hil.sim import Fault, Heal, SimError, SimFile, SimRunner
from plantd.bus import Quality
from plantd.config import parse_dataclass, parse_yaml
from plantd.errors import DeviceFault, DeviceUnavailable

pytestmark = [pytest.mark.timeout(30)]

SIM = """
devices:
  - name: dev
    transport: {transport}
    order: CDAB
    units:
      - unit: 1
        points:
          - {{name: level, table: input, address: 0, type: float32, value: 2.5}}
          - {{name: total, table: input, address: 2, type: uint32, scale: 0.01, value: 70000.07}}
          - {{name: temp, table: input, address: 4, type: int16, scale: 0.1, value: -12.3}}
          - {{name: tag, table: input, address: 5, type: string, length: 6, value: "AB-12"}}
          - {{name: setpoint, table: holding, address: 0, scale: 0.1, value: 45}}
          - {{name: doubled, table: input, address: 10, expr: "setpoint * 2"}}
          - {{name: run, table: coil, address: 0, value: true}}
          - {{name: ramping, table: input, address: 11, ramp: {{end: 1000, period: 10s}}}}
          - {{name: remote, table: holding, address: 3, bit: 4, value: true}}
          - name: reset
            table: coil
            address: 1
            on_write: [{{set: setpoint, to: "0"}}, {{set: reset, to: false}}]
      - unit: 2
        points:
          - {{name: other, table: holding, address: 0, value: 7}}
"""

MODULE: dict[str, Any] = {
    "driver": "modbus",
    "groups": [
        {
            "name": "g",
            "unit": 1,
            "table": "input",
            "points": [
                {"name": "level", "address": 0, "type": "float32"},
                {"name": "total", "address": 2, "type": "uint32", "scale": 0.01},
                {"name": "temp", "address": 4, "type": "int16", "scale": 0.1},
                {"name": "tag", "address": 5, "type": "string", "length": 6},
                {
                    "name": "setpoint",
                    "table": "holding",
                    "address": 0,
                    "scale": 0.1,
                    "writable": True,
                },
                {"name": "doubled", "address": 10},
                {"name": "run", "table": "coil", "address": 0, "writable": True},
                {"name": "ramping", "address": 11},
                {"name": "remote", "table": "holding", "address": 3, "bit": 4},
                {"name": "reset", "table": "coil", "address": 1, "writable": True},
            ],
        },
        {"name": "u2", "unit": 2, "points": [{"name": "other", "address": 0}]},
    ],
}


def sim_file(transport: str) -> SimFile:
    text = SIM.format(transport=transport)
    document = parse_yaml(text, source="sim.yaml")
    return parse_dataclass(SimFile, document.data, source="sim.yaml", lines=document.lines)


class Running:
    def __init__(self, sim: SimRunner) -> None:
        self.sim = sim
        endpoint = sim.binding("dev").describe()
        data = rewrite_connection(MODULE, endpoint)
        data["connection"] |= {"order": "CDAB", "timeout": 0.2, "retries": 0}
        data["connection"] |= {"backoff_initial": 0.05, "backoff_max": 0.2}
        self.module = parse_dataclass(ModbusModule, data, source="test")
        self.driver = ModbusDriver(self.module)

    async def read(self, group: int = 0) -> dict[str, Any]:
        readings = await self.driver.read(self.module.groups[group])
        return {
            name: r.value if r.quality is Quality.GOOD else r.quality
            for name, r in readings.items()
        }

    async def write(self, name: str, value: Any) -> Any:
        point = next(p for _, p in self.module.points() if p.name == name)
        return await self.driver.write(point, value)


@pytest.fixture
async def running(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    transport = getattr(request, "param", "tcp")
    async with SimRunner(sim_file(transport), run_dir=tmp_path, free_ports=True) as sim:
        rig = Running(sim)
        await rig.driver.open()
        yield rig
        await rig.driver.close()


@pytest.mark.parametrize("running", ["tcp", "rtu-over-tcp", "rtu"], indirect=True)
async def test_values_reach_the_driver_in_their_types_and_orders(running: Running) -> None:
    values = await running.read()
    assert values["level"] == 2.5
    assert values["total"] == pytest.approx(70000.07)
    assert values["temp"] == pytest.approx(-12.3)
    assert values["tag"] == "AB-12"
    assert values["setpoint"] == 45
    assert values["doubled"] == 90
    assert values["run"] is True
    assert values["remote"] is True
    assert 0 <= values["ramping"] <= 1000
    assert (await running.read(1)) == {"other": 7}


async def test_writes_move_the_plant(running: Running) -> None:
    assert await running.write("setpoint", 21.5) == 21.5
    assert running.sim.get("dev", "setpoint") == 21.5
    await asyncio.sleep(0.25)  # a tick or two: the expr follows
    assert (await running.read())["doubled"] == 43
    await running.write("reset", True)  # a momentary coil with write handlers
    values = await running.read()
    assert (values["setpoint"], values["reset"]) == (0, False)
    assert running.sim.bindings["dev"].writes == 2


async def test_swapped_and_frozen(running: Running) -> None:
    await running.sim.inject(Fault(device="dev", fault="swapped"))
    values = await running.read()
    assert values["level"] != 2.5  # wrong, and nothing says so: what plausibility checks are for
    assert (await running.read(1)) == {"other": 7}  # a one-register answer: nothing to swap
    running.sim.heal(Heal(device="dev"))
    assert (await running.read())["level"] == 2.5
    await running.sim.inject(Fault(device="dev", unit=1, fault="frozen"))
    frozen = (await running.read())["ramping"]
    await asyncio.sleep(0.35)
    assert (await running.read())["ramping"] == frozen  # answers, but the value is stuck
    assert running.sim.get("dev", "ramping") != frozen  # while the process moves on
    running.sim.heal()
    assert (await running.read())["ramping"] != frozen


@pytest.mark.parametrize("running", ["rtu-over-tcp"], indirect=True)
async def test_a_bad_crc_burst_ends_by_itself(running: Running) -> None:
    await running.sim.inject(Fault(device="dev", unit=1, fault="bad-crc", count=2))
    first = await running.read()
    assert all(value is Quality.BAD for value in first.values())
    for _ in range(20):  # the breaker probes again after backoff_initial
        values = await running.read()
        if values["level"] == 2.5:
            break
        await asyncio.sleep(0.05)
    assert values["level"] == 2.5
    assert running.sim.bindings["dev"].simulator.faults == {}


async def test_exceptions_slowness_and_dropped_connections(running: Running) -> None:
    await running.sim.inject(Fault(device="dev", unit=1, fault="exception", code=6))
    with pytest.raises(DeviceFault, match="exception 6"):
        await running.read()
    running.sim.heal()
    await running.sim.inject(Fault(device="dev", fault="slow", delay=0.1))
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await running.read(1)) == {"other": 7}
    assert loop.time() - started >= 0.1
    running.sim.heal()
    server = running.sim.bindings["dev"].server
    connections = server.connections  # type: ignore[union-attr]
    await running.sim.inject(Fault(device="dev", fault="drop"))
    for _ in range(40):
        try:
            if (await running.read(1)) == {"other": 7}:
                break
        except DeviceUnavailable:
            pass
        await asyncio.sleep(0.05)
    assert server.connections == connections + 1  # type: ignore[union-attr]


async def test_a_restart_forgets_written_values_and_a_duration_heals(running: Running) -> None:
    await running.write("setpoint", 12.0)
    await running.sim.inject(Fault(device="dev", fault="restart", downtime=0.3))
    with pytest.raises(DeviceUnavailable):
        await running.read()
    await asyncio.sleep(0.6)
    for _ in range(40):
        try:
            values = await running.read()
            break
        except DeviceUnavailable:
            await asyncio.sleep(0.05)
    assert values["setpoint"] == 45  # back at its initial value: not retained
    await running.sim.inject(Fault(device="dev", unit=2, fault="silent", duration=0.3))
    assert (await running.read(1)) == {"other": Quality.BAD}
    assert running.sim.active
    await asyncio.sleep(0.5)
    assert running.sim.active == []


@pytest.mark.parametrize("running", ["rtu"], indirect=True)
async def test_without_a_link_the_pty_name_is_used(running: Running) -> None:
    where = running.sim.binding("dev").describe()
    assert where["device"] == where["pty"]  # the file sets no link: the pty's own name
    assert where["pty"].startswith("/dev/pts/")


async def test_a_link_is_replaced_and_removed(tmp_path: Path) -> None:
    file = sim_file("rtu")
    device = file.devices[0]
    linked = dataclasses.replace(file, devices=(dataclasses.replace(device, link="ttyDEV"),))
    (tmp_path / "ttyDEV").symlink_to("/dev/null")  # a stale link from a crashed run
    async with SimRunner(linked, run_dir=tmp_path) as sim:
        where = sim.binding("dev").describe()
        assert where["device"] == str(tmp_path / "ttyDEV")
        assert os.readlink(tmp_path / "ttyDEV") == where["pty"]
    assert not (tmp_path / "ttyDEV").exists()


async def test_faults_that_do_not_fit_are_refused(running: Running) -> None:
    with pytest.raises(SimError, match="bad-crc needs an RTU framing"):
        await running.sim.inject(Fault(device="dev", fault="bad-crc"))
    with pytest.raises(SimError, match=r"no device 'dve' \(did you mean 'dev'\?\)"):
        await running.sim.inject(Fault(device="dve", fault="silent"))
    with pytest.raises(SimError, match=r"has no unit 9"):
        await running.sim.inject(Fault(device="dev", unit=9, fault="silent"))
    with pytest.raises(SimError, match=r"has no point 'levl' \(did you mean 'level'\?\)"):
        running.sim.set("dev", "levl", 1)
