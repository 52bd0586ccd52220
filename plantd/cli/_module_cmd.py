"""``plant module run|host|status|read|write``: run modules, or talk to a running one."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
from typing import Any

from plantd.cli._call_cmd import add_client_options, client_for
from plantd.cli._common import OUTPUT_OPTIONS, cli_config, emit, serve_as, setup_logging
from plantd.service import call

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    module = sub.add_parser("module", help="run a module, or query and command a running one")
    actions = module.add_subparsers(dest="module_command", metavar="ACTION", required=True)

    run = actions.add_parser(
        "run", parents=[OUTPUT_OPTIONS], help="run modules.d/NAME.yaml in the foreground"
    )
    run.add_argument("name")
    run.set_defaults(run=_run)

    host = actions.add_parser(
        "host",
        parents=[OUTPUT_OPTIONS],
        help="run every module of modules.d/ but the isolated ones (or those named) in one "
        "process, each with its own key",
    )
    host.add_argument("names", nargs="*", metavar="NAME", help="only these modules")
    host.set_defaults(run=_host)

    status = actions.add_parser("status", parents=[OUTPUT_OPTIONS], help="a module's status")
    status.add_argument("name")
    status.set_defaults(run=_status)

    read = actions.add_parser("read", parents=[OUTPUT_OPTIONS], help="last values of points")
    read.add_argument("name")
    read.add_argument("points", nargs="*", help="point names (default: all)")
    read.add_argument("--fresh", action="store_true", help="read the device now")
    read.set_defaults(run=_read)

    write = actions.add_parser("write", parents=[OUTPUT_OPTIONS], help="write a value to a point")
    write.add_argument("name")
    write.add_argument("point")
    write.add_argument("value", help='a JSON value (42, 1.5, true, "text"); bare text is text')
    write.set_defaults(run=_write)

    for parser in (status, read, write):
        add_client_options(parser)


def _run(args: argparse.Namespace) -> int:
    from plantd.module._host import ModuleLogField
    from plantd.module._main import run_module
    from plantd.telemetry import start_telemetry

    config = cli_config(args)
    setup_logging(args, config)
    # Every record names the module (field `module`), on the bus as in the journal and JSON.
    field = ModuleLogField(args.name)
    for handler in logging.getLogger().handlers:
        handler.addFilter(field)
    serve_as(config, f"module.{args.name}")
    # Its records and metrics as module.NAME, with the module's key.
    with start_telemetry(config, f"module.{args.name}", filters=(field,)):
        asyncio.run(run_module(config, args.name, args.environ))
    return 0


def _module_source(record: logging.LogRecord) -> str | None:
    """A hosted module's records go out as ``module.<name>`` (ModuleLogField's field)."""
    name = getattr(record, "PLANTD_MODULE", None)
    return f"module.{name}" if name else None


def _host(args: argparse.Namespace) -> int:
    from plantd.errors import SecurityError
    from plantd.logs import configure_logging
    from plantd.module._host import ModuleLogField
    from plantd.module._main import run_host
    from plantd.security import assume_identity, service_identity
    from plantd.telemetry import start_telemetry

    config = cli_config(args)
    # Named as the unit is; each record says which module it comes from (PLANTD_MODULE).
    configure_logging(
        args.log_level or config.logging.level,
        config.logging.format,
        under_journal="JOURNAL_STREAM" in args.environ,
        fields={"SYSLOG_IDENTIFIER": "plantd-modules", "PLANTD_SERVICE": "module"},
        filters=[ModuleLogField()],
    )
    # No identity for the process: every module's sockets are given that module's key.
    assume_identity(config, None)
    # The host's own key (service.modules) is for what it reports: its records as `modules`,
    # each module's as module.<name>, and its metrics.
    telemetry: contextlib.AbstractContextManager[object]
    try:
        identity = service_identity(config, "service.modules")
    except SecurityError as exc:
        log.warning("the module host's records and metrics stay off the bus: %s", exc)
        telemetry = contextlib.nullcontext()
    else:
        telemetry = start_telemetry(
            config, "modules", credentials=identity, route=_module_source,
            filters=(ModuleLogField(),),
        )  # fmt: skip
    with telemetry:
        asyncio.run(run_host(config, args.names, args.environ))
    return 0


def _service(name: str) -> str:
    return f"org.plantd.module.{name}"


def _status(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        status = call(client, _service(args.name), "status")
    emit(args, status, status_text(status))
    return 0


def status_text(status: dict[str, Any]) -> str:
    """The plain-text form of a module's status (``--json`` shows all of it)."""
    connection = status["connection"]
    lines = [
        f"module      {status['module']} (driver {status['driver']})",
        f"connection  {connection['state']} for {connection['for']:.0f} s"
        + (f", last error: {connection['last_error']}" if connection["last_error"] else ""),
        f"points      {status['points']} ({status['bad_points']} bad), "
        f"published {status['published']}, suppressed by deadband {status['suppressed']}",
        f"{'GROUP':20} {'INTERVAL':>9} {'POLLS':>8} {'OVERRUNS':>9} {'FAILURES':>9}  ERROR",
    ]
    for name, group in status["groups"].items():
        lines.append(
            f"{name:20} {group['interval']:>8g}s {group['polls']:>8} {group['overruns']:>9} "
            f"{group['failures']:>9}  {group['error'] or ''}"
        )
    lines.extend(_units_down(status.get("driver_status") or {}))
    return "\n".join(lines)


def _units_down(driver_status: dict[str, Any]) -> list[str]:
    """Units of a shared line a driver has quarantined, and requests it holds back (Modbus):
    their points are bad without a request going out, which a group's row does not show."""
    lines = []
    units = driver_status.get("units")
    for unit, info in sorted((units if isinstance(units, dict) else {}).items()):
        if not isinstance(info, dict) or info.get("state", "ok") == "ok":
            continue
        wait = info.get("next_try_in")
        when = f", next try in {wait:.3g} s" if isinstance(wait, int | float) else ""
        why = f": {info['why']}" if info.get("why") else ""
        lines.append(f"unit {unit:<6} {info['state']}{when}{why}")
    held = driver_status.get("held_back")
    for request in held if isinstance(held, list) else []:
        lines.append(
            f"unit {request['unit']:<6} FC {request['function']} from {request['address']}, "
            f"{request['count']} held back after exception {request['exception']}, "
            f"next try in {request['next_try_in']:.3g} s"
        )
    return lines


def _read(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"fresh": args.fresh}
    if args.points:
        params["points"] = args.points
    with client_for(args) as client:
        values = call(client, _service(args.name), "read", params)
    lines = [f"{'POINT':24} {'VALUE':>16} {'QUALITY':8} TIMESTAMP"]
    for name, reading in values.items():
        shown = json.dumps(reading["value"]) if reading["value"] is not None else "-"
        extra = f"  ({reading['error']})" if reading.get("error") else ""
        lines.append(
            f"{name:24} {shown:>16} {reading['quality']:8} {reading['timestamp']:.3f}{extra}"
        )
    emit(args, values, "\n".join(lines))
    return 0


def _write(args: argparse.Namespace) -> int:
    try:
        value = json.loads(args.value)
    except json.JSONDecodeError:
        value = args.value
    with client_for(args) as client:
        result = call(client, _service(args.name), "write", {"point": args.point, "value": value})
    emit(args, result, f"wrote {json.dumps(result['value'])} to {args.name}.{result['point']}")
    return 0
