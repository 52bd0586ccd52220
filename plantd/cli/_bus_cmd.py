"""``plant bus tail PATTERN``: follow the data bus, decoded, live."""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import json
import sys
import time
from typing import Any

from plantd.bus import BusSubscriber, Record, sample_to_json
from plantd.cli._common import OUTPUT_OPTIONS, cli_config

__all__ = ["register", "subscription_prefix"]


def register(sub: Any) -> None:
    bus = sub.add_parser("bus", help="the data bus")
    actions = bus.add_subparsers(dest="bus_command", metavar="ACTION", required=True)
    tail = actions.add_parser(
        "tail",
        parents=[OUTPUT_OPTIONS],
        help="print bus messages whose topic matches PATTERN (a prefix, or a glob with *)",
    )
    tail.add_argument("pattern", nargs="?", default="", help="e.g. data.pump1. or 'data.*.flow'")
    tail.add_argument("--count", type=int, default=0, help="stop after N messages")
    tail.add_argument("--seconds", type=float, default=0, help="stop after S seconds")
    tail.set_defaults(run=_tail)


def subscription_prefix(pattern: str) -> str:
    """The literal start of a pattern: what ZeroMQ can filter on before the glob does the rest."""
    for index, char in enumerate(pattern):
        if char in "*?[":
            return pattern[:index]
    return pattern


def _tail(args: argparse.Namespace) -> int:
    config = cli_config(args)
    try:
        return asyncio.run(_follow(args, config.bus.backend))
    except KeyboardInterrupt:
        return 0


async def _follow(args: argparse.Namespace, endpoint: str) -> int:
    pattern: str = args.pattern
    glob = any(char in pattern for char in "*?[")
    subscriber = BusSubscriber(endpoint, [subscription_prefix(pattern)])
    deadline = time.monotonic() + args.seconds if args.seconds else None
    shown = 0
    try:
        while args.count == 0 or shown < args.count:
            timeout = max(0.0, deadline - time.monotonic()) if deadline else 3600.0
            message = await subscriber.receive_within(timeout)
            if message is None:
                if deadline is not None:
                    break
                continue
            if glob and not fnmatch.fnmatchcase(message.topic, pattern):
                continue
            shown += 1
            _print(args, message.topic, message.payload)
    finally:
        subscriber.close()
    return 0


def _print(args: argparse.Namespace, topic: str, payload: Any) -> None:
    if isinstance(payload, Record):
        data: dict[str, Any] = {"topic": topic, **payload.fields}
        human = f"{topic}  {json.dumps(payload.fields, sort_keys=True)}"
    else:
        data = {"topic": topic, **sample_to_json(payload)}
        stamp = time.strftime("%H:%M:%S", time.localtime(payload.timestamp))
        millis = int((payload.timestamp % 1) * 1000)
        human = (
            f"{stamp}.{millis:03d}  {topic}  {json.dumps(data['value'])}  "
            f"{data['quality']}  #{payload.seq}"
        )
    sys.stdout.write((json.dumps(data) if args.json else human) + "\n")
    sys.stdout.flush()
