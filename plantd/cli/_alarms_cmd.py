"""``plant alarms [list] | ack | shelve | unshelve | history | watch``: the alarms of
``plantd-control`` (``org.plantd.Alarms``) from the command line.

``list`` (the default) prints one alarm a line, most urgent first: by priority (urgent, high,
medium, low), then by state (``unacknowledged`` before ``returned`` before ``acknowledged``
before ``normal``: what still needs someone first), then newest first. The STATE column adds
the flags ``shelved`` and ``suppressed`` (``acknowledged,shelved``); SINCE is the time of the
alarm's last transition (the time of day when it is today, else the date too).

``ack NAME…`` acknowledges each alarm named (``--all``: every unacknowledged one) one call
each, so one refused alarm (``alarm.unknown``, ``alarm.not-acknowledgeable``) is named and the
others are still acknowledged; the exit status is 1 if any was refused. ``shelve NAME --for
30m`` hides an alarm's annunciation for that long (``90s``, ``15m``, ``2h``; at most 30 days);
``history`` prints past transitions oldest first (``--since``: a duration back from now or an
ISO 8601 time); ``watch`` prints each transition as ``plantd-control`` publishes it on
``event.alarm.<name>``, until Ctrl-C (exit 0).

A refusal prints ``plant: CODE: MESSAGE`` on stderr (``--json``: ``{"ok": false, "error":
{…}}`` on stdout) and exits 1; no ``plantd-control`` is exit 4 (docs/errors.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from plantd.cli._audit_cmd import parse_when
from plantd.cli._common import (
    OUTPUT_OPTIONS,
    add_client_options,
    cli_config,
    client_for,
    emit,
    refused,
)
from plantd.cli._follow import follow_records
from plantd.config._units import parse_duration
from plantd.errors import ServiceError, UsageError

__all__ = [
    "ALARMS_SERVICE",
    "PRIORITIES",
    "alarm_table",
    "history_table",
    "parse_shelve_duration",
    "register",
    "sort_alarms",
    "stamp",
    "transition_line",
]

ALARMS_SERVICE = "org.plantd.Alarms"
PRIORITIES = ("urgent", "high", "medium", "low")
_STATE_ORDER = ("unacknowledged", "returned", "acknowledged", "normal")
_MAX_SHELVE = 30 * 86400.0  # the engine's limit (plantd.control._alarm.MAX_SHELVE)
_MESSAGE_WIDTH = 60


def register(sub: Any) -> None:
    alarms = sub.add_parser(
        "alarms",
        parents=[OUTPUT_OPTIONS],
        help="list, acknowledge, shelve and follow the alarms of plantd-control",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_list_options(alarms, None)
    alarms.set_defaults(run=_list)
    actions = alarms.add_subparsers(dest="alarms_command", metavar="ACTION")

    listing = actions.add_parser(
        "list", parents=[OUTPUT_OPTIONS], help="every alarm, most urgent first (default)"
    )
    # SUPPRESS: options given before `list` (`plant alarms --active list`) are kept.
    _add_list_options(listing, argparse.SUPPRESS)
    listing.set_defaults(run=_list)

    ack = actions.add_parser("ack", parents=[OUTPUT_OPTIONS], help="acknowledge alarms")
    ack.add_argument("names", nargs="*", metavar="NAME", help="the alarms to acknowledge")
    ack.add_argument("--all", action="store_true", help="every unacknowledged alarm")
    ack.add_argument("--comment", default="", metavar="TEXT", help="recorded with the ack")
    add_client_options(ack, argparse.SUPPRESS)
    ack.set_defaults(run=_ack)

    shelve = actions.add_parser(
        "shelve", parents=[OUTPUT_OPTIONS], help="hide an alarm's annunciation for a while"
    )
    shelve.add_argument("name", metavar="NAME")
    shelve.add_argument(
        "--for", dest="duration", required=True, metavar="DURATION", help="90s, 15m, 2h (≤ 30d)"
    )
    shelve.add_argument("--reason", default="", metavar="TEXT", help="recorded with it")
    add_client_options(shelve, argparse.SUPPRESS)
    shelve.set_defaults(run=_shelve)

    unshelve = actions.add_parser("unshelve", parents=[OUTPUT_OPTIONS], help="end a shelving")
    unshelve.add_argument("name", metavar="NAME")
    add_client_options(unshelve, argparse.SUPPRESS)
    unshelve.set_defaults(run=_unshelve)

    history = actions.add_parser(
        "history", parents=[OUTPUT_OPTIONS], help="past transitions, oldest first"
    )
    history.add_argument("name", nargs="?", metavar="NAME", help="only this alarm")
    history.add_argument("--since", default="1h", help="a duration back (1h) or an ISO time")
    history.add_argument("--until", help="same forms as --since (default: now)")
    history.add_argument("--limit", type=int, default=100, metavar="N", help="the newest N")
    add_client_options(history, argparse.SUPPRESS)
    history.set_defaults(run=_history)

    watch = actions.add_parser(
        "watch", parents=[OUTPUT_OPTIONS], help="print transitions as they happen (Ctrl-C ends)"
    )
    watch.add_argument("name", nargs="?", metavar="NAME", help="only this alarm")
    watch.add_argument("--count", type=int, default=0, metavar="N", help="exit after N")
    watch.set_defaults(run=_watch)


def _add_list_options(parser: argparse.ArgumentParser, default: Any) -> None:
    def given(value: Any) -> Any:
        return default if default is not None else value

    parser.add_argument(
        "--active", action="store_true", default=given(False), help="only active alarms"
    )
    parser.add_argument(
        "--unacknowledged",
        action="store_true",
        default=given(False),
        help="only alarms not acknowledged",
    )
    parser.add_argument("--priority", choices=PRIORITIES, default=given(None))
    add_client_options(parser, default)


# -- running the actions ---------------------------------------------------------------------


def _calling(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except ServiceError as exc:
            return refused(args, exc)

    return wrapped


def _listed(args: argparse.Namespace) -> list[dict[str, Any]]:
    from plantd.service import call

    state = "unacknowledged" if args.unacknowledged else "active" if args.active else "all"
    params: dict[str, Any] = {"state": state}
    if args.priority:
        params["priority"] = args.priority
    with client_for(args) as client:
        records = call(client, ALARMS_SERVICE, "list", params, idempotent=True)
    if args.active:  # with --unacknowledged too: both
        records = [record for record in records if record.get("active")]
    return sort_alarms(records)


@_calling
def _list(args: argparse.Namespace) -> int:
    records = _listed(args)
    if args.json:
        emit(args, records, "")
    elif not records:
        print("(no alarms match)", file=sys.stderr)
    else:
        print(alarm_table(records, time.time()))
    return 0


def _ack(args: argparse.Namespace) -> int:
    from plantd.service import call

    if args.all and args.names:
        raise UsageError("ack: give alarm names or --all, not both")
    if not args.all and not args.names:
        raise UsageError("ack: name the alarms to acknowledge, or give --all")
    try:
        if args.all:
            args.active = False
            args.unacknowledged, args.priority = True, None
            names = [record["alarm"] for record in _listed(args)]
        else:
            names = list(dict.fromkeys(args.names))
    except ServiceError as exc:
        return refused(args, exc)
    events: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    with client_for(args) as client:
        for name in names:
            params: dict[str, Any] = {"alarm": name}
            if args.comment:
                params["comment"] = args.comment
            try:
                events.extend(call(client, ALARMS_SERVICE, "ack", params))
            except ServiceError as exc:
                if args.all and exc.code == "alarm.not-acknowledgeable":
                    continue  # someone else acknowledged it since the list: that is done
                errors.append({"alarm": name, "code": exc.code, "message": exc.message})
    if args.json:
        emit(args, {"ok": not errors, "events": events, "errors": errors}, "")
    else:
        for event in events:
            print(f"acknowledged {event['alarm']}: now {event['state']} (by {event['by']})")
        if args.all and not names:
            print("nothing to acknowledge", file=sys.stderr)
        for error in errors:
            print(f"plant: {error['code']}: {error['message']}", file=sys.stderr)
    return 1 if errors else 0


def parse_shelve_duration(text: str) -> float:
    """Seconds from ``"90s"``, ``"15m"``, ``"2h"``; UsageError unless 0 < it ≤ 30 days."""
    seconds = parse_duration(text)
    if seconds is None or not math.isfinite(seconds):
        raise UsageError(f"--for: expected a duration such as 90s, 15m or 2h, got {text!r}")
    if not 0 < seconds <= _MAX_SHELVE:
        raise UsageError(f"--for: a shelving lasts more than 0 s and at most 30d, got {text!r}")
    return seconds


@_calling
def _shelve(args: argparse.Namespace) -> int:
    from plantd.service import call

    params: dict[str, Any] = {"alarm": args.name, "duration": parse_shelve_duration(args.duration)}
    if args.reason:
        params["reason"] = args.reason
    with client_for(args) as client:
        events = call(client, ALARMS_SERVICE, "shelve", params)
    until = next((e["shelved_until"] for e in events if e.get("shelved_until")), None)
    human = f"shelved {args.name}" + (f" until {stamp(until, time.time())}" if until else "")
    emit(args, events, human)
    return 0


@_calling
def _unshelve(args: argparse.Namespace) -> int:
    from plantd.service import call

    with client_for(args) as client:
        events = call(client, ALARMS_SERVICE, "unshelve", {"alarm": args.name})
    state = events[-1]["state"] if events else "?"
    emit(args, events, f"unshelved {args.name}: now {state}")
    return 0


@_calling
def _history(args: argparse.Namespace) -> int:
    from plantd.service import call

    if args.limit < 1:
        raise UsageError(f"--limit: expected at least 1, got {args.limit}")
    now = time.time()
    params: dict[str, Any] = {"since": parse_when("--since", args.since, now), "limit": args.limit}
    if args.until:
        params["until"] = parse_when("--until", args.until, now)
    if args.name:
        params["alarm"] = args.name
    with client_for(args) as client:
        records = list(reversed(call(client, ALARMS_SERVICE, "history", params, idempotent=True)))
    if args.json:
        emit(args, records, "")
    elif not records:
        print("(no alarm transitions in that time range)", file=sys.stderr)
    else:
        print(history_table(records, now))
    return 0


def _watch(args: argparse.Namespace) -> int:
    config = cli_config(args)
    return follow_records(
        config.bus.backend,
        f"event.alarm.{args.name}" if args.name else "event.alarm.",
        exact=bool(args.name),
        count=args.count,
        line=lambda record: (
            json.dumps(record, sort_keys=True)
            if args.json
            else transition_line(record, time.time())
        ),
    )


# -- formatting (pure: records and an explicit now in, text out) ------------------------------


def sort_alarms(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Most urgent first: priority, then what still needs someone, then newest."""

    def key(record: Mapping[str, Any]) -> tuple[int, int, float]:
        priority = record.get("priority")
        state = record.get("state")
        return (
            PRIORITIES.index(priority) if priority in PRIORITIES else len(PRIORITIES),
            _STATE_ORDER.index(state) if state in _STATE_ORDER else len(_STATE_ORDER),
            -float(record.get("time") or 0.0),
        )

    return [dict(record) for record in sorted(records, key=key)]


