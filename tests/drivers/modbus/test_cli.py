"""``plant modbus plan`` and ``plant modbus probe``, run through ``plant``'s own entry point."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.modbus import Device, Simulator, TcpServer
from plantd.cli import main

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "modules.d"

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "modules.d").mkdir()
    for name in ("energy-meter", "plc"):
        shutil.copy(EXAMPLES / f"{name}.yaml", tmp_path / "modules.d" / f"{name}.yaml")
    return tmp_path


def test_plan_by_module_name(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config_dir), "modbus", "plan", "energy-meter"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("module energy-meter (tcp 192.168.10.21:502): 16 points, 5 requests")
    assert "group instant: unit 1, every 1 s, 9 points in 2 requests" in out
    assert "FC 4 input        0…11      12 registers: voltage_l1@0, voltage_l2@2" in out
    assert "FC 4 input       52…71      20 registers, 14 unused: power_total@52" in out


def test_plan_json_by_path(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config_dir / "modules.d" / "plc.yaml"
    assert main(["modbus", "plan", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["module"] == "plc"
    assert data["points"] == 15
    io = data["groups"][0]
    assert [r["function"] for r in io["requests"]] == [1, 2, 4]
    assert io["requests"][0]["points"][0] == {"name": "pump_1_run", "address": 0, "size": 1}


def test_plan_names_config_problems(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = config_dir / "modules.d" / "broken.yaml"
    broken.write_text("driver: modbus\nconnection: {transport: rtu}\n")
    assert main(["--config", str(config_dir), "modbus", "plan", "broken"]) == 2
    err = capsys.readouterr().err
    assert "broken.yaml:2: connection.device: transport rtu needs a serial device" in err


@pytest.fixture
def simulator() -> Iterator[tuple[Simulator, int]]:
    """A TCP simulator in a thread of its own, since the CLI runs its own event loop."""
    device = Device()
    device.map("holding", 100, 8)
    device.set_value("holding", 100, "float32", 230.1, order="CDAB")
    device.set_registers("holding", 102, [0x504C, 0x4300])
    sim = Simulator({5: device})
    loop = asyncio.new_event_loop()
    server = TcpServer(sim)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(server.stop())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(5)
    try:
        yield sim, server.port
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_probe_shows_every_interpretation(
    simulator: tuple[Simulator, int], capsys: pytest.CaptureFixture[str]
) -> None:
    sim, port = simulator
    args = ["modbus", "probe", "100", "--unit", "5", "--host", "127.0.0.1", "--port", str(port)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "unit 5, FC 3, 4 registers from 100 (tcp 127.0.0.1:" in out
    assert "    100  0x199A      6554    6554" in out
    block = out.split("\nfrom 100")[1].split("\nfrom 101")[0]
    float_row = next(line for line in block.splitlines() if line.strip().startswith("float32"))
    assert float_row.split()[2] == "230.1"  # the CDAB column
    assert sim.count(unit=5, function=3) == 1


def test_probe_json(simulator: tuple[Simulator, int], capsys: pytest.CaptureFixture[str]) -> None:
    _, port = simulator
    args = ["--json", "modbus", "probe", "102", "--unit", "5", "--count", "2"]
    assert main([*args, "--host", "127.0.0.1", "--port", str(port)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["registers"] == [0x504C, 0x4300]
    first = data["rows"][0]["values"]
    assert first["text"]["ABCD"] == "PLC."
    assert first["uint32"]["ABCD"] == 0x504C4300
    assert first["uint32"]["CDAB"] == 0x4300504C


def test_probe_errors_say_who_is_at_fault(
    simulator: tuple[Simulator, int], capsys: pytest.CaptureFixture[str]
) -> None:
    _, port = simulator
    base = ["modbus", "probe", "0", "--host", "127.0.0.1", "--port", str(port), "--timeout", "0.2"]
    assert main([*base, "--unit", "5"]) == 1
    assert "unit 5 refused: exception 2 (illegal data address)" in capsys.readouterr().err
    assert main([*base, "--unit", "9"]) == 1
    assert "no unit answers" in capsys.readouterr().err
    assert main(["modbus", "probe", "0"]) == 2  # a configuration problem
    assert "host: transport tcp needs a host" in capsys.readouterr().err
