"""Following the bus's records on one topic prefix, one line each, until Ctrl-C or a count.

What ``plant alarms watch`` and ``plant audit follow`` share: each gives the prefix (a name
that must match whole, or a prefix of every topic) and a function that turns a record into its
line, or None to skip it. Ctrl-C ends a follow: that is no error (exit 0).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["follow_records"]

Line = Callable[[dict[str, Any]], "str | None"]


def follow_records(endpoint: str, topic: str, *, exact: bool, count: int, line: Line) -> int:
    """Print ``line(record)`` for each record on ``topic`` (the whole topic if ``exact``, else
    every topic it starts), ``count`` of them at most (0: until Ctrl-C)."""
    try:
        return asyncio.run(_follow(endpoint, topic, exact, count, line))
    except KeyboardInterrupt:
        return 0


async def _follow(endpoint: str, topic: str, exact: bool, count: int, line: Line) -> int:
    from plantd.bus import BusSubscriber, Record

    subscriber = BusSubscriber(endpoint, [topic])
    shown = 0
    try:
        while not count or shown < count:
            message = await subscriber.receive()
            if not isinstance(message.payload, Record):
                continue
            if exact and message.topic != topic:
                continue  # a longer name that shares the prefix
            text = line(message.payload.fields)
            if text is None:
                continue
            shown += 1
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
    finally:
        subscriber.close()
    return 0
