"""``plant sim …``: run simulated devices, generate them from a module, inject faults at run time.

``run`` serves simulator files in the foreground; ``check`` validates them; ``from-module``
writes a simulator file answering every point of a Modbus module file. ``list``, ``status``,
``inject``, ``heal``, ``get`` and ``set`` talk to a running simulator through its MDP service
``org.plantd.sim.NAME`` at the configured broker. Registered through the ``plantd.cli``
entry-point group; :mod:`hil.sim` is imported inside the run functions, so ``plant`` starts as
fast without it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from plantd.cli import (
    OUTPUT_OPTIONS,
    Subcommands,
    add_client_options,
    cli_config,
    client_for,
    emit,
    serve_as,
    setup_logging,
)
from plantd.config import PathsConfig
from plantd.errors import ConfigError, UsageError
from plantd.service import call

__all__ = ["register"]

_PREFIX = "org.plantd.sim."
_FAULTS = (
    "silent", "exception", "slow", "garbage", "bad-crc", "short", "malformed", "swapped",
    "frozen", "hang", "drop", "restart",
)  # fmt: skip


def register(sub: Subcommands) -> None:
    """Add ``plant sim`` and its actions (the ``plantd.cli`` entry point ``sim``)."""
    sim = sub.add_parser("sim", help="simulated devices: run, generate, inject faults")
    actions = sim.add_subparsers(dest="sim_command", metavar="ACTION", required=True)
    _add_file_actions(actions)
    _add_service_actions(actions)


def _add_file_actions(actions: Subcommands) -> None:
    """The actions on simulator files: run, check, from-module."""
    run = actions.add_parser(
        "run", parents=[OUTPUT_OPTIONS], help="serve the devices of simulator files (foreground)"
    )
    run.add_argument("files", nargs="+", type=Path, metavar="FILE")
    run.add_argument("--free-ports", action="store_true", help="any free TCP port per device")
    run.add_argument(
        "--run-dir",
        type=Path,
        help="where relative pty links go (default: paths.run of the config)",
    )
    run.add_argument("--no-control", action="store_true", help="no control service at the broker")
    run.set_defaults(run=_run)

    check = actions.add_parser("check", parents=[OUTPUT_OPTIONS], help="validate simulator files")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.set_defaults(run=_check)

    generate = actions.add_parser(
        "from-module",
        parents=[OUTPUT_OPTIONS],
        help="a simulator file answering every point a Modbus module file polls",
    )
    generate.add_argument("module", type=Path, metavar="MODULE.yaml")
    generate.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    generate.add_argument("--port", type=int, help="TCP port of the simulated device")
    generate.add_argument("--link", help="pty link name for an RTU line (default ttyNAME)")
    generate.add_argument("--lively", action="store_true", help="slow sines on read-only numbers")
    generate.set_defaults(run=_from_module)


def _add_service_actions(actions: Subcommands) -> None:
    """The actions on a running simulator, through its service at the broker."""
    listing = actions.add_parser(
        "list", parents=[OUTPUT_OPTIONS], help="running simulators (registered at the broker)"
    )
    listing.set_defaults(run=_list)

    status = actions.add_parser("status", parents=[OUTPUT_OPTIONS], help="a simulator's devices")
    status.add_argument("name")
    status.set_defaults(run=_status)

    inject = actions.add_parser("inject", parents=[OUTPUT_OPTIONS], help="inject a fault")
    inject.add_argument("name", help="the simulator (its file's name)")
    inject.add_argument("device")
    inject.add_argument("fault", choices=_FAULTS)
    inject.add_argument("--unit", type=int, help="one unit (default: every unit of the device)")
    inject.add_argument("--code", type=int, help="exception code (fault exception; default 4)")
    inject.add_argument("--delay", help="seconds each answer is held back (fault slow)")
    inject.add_argument("--count", type=int, help="only the next N answers (a burst)")
    inject.add_argument("--duration", help="heal after this long (e.g. 5s)")
    inject.add_argument("--downtime", help="how long a restart keeps the device away (1s)")
    inject.add_argument("--retain", action="store_true", help="a restart keeps written values")
    inject.set_defaults(run=_inject)

    heal = actions.add_parser("heal", parents=[OUTPUT_OPTIONS], help="clear faults")
    heal.add_argument("name")
    heal.add_argument("device", nargs="?")
    heal.add_argument("--unit", type=int)
    heal.set_defaults(run=_heal)

    get = actions.add_parser("get", parents=[OUTPUT_OPTIONS], help="simulated values")
    get.add_argument("name")
    get.add_argument("points", nargs="*", metavar="DEVICE.POINT", help="default: every point")
    get.set_defaults(run=_get)

    set_ = actions.add_parser("set", parents=[OUTPUT_OPTIONS], help="set a value by hand")
    set_.add_argument("name")
    set_.add_argument("point", metavar="DEVICE.POINT")
    set_.add_argument("value", help="a JSON value (42, 1.5, true); bare text is text")
    set_.set_defaults(run=_set)

    for parser in (listing, status, inject, heal, get, set_):
        add_client_options(parser)


def _run(args: argparse.Namespace) -> int:
    from hil.sim import load_sim_file
    from hil.sim._serve import serve

    config = cli_config(args)
    setup_logging(args, config)
    if not args.no_control:
        serve_as(config, "service.sim")
    files = [load_sim_file(path) for path in args.files]
    run_dir = args.run_dir or _run_dir(config.paths.run, args.environ)
    asyncio.run(
        serve(
            files,
            config,
            run_dir=run_dir,
            free_ports=args.free_ports,
            control=not args.no_control,
            json_output=args.json,
            environ=args.environ,
        )
    )
    return 0


def _run_dir(configured: Path, environ: dict[str, str]) -> Path:
    """Where pty links go: ``paths.run``; but the built-in default (``/run/plantd``, made by
    systemd on the appliance) is root's, so a user who set nothing gets a directory of their
    own instead: ``$XDG_RUNTIME_DIR/plantd``, else ``plantd-UID`` in the temp directory."""
    run_dir = Path(os.path.normpath(configured))
    if run_dir != PathsConfig().run or _usable(run_dir):
        return run_dir  # what the config says (an error later names it if it is not usable)
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and _usable(Path(runtime) / "plantd"):
        return Path(runtime) / "plantd"
    shared = Path(tempfile.gettempdir()) / f"plantd-{os.getuid()}"
    if not _usable(shared) or shared.stat().st_uid != os.getuid():
        # In a directory everyone may write, a name someone else took is not ours to trust.
        raise UsageError(
            f"no run directory for pty links: {run_dir} and {shared} are not yours to write; "
            "give one with --run-dir DIR (or paths.run)"
        )
    return shared


def _usable(directory: Path) -> bool:
    """The directory is ours to write in (made if need be, private if we made it)."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK | os.X_OK)


