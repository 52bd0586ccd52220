"""What the forwarder needs from an upstream (whatever its kind): connect, deliver, close.

``deliver`` returns only once the upstream has acknowledged every message of the batch (a
message broker: each message's acknowledgement; a database: the COMMIT); only then are the
entries removed from the disk queue. Any failure to do so is :class:`UpstreamUnavailable`:
the forwarder closes the connection, backs off, connects again and sends the batch again (the
upstream may then see part of it twice — at-least-once).

An upstream may also have ``async def serve_commands(self) -> None``: the sink runs it beside
the delivery until it stops, for commands that come from upstream (it calls
``UpstreamContext.write``).

Event records (the sink's ``events`` key, e.g. alarm transitions on ``event.alarm.*``) reach
an upstream that has ``async def deliver_events(self, events: Sequence[OutgoingEvent]) ->
int``, with the same contract as ``deliver`` (return once acknowledged, or raise
:class:`UpstreamUnavailable`; returns duplicates). A kind without it forwards no events.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from plantd.bus import Sample
from plantd.errors import PlantdError

__all__ = [
    "Outgoing",
    "OutgoingEvent",
    "Upstream",
    "UpstreamUnavailable",
    "event_json",
    "split_topic",
]


class UpstreamUnavailable(PlantdError):
    """Transient: the upstream cannot be reached, or did not acknowledge in time."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One queued sample on its way, on its point topic (``data.<module>.<point>``):
    ``historical`` when it comes from the backlog."""

    topic: str
    sample: Sample
    historical: bool


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """One queued event record on its way, on its bus topic (``event.alarm.<alarm>``):
    ``fields`` is the record (a JSON object); ``historical`` when it was queued before the
    connection it goes out on was made (the backlog)."""

    topic: str
    fields: dict[str, Any]
    historical: bool
    queued: float = 0.0
    """When the sink committed it to its queue (wall clock): a time for a record without one."""


class Upstream(Protocol):
    async def connect(self) -> None: ...

    async def deliver(self, batch: Sequence[Outgoing]) -> int:
        """Deliver and wait for the acknowledgement; returns duplicates the upstream noticed."""
        ...

    async def close(self) -> None: ...

    def status(self) -> dict[str, Any]: ...


def split_topic(topic: str) -> tuple[str, str]:
    """``data.pump1.flow`` -> ``("pump1", "flow")`` (a point name may hold dots)."""
    _, _, rest = topic.partition(".")
    module, _, point = rest.partition(".")
    return module, point


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # as plantd.bus.sample_to_json: "nan", "inf", "-inf"
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def event_json(fields: dict[str, Any]) -> str:
    """A record as strict JSON text (NaN and infinities, which JSON has not, as strings)."""
    return json.dumps(_finite(fields), separators=(",", ":"), allow_nan=False)