def stamp(seconds: float | None, now: float) -> str:
    """Local time of day if ``seconds`` is today (by ``now``), else date and time; ``-``."""
    if seconds is None:
        return "-"
    moment = dt.datetime.fromtimestamp(seconds)
    if moment.date() == dt.datetime.fromtimestamp(now).date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _state(record: Mapping[str, Any]) -> str:
    flags = [flag for flag in ("shelved", "suppressed") if record.get(flag)]
    return ",".join([str(record.get("state", "?")), *flags])


def _cut(text: str, width: int = _MESSAGE_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns as wide as their widest cell; the last one unpadded."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def alarm_table(records: Sequence[Mapping[str, Any]], now: float) -> str:
    """The ``plant alarms list`` table, in the order given (see :func:`sort_alarms`)."""
    header = ("PRIORITY", "STATE", "ALARM", "POINT", "VALUE", "LIMIT", "SINCE", "MESSAGE")
    rows = [
        (
            str(record.get("priority", "")),
            _state(record),
            str(record.get("alarm", "")),
            str(record.get("point", "")),
            _value(record.get("value")),
            _value(record.get("limit")),
            stamp(record.get("time"), now),
            _cut(str(record.get("message", ""))),
        )
        for record in records
    ]
    return _table(header, rows)


def _who(record: Mapping[str, Any]) -> str:
    by, comment = record.get("by") or "", record.get("comment") or ""
    parts = (f"by {by}" if by else "", repr(comment) if comment else "")
    return " ".join(part for part in parts if part)


def history_table(records: Sequence[Mapping[str, Any]], now: float) -> str:
    """The ``plant alarms history`` table, in the order given."""
    header = ("TIME", "ALARM", "TRANSITION", "STATE", "VALUE", "PRIORITY", "BY")
    rows = [
        (
            stamp(record.get("time"), now),
            str(record.get("alarm", "")),
            str(record.get("transition") or "-"),
            _state(record),
            _value(record.get("value")),
            str(record.get("priority", "")),
            _who(record),
        )
        for record in records
    ]
    return _table(header, rows)


def transition_line(record: Mapping[str, Any], now: float) -> str:
    """One ``plant alarms watch`` line: time, priority, alarm, transition → state, the value
    against the limit, who, and the message."""
    parts = [
        stamp(record.get("time"), now),
        str(record.get("priority", "")).upper(),
        str(record.get("alarm", "")),
        f"{record.get('transition') or '-'} -> {_state(record)}",
        f"value={_value(record.get('value'))}",
    ]
    if record.get("limit") is not None:
        parts.append(f"limit={_value(record.get('limit'))}")
    if who := _who(record):
        parts.append(who)
    parts.append(str(record.get("message", "")))
    return "  ".join(part for part in parts if part)
