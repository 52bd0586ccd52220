"""The module file's schema: every cross-key rule names its key, file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from plantd_drivers.modbus import ModbusModule

from plantd.config import parse_dataclass
from plantd.errors import ConfigError
from plantd.module import parse_module_file

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "modules.d"


def module(points: list[dict[str, Any]], **group: Any) -> dict[str, Any]:
    return {
        "driver": "modbus",
        "connection": {"host": "10.0.0.5"},
        "groups": [{"name": "g", **group, "points": points}],
    }


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_dataclass(ModbusModule, data, source="m.yaml")
    return caught.value.problems


def test_defaults() -> None:
    config = parse_dataclass(ModbusModule, module([{"name": "p", "address": 0}]), source="m")
    connection = config.connection
    assert (connection.transport, connection.port, connection.order) == ("tcp", 502, "ABCD")
    assert (connection.timeout, connection.retries) == (1.0, 1)
    assert (connection.max_registers, connection.max_gap) == (125, 16)
    assert connection.frame_delay() == 0.0
    group = config.groups[0]
    assert (group.unit, group.table) == (1, "holding")
    point = group.points[0]
    assert (point.type, point.scale, point.read_back) == (None, 1.0, False)


def test_serial_frame_delay_follows_the_baud_rate() -> None:
    data = module([])
    data["connection"] = {"transport": "rtu", "device": "/dev/ttyUSB0", "baudrate": 9600}
    connection = parse_dataclass(ModbusModule, data, source="m").connection
    assert connection.frame_delay() == pytest.approx(3.5 * 11 / 9600)
    data["connection"]["baudrate"] = 115200
    assert parse_dataclass(ModbusModule, data, source="m").connection.frame_delay() == 0.00175
    data["connection"]["inter_frame_delay"] = "20ms"
    assert parse_dataclass(ModbusModule, data, source="m").connection.frame_delay() == 0.02


@pytest.mark.parametrize(
    ("connection", "expected"),
    [
        ({"transport": "tcp"}, "connection.host: transport tcp needs a host"),
        ({"transport": "rtu-over-tcp"}, "connection.host: transport rtu-over-tcp needs a host"),
        ({"transport": "rtu"}, "connection.device: transport rtu needs a serial device"),
        (
            {"transport": "rtu", "device": "/dev/ttyS0", "host": "x"},
            "connection.host: host is for transports tcp and rtu-over-tcp",
        ),
        ({"host": "x", "device": "/dev/ttyS0"}, "connection.device: device is for transport rtu"),
        ({"host": "x", "transport": "udp"}, "connection.transport: expected one of 'tcp', 'rtu'"),
        ({"host": "x", "parity": "N"}, "connection.parity: expected one of 'none', 'even', 'odd'"),
        ({"host": "x", "order": "abcd"}, "connection.order: expected one of 'ABCD', 'CDAB'"),
        ({"host": "x", "max_registers": 200}, "connection.max_registers: expected an integer"),
        ({"host": "x", "timeout": "fast"}, "connection.timeout: expected a duration"),
        (
            {"host": "x", "backoff_initial": 60},
            "connection.backoff_initial: must not exceed backoff_max (30 s), got 60 s",
        ),
        ({"host": "x", "stopbits": 3}, "connection.stopbits: expected one of 1, 2"),
    ],
)
def test_connection_rules(connection: dict[str, Any], expected: str) -> None:
    data = module([])
    data["connection"] = connection
    assert any(expected in problem for problem in problems(data)), problems(data)


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        ({"type": "string"}, "points[0].length: type string needs length"),
        ({"type": "uint16", "length": 4}, "points[0].length: length is for type string only"),
        ({"type": "int32", "bit": 3}, "points[0].bit: bit picks one bit of a register as a bool"),
        ({"bit": 16}, "points[0].bit: expected an integer >= 0 and <= 15"),
        ({"read_back": True}, "points[0].read_back: read_back checks writes"),
        ({"enum": {"a": 1}, "bits": {"b": 0}}, "points[0].bits: a point has either enum or bits"),
        ({"type": "float32", "enum": {"a": 1}}, "points[0].enum: enum needs an integer type"),
        ({"type": "int16", "enum": {"a": 40000}}, "points[0].enum.a: 40000 does not fit a int16"),
        ({"enum": {"a": 1, "b": 1}}, "points[0].enum.b: 1 is also 'a'"),
        ({"type": "int16", "bits": {"a": 0}}, "points[0].bits: bits needs type uint16"),
        ({"bits": {"a": 16}}, "points[0].bits.a: bit 16 is beyond the 16 bits of a uint16"),
        ({"type": "bool", "scale": 2}, "points[0].scale: scale is for numbers; this point is bool"),
        ({"bit": 2, "offset": 1}, "points[0].offset: offset is for numbers; this point is bool"),
        ({"enum": {"a": 0}, "offset": 1}, "points[0].offset: offset is for numbers"),
        ({"scale": 0}, "points[0].scale: expected a number other than 0"),
        ({"type": "string", "length": 4, "clamp": {"max": 1}}, "points[0].clamp: clamp is for"),
        ({"clamp": {"min": 5, "max": 1}}, "points[0].clamp.min: min 5 is above max 1"),
        ({"type": "float128"}, "points[0].type: expected one of 'bool', 'int16'"),
        ({"order": "BACD"}, "points[0].order: expected one of 'ABCD', 'CDAB', 'BADC', 'DCBA'"),
        ({"minimum": 10, "maximum": 1}, "points[0].minimum: minimum 10.0 is above maximum 1.0"),
        ({"adress": 3}, "points[0].adress: unknown key (did you mean 'address'?)"),
    ],
)
def test_point_rules(point: dict[str, Any], expected: str) -> None:
    data = module([{"name": "p", "address": 0, **point}])
    assert any(expected in problem for problem in problems(data)), problems(data)


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        ({"table": "input", "writable": True}, "points[0].writable: input tables are read-only"),
        ({"table": "discrete", "writable": True}, "discrete tables are read-only"),
        ({"table": "coil", "type": "int16"}, "points[0].type: a coil is a single bit"),
        ({"table": "coil", "scale": 2}, "points[0].scale: a coil is a single bit"),
        ({"table": "discrete", "order": "CDAB"}, "points[0].order: a discrete is a single bit"),
        ({"address": 65535, "type": "float32"}, "points[0].address: 2 registers from 65535"),
    ],
)
def test_table_rules(point: dict[str, Any], expected: str) -> None:
    data = module([{"name": "p", "address": 0, **point}])
    assert any(expected in problem for problem in problems(data)), problems(data)


def test_coil_points_may_say_bool() -> None:
    data = module([{"name": "p", "address": 0, "type": "bool", "writable": True}], table="coil")
    parse_dataclass(ModbusModule, data, source="m")


def test_module_rules() -> None:
    data = module([{"name": "p", "address": 0, "type": "string", "length": 40}], max_registers=10)
    data["connection"] = {"transport": "rtu", "device": "/dev/ttyUSB0"}
    data["groups"][0]["unit"] = 0
    found = problems(data)
    assert any(
        "groups[0].unit: on a serial line unit ids run from 1 to 247, got 0" in p for p in found
    )
    assert any(
        "points[0].type: the point spans 20 registers; max_registers is 10" in p for p in found
    )


def test_point_names_are_unique_across_groups() -> None:
    data = module([{"name": "p", "address": 0}])
    data["groups"].append({"name": "h", "points": [{"name": "p", "address": 1}]})
    assert any("point name 'p' is already used in group 'g'" in p for p in problems(data))


def test_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "meter.yaml"
    path.write_text(
        "driver: modbus\n"
        "connection:\n"
        "  host: 10.0.0.5\n"
        "groups:\n"
        "  - name: fast\n"
        "    points:\n"
        "      - name: voltage\n"
        "        address: 0\n"
        "        type: float23\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_module_file(path, ModbusModule)
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}:9: groups[0].points[0].type: expected one of")
    assert "(did you mean 'float32'?)" in problem


@pytest.mark.parametrize("name", ["energy-meter", "plc"])
def test_examples_are_valid(name: str) -> None:
    config = parse_module_file(EXAMPLES / f"{name}.yaml", ModbusModule)
    assert config.name == name
    assert config.groups
    text = (EXAMPLES / f"{name}.yaml").read_text()
    assert yaml.safe_load(text)["driver"] == "modbus"


def test_every_key_is_documented() -> None:
    import dataclasses

    from plantd_drivers.modbus import ModbusConnection, ModbusGroup, ModbusPoint

    from plantd.module import GroupConfig, PointConfig

    doc = (Path(__file__).resolve().parents[3] / "docs" / "drivers" / "modbus.md").read_text()
    inherited = {f.name for f in dataclasses.fields(GroupConfig)}
    inherited |= {f.name for f in dataclasses.fields(PointConfig)}
    for cls in (ModbusConnection, ModbusGroup, ModbusPoint):
        for f in dataclasses.fields(cls):
            if f.name not in inherited:
                assert f"| `{f.name}` |" in doc, f"{cls.__name__}.{f.name} is not in the docs"