def _check(args: argparse.Namespace) -> int:
    from hil.sim import load_sim_file

    checked, problems = [], []
    for path in args.files:
        try:
            file = load_sim_file(path)  # ConfigError lists every problem of the file
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        points = sum(len(unit.points) for device in file.devices for unit in device.units)
        checked.append({"file": str(path), "devices": len(file.devices), "points": points})
    if problems:  # a report, like `plant config check`: every problem, exit 1
        print("\n".join(problems), file=sys.stderr)
        return 1
    emit(
        args,
        checked,
        "\n".join(
            f"{c['file']}: ok ({c['devices']} devices, {c['points']} points)" for c in checked
        ),
    )
    return 0


def _from_module(args: argparse.Namespace) -> int:
    from hil.sim import sim_from_module

    text = sim_from_module(args.module, port=args.port, link=args.link, lively=args.lively)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
        print(f"wrote {args.output} (plant sim run {args.output})", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        reply = client.request("mmi.services", b"")
    services = [s for s in json.loads(reply[0]) if str(s).startswith(_PREFIX)]
    rows = []
    with client_for(args) as client:
        for service in sorted(services):
            status = call(client, service, "status")
            rows.append(status)
    lines = [f"{'SIMULATOR':20} {'DEVICES':40} ACTIVE FAULTS"]
    for status in rows:
        devices = ", ".join(device["name"] for device in status["devices"])
        lines.append(f"{status['name']:20} {devices:40} {'; '.join(status['active']) or '-'}")
    emit(args, rows, "\n".join(lines) if rows else "no simulator is registered at the broker")
    return 0


def _status(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        status = call(client, _PREFIX + args.name, "status")
    lines = [f"{status['name']}: t = {status['t']:.1f} s"]
    for device in status["devices"]:
        where = device.get("device") or f"{device.get('host')}:{device.get('port')}"
        lines.append(
            f"  {device['name']:12} {device['transport']:13} {where:30} requests "
            f"{device['requests']:>8}, writes {device['writes']}"
        )
    lines.append("active faults: " + ("; ".join(status["active"]) or "none"))
    for key, error in status["errors"].items():
        lines.append(f"  {key}: {error}")
    emit(args, status, "\n".join(lines))
    return 0


def _inject(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"device": args.device, "fault": args.fault}
    for key in ("unit", "code", "count", "delay", "duration", "downtime"):
        value = getattr(args, key)
        if value is not None:
            params[key] = _number(value)
    if args.retain:
        params["retain"] = True
    with client_for(args) as client:
        result = call(client, _PREFIX + args.name, "inject", params)
    emit(args, result, f"injected {result['injected']}")
    return 0


def _heal(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {}
    if args.device:
        params["device"] = args.device
    if args.unit is not None:
        params["unit"] = args.unit
    with client_for(args) as client:
        result = call(client, _PREFIX + args.name, "heal", params)
    emit(args, result, f"healed {result['healed']}")
    return 0


def _get(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        points = call(client, _PREFIX + args.name, "points")
    wanted = set(args.points)
    rows = [p for p in points if not wanted or f"{p['device']}.{p['name']}" in wanted]
    missing = wanted - {f"{p['device']}.{p['name']}" for p in rows}
    if missing:
        raise UsageError(f"simulator {args.name!r} has no point {', '.join(sorted(missing))}")
    lines = [f"{'POINT':32} {'VALUE':>18}  WHERE"]
    for p in rows:
        where = f"unit {p['unit']} {p['table']} {p['address']}" if "table" in p else "internal"
        value = p["value"]
        shown = f"{value:.4g}" if isinstance(value, float) else json.dumps(value)
        lines.append(f"{p['device'] + '.' + p['name']:32} {shown:>18}  {where}")
    emit(args, {f"{p['device']}.{p['name']}": p["value"] for p in rows}, "\n".join(lines))
    return 0


def _set(args: argparse.Namespace) -> int:
    device, _, point = args.point.partition(".")
    if not point:
        raise UsageError(f"expected DEVICE.POINT, got {args.point!r}")
    try:
        value = json.loads(args.value)
    except json.JSONDecodeError:
        value = args.value
    params = {"device": device, "point": point, "value": value}
    with client_for(args) as client:
        result = call(client, _PREFIX + args.name, "set", params)
    emit(args, result, f"set {args.point} to {json.dumps(result['value'])}")
    return 0


def _number(text: object) -> object:
    """``"2"`` → 2, ``"0.5"`` → 0.5; durations such as ``"5s"`` stay text for the service."""
    if not isinstance(text, str):
        return text
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text
