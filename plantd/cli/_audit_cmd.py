"""``plant audit [list] | follow | verify | status``: read the audit trail the broker keeps.

``list`` (the default) asks ``org.plantd.Audit`` for the newest records matching the filters
and prints them oldest first, so the newest is at the bottom; ``--since``/``--until`` take a
duration back from now (``90s``, ``10m``, ``1h``, ``2d``) or an ISO 8601 time (local unless
it names a zone). ``follow`` prints each record as the broker publishes it on
``event.audit.<action>``; ``verify`` recomputes the hash chain and exits 1 if it is broken.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import time
from typing import Any

from plantd.cli._call_cmd import client_for
from plantd.cli._common import OUTPUT_OPTIONS, cli_config, emit
from plantd.cli._follow import follow_records
from plantd.config._units import parse_duration
from plantd.errors import UsageError

__all__ = ["parse_when", "register"]

_PAGE = 5000
_DETAIL_WIDTH = 60


def register(sub: Any) -> None:
    audit = sub.add_parser(
        "audit",
        parents=[OUTPUT_OPTIONS],
        help="read the audit trail: who did what, when, with what result",
    )
    _add_list_options(audit, None)
    audit.set_defaults(run=_list)
    actions = audit.add_subparsers(dest="audit_command", metavar="ACTION")
    listing = actions.add_parser(
        "list", parents=[OUTPUT_OPTIONS], help="the newest records matching filters (default)"
    )
    # SUPPRESS: options given before `list` (`plant audit --since 1h list`) are kept.
    _add_list_options(listing, argparse.SUPPRESS)
    listing.set_defaults(run=_list)

    follow = actions.add_parser(
        "follow", parents=[OUTPUT_OPTIONS], help="print records as they are written (Ctrl-C ends)"
    )
    follow.add_argument("--action", help="only this action (call, register, publish, …)")
    follow.add_argument("--principal", help="only this principal")
    follow.add_argument("--result", help="only this result (ok, denied, an error code)")
    follow.add_argument("--count", type=int, default=0, metavar="N", help="exit after N records")
    follow.set_defaults(run=_follow)

    for name, help_text, run in (
        ("verify", "recompute the hash chain; exit 1 if a record was altered or removed", _verify),
        ("status", "records, time span and size of the audit file", _status),
    ):
        parser = actions.add_parser(name, parents=[OUTPUT_OPTIONS], help=help_text)
        _add_client_options(parser, None)
        parser.set_defaults(run=run)


def _add_client_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--timeout", type=float, default=default, help="seconds per attempt (client.timeout)"
    )
    parser.add_argument(
        "--retries", type=int, default=default, help="attempts after a timeout (client.retries)"
    )


def _add_list_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--since", default=default, help="a duration back from now (10m, 1h, 2d) or an ISO time"
    )
    parser.add_argument("--until", default=default, help="same forms as --since (default: now)")
    parser.add_argument("--principal", default=default, help="only this principal")
    parser.add_argument("--action", default=default, help="only this action (call, connect, …)")
    parser.add_argument("--result", default=default, help="only this result (ok, denied, …)")
    parser.add_argument("--target", default=default, metavar="PREFIX", help="target starts so")
    parser.add_argument(
        "--limit",
        type=int,
        default=100 if default is None else default,
        metavar="N",
        help="at most N records, the newest (default 100)",
    )
    _add_client_options(parser, default)


def parse_when(option: str, text: str, now: float) -> float:
    """Unix seconds from ``"10m"`` (now - 600), ``"2d"`` or an ISO 8601 time.

    A time without a zone is local. Raises :class:`UsageError` naming ``option`` and ``text``.
    """
    seconds = parse_duration(text)
    if seconds is not None:
        if seconds < 0 or not math.isfinite(seconds):
            raise UsageError(f"{option}: a duration back from now cannot be {text!r}")
        return now - seconds
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{option}: expected a duration back from now (90s, 10m, 1h, 2d) or an ISO 8601 "
            f"time (2024-05-01T12:00, 2024-05-01T12:00:00+02:00), got {text!r}"
        ) from None
    return moment.timestamp()


def _list(args: argparse.Namespace) -> int:
    from plantd.audit import AUDIT_SERVICE
    from plantd.service import call

    if args.limit < 1:
        raise UsageError(f"--limit: expected at least 1, got {args.limit}")
    now = time.time()
    params: dict[str, Any] = {}
    for option in ("since", "until"):
        text = getattr(args, option)
        if text:
            params[option] = parse_when(f"--{option}", text, now)
    for key in ("principal", "action", "result", "target"):
        value = getattr(args, key)
        if value:
            params[key] = value
    records: list[dict[str, Any]] = []
    more = False
    with client_for(args) as client:
        while len(records) < args.limit:
            page_params = {**params, "limit": min(_PAGE, args.limit - len(records))}
            if records:
                page_params["before_id"] = records[-1]["id"]
            page = call(client, AUDIT_SERVICE, "query", page_params)
            records.extend(page["records"])
            more = page["more"]
            if not more or not page["records"]:
                break
    emit(args, {"records": records, "more": more}, _table(records, more))
    return 0


def _table(records: list[dict[str, Any]], more: bool) -> str:
    if not records:
        return "(no audit records match)"
    rows = [
        (
            _stamp(r["time"]),
            r["principal"],
            r["action"],
            r["target"],
            r["result"],
            str(r["count"]),
            _cut(r["detail"]),
        )
        for r in reversed(records)  # oldest first: the newest ends up next to the prompt
    ]
    header = ("TIME", "PRINCIPAL", "ACTION", "TARGET", "RESULT", "COUNT", "DETAIL")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(width) if index == 5 else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    if more:
        lines.append("(older records match too: raise --limit or narrow --since)")
    return "\n".join(lines)


def _stamp(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds).isoformat(timespec="seconds")


def _cut(text: str) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= _DETAIL_WIDTH else text[: _DETAIL_WIDTH - 1] + "…"


def _follow(args: argparse.Namespace) -> int:
    config = cli_config(args)
    topic = f"event.audit.{args.action}" if args.action else "event.audit."
    return follow_records(
        config.bus.backend,
        topic,
        exact=bool(args.action),
        count=args.count,
        line=lambda record: _audit_line(args, record),
    )


def _audit_line(args: argparse.Namespace, record: dict[str, Any]) -> str | None:
    """A followed record's line, or None when ``--principal``/``--result`` leave it out."""
    if args.principal and record.get("principal") != args.principal:
        return None
    if args.result and record.get("result") != args.result:
        return None
    if args.json:
        return json.dumps(record, sort_keys=True)
    return "  ".join(
        [
            _stamp(float(record.get("time", 0.0))),
            str(record.get("principal", "")),
            str(record.get("action", "")),
            str(record.get("target", "")),
            str(record.get("result", "")),
            f"×{record.get('count', 1)}",
            _cut(str(record.get("detail", ""))),
        ]
    ).rstrip()


def _verify(args: argparse.Namespace) -> int:
    from plantd.audit import AUDIT_SERVICE
    from plantd.service import call

    with client_for(args) as client:
        result = call(client, AUDIT_SERVICE, "verify")
    if result["ok"]:
        human = f"ok: the hash chain of {result['checked']:,} record(s) verifies"
    else:
        human = (
            f"BROKEN: record {result['first_bad_id']} is missing or altered "
            f"({result['checked']:,} record(s) checked)"
        )
    emit(args, result, human)
    return 0 if result["ok"] else 1


def _status(args: argparse.Namespace) -> int:
    from plantd.audit import AUDIT_SERVICE
    from plantd.service import call

    with client_for(args) as client:
        status = call(client, AUDIT_SERVICE, "status")
    span = (
        f"{_stamp(status['oldest'])} … {_stamp(status['newest'])}"
        if status["oldest"] is not None
        else "(empty)"
    )
    lines = [
        f"database  {status['database']} ({status['bytes']:,} bytes)",
        f"records   {status['count']:,} ({status['events']:,} events), {status['pruned']:,} pruned",
        f"span      {span}",
    ]
    emit(args, status, "\n".join(lines))
    return 0
