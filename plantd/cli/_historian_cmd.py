"""``plant historian run|status`` and ``plant history POINT --since 1h [--csv]``."""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import json
import sys
import time
from typing import Any

from plantd.cli._call_cmd import add_client_options, client_for
from plantd.cli._common import OUTPUT_OPTIONS, cli_config, emit, serve_as, setup_logging
from plantd.config._units import parse_duration
from plantd.errors import UsageError
from plantd.service import call

__all__ = ["parse_when", "register"]

SERVICE = "org.plantd.Historian"
_PAGE = 5000


def register(sub: Any) -> None:
    historian = sub.add_parser("historian", help="run the historian, or ask it for its status")
    actions = historian.add_subparsers(dest="historian_command", metavar="ACTION", required=True)
    run = actions.add_parser("run", parents=[OUTPUT_OPTIONS], help="run it in the foreground")
    run.set_defaults(run=_run)
    status = actions.add_parser("status", parents=[OUTPUT_OPTIONS], help="its counters")
    add_client_options(status)
    status.set_defaults(run=_status)

    history = sub.add_parser(
        "history",
        parents=[OUTPUT_OPTIONS],
        help="print the stored history of points (a name like pump1.flow, or a glob: 'pump1.*')",
    )
    history.add_argument("point", help="module.point, or a glob such as 'pump1.*'")
    history.add_argument(
        "--since", default="1h", help="a duration back from now (90s, 15m, 1h) or an ISO time"
    )
    history.add_argument("--until", default=None, help="same forms as --since (default: now)")
    history.add_argument(
        "--resolution", choices=("raw", "minute", "hour"), default="raw", help="default raw"
    )
    history.add_argument("--limit", type=int, default=100_000, help="most rows to print")
    history.add_argument("--csv", action="store_true", help="CSV with a header line")
    add_client_options(history)
    history.set_defaults(run=_history)


def parse_when(text: str, now: float) -> float:
    """``"1h"`` -> now - 3600; ``"2024-05-01T12:00"`` -> that time (local unless it says)."""
    seconds = parse_duration(text)
    if seconds is not None:
        return now - seconds
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"expected a duration back from now (90s, 15m, 1h) or an ISO time, got {text!r}"
        ) from None
    return moment.timestamp()


def _run(args: argparse.Namespace) -> int:
    from plantd.historian import run_historian

    config = cli_config(args)
    setup_logging(args, config)
    serve_as(config, "service.historian")
    asyncio.run(run_historian(config))
    return 0


def _status(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        status = call(client, SERVICE, "status")
    last = status["last_commit"]
    lines = [
        f"database    {status['database']} ({status['used_bytes']:,} bytes used "
        f"of max {status['max_bytes']:,})",
        f"points      {status['points']}",
        f"samples     received {status['received']:,}, stored {status['stored']:,}, "
        f"pending {status['pending']}, missing on the bus {status['missing_on_bus']}",
        f"batches     {status['batches']:,} (failed {status['failed_batches']}), last commit "
        + (f"{time.time() - last:.1f} s ago" if last else "never"),
        f"retention   deleted by age {status['deleted_by_age']:,}, "
        f"by size {status['deleted_by_size']:,}",
    ]
    if status["last_error"]:
        lines.append(f"last error  {status['last_error']}")
    emit(args, status, "\n".join(lines))
    return 0


def _history(args: argparse.Namespace) -> int:
    now = time.time()
    since = parse_when(args.since, now)
    until = parse_when(args.until, now) if args.until else now
    rows: list[list[Any]] = []
    columns: list[str] = []
    after = None
    with client_for(args) as client:
        while len(rows) < args.limit:
            params: dict[str, Any] = {
                "points": args.point,
                "since": since,
                "until": until,
                "resolution": args.resolution,
                "limit": min(_PAGE, args.limit - len(rows)),
            }
            if after is not None:
                params["after"] = after
            page = call(client, SERVICE, "query", params)
            columns = page["columns"]
            rows.extend(page["rows"])
            after = page["next"]
            if after is None:
                break
    if args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
        return 0
    if args.json:
        emit(args, {"columns": columns, "rows": rows}, "")
        return 0
    if not rows:
        print(f"no samples of {args.point!r} in that time range", file=sys.stderr)
        return 0
    lines = []
    if args.resolution == "raw":
        lines.append(f"{'TIME':26} {'POINT':28} {'VALUE':>16} QUALITY")
        for point, stamp, value, quality, _, _ in rows:
            lines.append(f"{_stamp(stamp):26} {point:28} {json.dumps(value):>16} {quality}")
    else:
        lines.append(
            f"{'BUCKET':26} {'POINT':28} {'MIN':>12} {'MAX':>12} {'MEAN':>12} {'COUNT':>7}"
        )
        for point, bucket, low, high, mean, count in rows:
            lines.append(
                f"{_stamp(bucket):26} {point:28} {low:>12.6g} {high:>12.6g} {mean:>12.6g} "
                f"{count:>7}"
            )
    print("\n".join(lines))
    return 0


def _stamp(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds).isoformat(timespec="milliseconds")
