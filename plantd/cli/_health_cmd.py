"""``plant health``: is the plant's software healthy? Asks ``org.plantd.Health``
(plantd-logger), prints one line per process, module, sink and the disk, then the verdict.

Exit 0 when everything is ok, 1 when something is degraded or failed — so a script or a
monitoring check can run it as is; 3 (no broker) or 4 (no plantd-logger) when nobody can say.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from plantd.cli._common import OUTPUT_OPTIONS, add_client_options, client_for, emit, exit_status
from plantd.errors import NoBroker, NoWorker
from plantd.service import call

__all__ = ["SERVICE", "register"]

SERVICE = "org.plantd.Health"


def register(sub: Any) -> None:
    health = sub.add_parser(
        "health",
        parents=[OUTPUT_OPTIONS],
        help="the health of every process, module and sink (exit 0 only when all are ok)",
    )
    add_client_options(health)
    health.set_defaults(run=_health)


def _health(args: argparse.Namespace) -> int:
    try:
        with client_for(args) as client:
            report = call(client, SERVICE, "check")
    except NoWorker as exc:
        print(f"plant: plantd-logger is not running: {exc}", file=sys.stderr)
        return exit_status(exc)
    except NoBroker as exc:
        print(
            f"plant: {exc}; plantd-logger, which judges health, is not reachable", file=sys.stderr
        )
        return exit_status(exc)
    services = report["services"]
    width = max([len("SERVICE"), *(len(s["name"]) for s in services)])
    lines = [f"{'SERVICE':{width}}  {'VERDICT':8}  REASONS"]
    for service in services:
        reasons = "; ".join(service["reasons"])
        lines.append(f"{service['name']:{width}}  {service['verdict']:8}  {reasons}".rstrip())
    lines.append(f"overall: {report['verdict']}")
    emit(args, report, "\n".join(lines))
    return 0 if report["ok"] else 1
