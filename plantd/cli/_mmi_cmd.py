"""``plant mmi services|workers|broker|service NAME``: ask the broker about itself (RFC 8)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from plantd.cli._call_cmd import add_client_options, client_for
from plantd.cli._common import OUTPUT_OPTIONS, emit

__all__ = ["register"]


def register(sub: Any) -> None:
    mmi = sub.add_parser(
        "mmi", parents=[OUTPUT_OPTIONS], help="query the broker's management interface"
    )
    what = mmi.add_subparsers(dest="mmi_command", metavar="QUERY", required=True)
    services = what.add_parser(
        "services", parents=[OUTPUT_OPTIONS], help="services with at least one worker"
    )
    services.set_defaults(run=_services)
    workers = what.add_parser(
        "workers",
        parents=[OUTPUT_OPTIONS],
        help="idle/busy workers and queued requests per service",
    )
    workers.add_argument("service", nargs="?", default="", help="only this service")
    workers.set_defaults(run=_workers)
    broker = what.add_parser("broker", parents=[OUTPUT_OPTIONS], help="uptime and counters")
    broker.set_defaults(run=_broker)
    service = what.add_parser(
        "service", parents=[OUTPUT_OPTIONS], help="is a worker registered for NAME? (exit 0 if so)"
    )
    service.add_argument("name")
    service.set_defaults(run=_service)
    for parser in (services, workers, broker, service):
        add_client_options(parser)


def _ask(args: argparse.Namespace, service: str, argument: str = "") -> bytes:
    with client_for(args) as client:
        return client.request(service, argument.encode())[0]


def _services(args: argparse.Namespace) -> int:
    names = json.loads(_ask(args, "mmi.services"))
    emit(args, names, "\n".join(names) if names else "(no services)")
    return 0


def _workers(args: argparse.Namespace) -> int:
    table: dict[str, dict[str, int]] = json.loads(_ask(args, "mmi.workers", args.service))
    rows = [f"{'SERVICE':40} {'IDLE':>5} {'BUSY':>5} {'QUEUED':>7}"]
    for name in sorted(table):
        row = table[name]
        rows.append(f"{name:40} {row['idle']:>5} {row['busy']:>5} {row['queued']:>7}")
    emit(args, table, "\n".join(rows))
    return 0


def _broker(args: argparse.Namespace) -> int:
    info = json.loads(_ask(args, "mmi.broker"))
    lines = [
        f"version   {info['version']}",
        f"uptime    {info['uptime']:.0f} s",
        f"workers   {info['workers']} ({info['services']} services)",
        f"queued    {info['queued']}",
        "counters  " + ", ".join(f"{k}={v}" for k, v in sorted(info["counters"].items())),
    ]
    emit(args, info, "\n".join(lines))
    return 0


def _service(args: argparse.Namespace) -> int:
    code = _ask(args, "mmi.service", args.name).decode()
    found = code == "200"
    emit(
        args,
        {"service": args.name, "code": code, "found": found},
        f"{code} {'found' if found else 'not found'}: {args.name}",
    )
    return 0 if found else 1
