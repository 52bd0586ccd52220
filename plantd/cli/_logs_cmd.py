"""``plant logs [-f] [--service SOURCE] [--level L] [--since T] [--until T] [--contains TEXT]
[-n N]``: search and follow every process's log records, kept by ``plantd-logger``.

A search asks ``org.plantd.Logger`` for the newest ``N`` records matching the filters and
prints them oldest first (the newest next to the prompt), one a line: ``TIME LEVEL SOURCE
LOGGER: MESSAGE key=value…``, a traceback indented below. ``-f`` then polls for the records
after the last one printed every 0.25 s, through the broker — so it follows from another
machine as well, and across a restart of the logger or the broker — until Ctrl-C (exit 0).
``--since``/``--until`` take a duration back from now (``90s``, ``10m``, ``1h``) or an ISO
8601 time. ``--json``: one JSON record a line.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
import time
from typing import Any

from plantd.cli._audit_cmd import parse_when
from plantd.cli._common import OUTPUT_OPTIONS, add_client_options, client_for
from plantd.client import Client
from plantd.errors import NoBroker, NoWorker, RequestTimeout, UsageError
from plantd.telemetry import LEVELS

__all__ = ["format_record", "register"]

SERVICE = "org.plantd.Logger"
_PAGE = 5000
_POLL = 0.25


def register(sub: Any) -> None:
    logs = sub.add_parser(
        "logs",
        parents=[OUTPUT_OPTIONS],
        help="search every process's log records, or follow them (-f)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    logs.add_argument(
        "-f", "--follow", action="store_true", help="then print new records as they come"
    )
    logs.add_argument(
        "--service",
        metavar="SOURCE",
        help="only this source and those below it (state, module.boiler), or a prefix "
        "ending in a dot (module.)",
    )
    logs.add_argument("--level", help=f"this level and above ({', '.join(LEVELS)}; default: all)")
    logs.add_argument("--since", help="a duration back from now (10m, 1h, 2d) or an ISO time")
    logs.add_argument("--until", help="same forms as --since (default: now)")
    logs.add_argument("--contains", metavar="TEXT", help="only messages containing TEXT")
    logs.add_argument(
        "-n",
        "--lines",
        type=int,
        default=None,
        metavar="N",
        help="the newest N records (default 100; 10 with -f)",
    )
    add_client_options(logs)
    logs.set_defaults(run=_logs)


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    from plantd.logger import level_number

    params: dict[str, Any] = {}
    if args.level:
        if level_number(args.level) is None:
            raise UsageError(
                f"--level: unknown level {args.level!r}: expected one of {', '.join(LEVELS)}"
            )
        params["level"] = args.level
    now = time.time()
    for option in ("since", "until"):
        text = getattr(args, option)
        if text:
            params[option] = parse_when(f"--{option}", text, now)
    if args.service:
        params["source"] = args.service
    if args.contains:
        params["contains"] = args.contains
    return params


def _logs(args: argparse.Namespace) -> int:
    from plantd.service import call

    lines = args.lines if args.lines is not None else (10 if args.follow else 100)
    if lines < 0:
        raise UsageError(f"-n: expected 0 or more, got {lines}")
    params = _filters(args)
    records: list[dict[str, Any]] = []
    more = False
    with client_for(args) as client:
        while len(records) < lines:
            page_params = {**params, "limit": min(_PAGE, lines - len(records))}
            if records:
                page_params["before_id"] = records[-1]["id"]
            page = call(client, SERVICE, "query", page_params)
            records.extend(page["records"])
            more = page["more"]
            if not more or not page["records"]:
                break
        records.reverse()  # oldest first
        for record in records:
            _print(args, record)
        if not args.follow:
            if not records and not args.json:
                print("(no log records match)", file=sys.stderr)
            elif more and not args.json:
                print("(older records match too: raise -n or narrow --since)", file=sys.stderr)
            return 0
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends a follow: that is no error
            _follow(args, client, params, records[-1]["id"] if records else None)
    return 0


def _follow(
    args: argparse.Namespace, client: Client, params: dict[str, Any], last: int | None
) -> None:
    from plantd.service import call

    if last is None:
        # Nothing matches yet: start after the newest record of all, not from the beginning.
        newest = call(client, SERVICE, "query", {"limit": 1})["records"]
        last = newest[0]["id"] if newest else 0
    params = {key: value for key, value in params.items() if key != "until"}
    waiting = False
    while True:
        try:
            page = call(client, SERVICE, "query", {**params, "after_id": last, "limit": _PAGE})
        except (NoBroker, NoWorker, RequestTimeout) as exc:
            # Following outlives a restart of the logger or the broker: say so once, go on.
            if not waiting:
                print(f"plant logs: waiting: {exc}", file=sys.stderr)
                waiting = True
            time.sleep(_POLL)
            continue
        if waiting:
            print("plant logs: following again", file=sys.stderr)
            waiting = False
        for record in page["records"]:
            _print(args, record)
            last = record["id"]
        if not page["more"]:
            time.sleep(_POLL)


def _print(args: argparse.Namespace, record: dict[str, Any]) -> None:
    line = json.dumps(record, sort_keys=True) if args.json else format_record(record)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def format_record(record: dict[str, Any]) -> str:
    """``TIME LEVEL SOURCE LOGGER: MESSAGE key=value…``, an ``exc`` indented below."""
    fields = dict(record.get("fields") or {})
    exc = fields.pop("exc", None)
    stamp = dt.datetime.fromtimestamp(float(record["time"])).isoformat(timespec="milliseconds")
    logger = record.get("logger") or "-"
    text = f"{stamp} {str(record['level']).upper():8} {record['source']} {logger}: "
    text += str(record["message"])
    for key, value in fields.items():
        shown = value if isinstance(value, str) and value and " " not in value else None
        text += f" {key}={shown if shown is not None else json.dumps(value)}"
    if exc:
        text += "\n" + "\n".join("    " + line for line in str(exc).rstrip().splitlines())
    return text
