"""``plant modbus plan MODULE`` and ``plant modbus probe ADDRESS``: the driver's own tools.

``plan`` shows the requests the driver will send for a module file, without any device: which
points share a request, how many registers each spans and how many of them no point uses.

``probe`` reads raw registers from a device and prints them as every type in every byte/word
order side by side, with the same codec the driver uses, to find out how a device lays out
its values before writing the module file. It connects with a module file's connection
settings (``--module``) or with its own (``--host``/``--device`` …).

Registered through the ``plantd.cli`` entry-point group. pymodbus is imported only when a probe
runs, so ``plant`` starts without it.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from plantd.cli import OUTPUT_OPTIONS, Subcommands, cli_config, emit
from plantd.config import MODULES_DIR, parse_dataclass
from plantd.errors import ConfigError, DeviceFault, DeviceUnavailable
from plantd.module import parse_module_file
from plantd_drivers.modbus._codec import PointCodec
from plantd_drivers.modbus._config import ModbusConnection, ModbusModule
from plantd_drivers.modbus._planner import Learned
from plantd_drivers.modbus._types import BIT_TABLES, ORDERS, ValueType

__all__ = ["register"]

_PROBE_TYPES: tuple[ValueType, ...] = (
    "int16",
    "uint16",
    "int32",
    "uint32",
    "float32",
    "int48",
    "uint48",
    "int64",
    "uint64",
    "float64",
)


def register(sub: Subcommands) -> None:
    """Add ``plant modbus plan`` and ``plant modbus probe`` (the ``plantd.cli`` entry point)."""
    modbus = sub.add_parser(
        "modbus", parents=[OUTPUT_OPTIONS], help="Modbus tools: request plans, raw register probes"
    )
    actions = modbus.add_subparsers(dest="modbus_command", metavar="ACTION", required=True)
    plan = actions.add_parser(
        "plan",
        parents=[OUTPUT_OPTIONS],
        help="print the requests a Modbus module sends each cycle",
        description="Print the read plan of a Modbus module file: requests per group, the "
        "points each reads, and the registers no point uses.",
    )
    plan.add_argument("module", help="module name (modules.d/NAME.yaml) or path to its file")
    plan.set_defaults(run=run_plan)
    probe = actions.add_parser(
        "probe",
        parents=[OUTPUT_OPTIONS],
        help="read raw registers and show every type/order interpretation",
        description="Read COUNT registers from ADDRESS (protocol address, from 0) and print "
        "them as every type in every byte/word order.",
    )
    probe.add_argument("address", type=int, help="first register (protocol address, from 0)")
    probe.add_argument("--unit", type=int, default=1, help="unit id (default 1)")
    probe.add_argument("--count", type=int, default=4, help="registers to read (default 4)")
    probe.add_argument(
        "--function", type=int, choices=(3, 4), default=3, help="3 holding (default), 4 input"
    )
    probe.add_argument("--module", help="take the connection from this module file")
    probe.add_argument("--transport", choices=("tcp", "rtu", "rtu-over-tcp"), help="default tcp")
    probe.add_argument("--host", help="device or gateway address")
    probe.add_argument("--port", type=int, help="TCP port (default 502)")
    probe.add_argument("--device", help="serial device, for --transport rtu")
    probe.add_argument("--baudrate", type=int, help="default 19200")
    probe.add_argument("--parity", choices=("none", "even", "odd"), help="default even")
    probe.add_argument("--stopbits", type=int, choices=(1, 2), help="default 1")
    probe.add_argument("--timeout", type=float, help="seconds to wait for the answer (default 1)")
    probe.set_defaults(run=run_probe)


# -- plan ------------------------------------------------------------------------------------------


def module_path(args: argparse.Namespace, name: str) -> Path:
    if name.endswith(".yaml") or "/" in name:
        return Path(name)
    config = cli_config(args)
    if config.source_dir is None:
        raise ConfigError([f"{name}: no config directory to find modules.d/ in; give a path"])
    return config.source_dir / MODULES_DIR / f"{name}.yaml"


def load_module(args: argparse.Namespace, name: str) -> ModbusModule:
    path = module_path(args, name)
    module = parse_module_file(path, ModbusModule)
    if module.driver != "modbus":
        raise ConfigError([f"{path}: driver: this is a {module.driver!r} module, not modbus"])
    return module


def plan_data(module: ModbusModule) -> dict[str, Any]:
    from plantd_drivers.modbus._group import GroupReader

    learned = Learned()
    groups: list[dict[str, Any]] = []
    for group in module.groups:
        reader = GroupReader(group, module.connection, learned)
        requests = [
            {
                "function": r.function,
                "table": r.table,
                "address": r.address,
                "count": r.count,
                "unused": r.holes(),
                "points": [
                    {"name": reader.names[i.key], "address": i.address, "size": i.size}
                    for i in r.items
                ],
            }
            for r in reader.plan()
        ]
        groups.append(
            {
                "name": group.name,
                "unit": group.unit,
                "interval": group.interval,
                "points": len(group.points),
                "requests": requests,
            }
        )
    return {
        "module": module.name,
        "connection": _describe_connection(module.connection),
        "points": sum(g["points"] for g in groups),
        "requests": sum(len(g["requests"]) for g in groups),
        "groups": groups,
    }


def plan_text(data: dict[str, Any]) -> str:
    lines = [
        f"module {data['module']} ({data['connection']}): {data['points']} points, "
        f"{_plural(data['requests'], 'request')} when every group is read once "
        f"(one per point: {data['points']})"
    ]
    for group in data["groups"]:
        lines.append("")
        lines.append(
            f"group {group['name']}: unit {group['unit']}, every {group['interval']:g} s, "
            f"{_plural(group['points'], 'point')} in {_plural(len(group['requests']), 'request')}"
        )
        for r in group["requests"]:
            what = "bits" if r["table"] in BIT_TABLES else "registers"
            end = r["address"] + r["count"] - 1
            unused = f", {r['unused']} unused" if r["unused"] else ""
            names = ", ".join(f"{p['name']}@{p['address']}" for p in r["points"])
            lines.append(
                f"  FC {r['function']} {r['table']:<8} {r['address']:>5}…{end:<5} "
                f"{r['count']:>4} {what}{unused}: {names}"
            )
    return "\n".join(lines)


def run_plan(args: argparse.Namespace) -> int:
    data = plan_data(load_module(args, args.module))
    emit(args, data, plan_text(data))
    return 0


# -- probe -----------------------------------------------------------------------------------------


def probe_connection(args: argparse.Namespace) -> ModbusConnection:
    settings: dict[str, Any] = {}
    if args.module:
        module = load_module(args, args.module)
        base = module.connection
        settings = {k: getattr(base, k) for k in ModbusConnection.__dataclass_fields__}
    flags = ("transport", "host", "port", "device", "baudrate", "parity", "stopbits", "timeout")
    for key in flags:
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    if args.device and not args.transport and not args.module:
        settings["transport"] = "rtu"
    settings["retries"] = 0
    return parse_dataclass(ModbusConnection, settings, source="plant modbus probe")


def interpretations(address: int, registers: list[int]) -> list[dict[str, Any]]:
    """For each start address: every type that fits, in every order, decoded by the codec."""
    rows = []
    for start in range(len(registers)):
        rest = registers[start:]
        values: dict[str, dict[str, Any]] = {}
        for kind in _PROBE_TYPES:
            size = PointCodec(kind).registers
            if size <= len(rest):
                values[kind] = {
                    order: PointCodec(kind, order).decode(rest[:size]).value for order in ORDERS
                }
        text = bytes(b for r in rest[:8] for b in r.to_bytes(2, "big"))
        swapped = bytes(b for r in rest[:8] for b in r.to_bytes(2, "little"))
        values["text"] = {"ABCD": _printable(text), "BADC": _printable(swapped)}
        rows.append({"address": address + start, "values": values})
    return rows


def probe_text(data: dict[str, Any]) -> str:
    lines = [
        f"unit {data['unit']}, FC {data['function']}, {len(data['registers'])} registers "
        f"from {data['address']} ({data['connection']})",
        "",
        "address     hex    unsigned  signed",
    ]
    for offset, register in enumerate(data["registers"]):
        signed = register - 0x10000 if register & 0x8000 else register
        lines.append(f"{data['address'] + offset:>7}  0x{register:04X}  {register:>8}  {signed:>6}")
    for row in data["rows"]:
        lines.append("")
        lines.append(f"from {row['address']:<6}" + "".join(f"{order:>24}" for order in ORDERS))
        for kind, by_order in row["values"].items():
            cells = [_cell(kind, by_order.get(order)) for order in ORDERS]
            lines.append(f"  {kind:<10}" + "".join(f"{cell:>24}" for cell in cells))
    return "\n".join(lines)


def run_probe(args: argparse.Namespace) -> int:
    connection = probe_connection(args)
    registers = asyncio.run(_read_registers(connection, args.unit, args.function, args))
    data = {
        "connection": _describe_connection(connection),
        "unit": args.unit,
        "function": args.function,
        "address": args.address,
        "registers": registers,
        "rows": interpretations(args.address, registers),
    }
    emit(args, data, probe_text(data))
    return 0


async def _read_registers(
    connection: ModbusConnection, unit: int, function: int, args: argparse.Namespace
) -> list[int]:
    from plantd_drivers.modbus._line import Line, UnitDown
    from plantd_drivers.modbus._transport import BadAnswer, Refused, Transport
    from plantd_drivers.modbus._types import describe_exception

    async def read(transport: Transport) -> list[int]:
        return [int(v) for v in await transport.read(unit, function, args.address, args.count)]

    line = Line(connection, [unit])
    await line.open()
    try:
        return await line.request(unit, read)
    except UnitDown as exc:
        raise DeviceUnavailable(f"{line.where}: {exc}") from None
    except Refused as exc:
        raise DeviceFault(f"unit {unit} refused: {describe_exception(exc.code)}") from None
    except BadAnswer as exc:
        raise DeviceFault(f"unit {unit}: {exc}") from None
    finally:
        await line.close()


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _describe_connection(connection: ModbusConnection) -> str:
    if connection.transport == "rtu":
        return f"rtu {connection.device} {connection.baudrate} baud"
    return f"{connection.transport} {connection.host}:{connection.port}"


def _cell(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.7g}" if kind == "float32" else f"{value:.15g}"
    return str(value)


def _printable(data: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 else "." for b in data)
