"""``plant opcua browse ENDPOINT [PATH]``: look around a server while writing a module file.

    plant opcua browse opc.tcp://10.0.0.5:4840                 # what is below Objects
    plant opcua browse opc.tcp://10.0.0.5:4840 2:Line1 --depth 2
    plant opcua browse opc.tcp://… --policy Basic256Sha256 --mode SignAndEncrypt \\
        --trust server.der --certificate me.der --private-key me.pem --user op --password …

Each line shows a node's browse path (usable as ``path:`` in a module file, namespace by
index), its class, NodeId (``node:``), data type and current value. The namespace table comes
first, so that indexes can be turned into aliases (``connection.namespaces``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from plantd.cli import OUTPUT_OPTIONS, Subcommands

__all__ = ["register"]


def register(sub: Subcommands) -> None:
    """Add ``plant opcua browse`` (the ``plantd.cli`` entry point)."""
    opcua = sub.add_parser("opcua", help="OPC UA tools (browse a server)")
    actions = opcua.add_subparsers(dest="opcua_command", metavar="ACTION", required=True)
    browse = actions.add_parser(
        "browse", parents=[OUTPUT_OPTIONS], help="list the nodes below Objects or below PATH"
    )
    browse.add_argument("endpoint", help="opc.tcp://HOST:PORT[/PATH]")
    browse.add_argument(
        "path", nargs="?", default="", help="browse path below Objects, e.g. 2:Line1"
    )
    browse.add_argument("--depth", type=int, default=1, help="levels to list (default 1)")
    browse.add_argument("--policy", choices=["None", "Basic256Sha256"], default="None")
    browse.add_argument("--mode", choices=["None", "Sign", "SignAndEncrypt"], default=None)
    browse.add_argument("--certificate", type=Path, help="client certificate (made if missing)")
    browse.add_argument("--private-key", type=Path, help="client private key")
    browse.add_argument("--trust", type=Path, action="append", default=[], help="server cert")
    browse.add_argument("--user")
    browse.add_argument("--password")
    browse.add_argument("--timeout", type=float, default=4.0)
    browse.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from plantd_drivers.opcua._browse import run  # asyncua is imported only now

    return run(args)
