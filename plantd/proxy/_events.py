"""Bus messages as Server-Sent Events: decoded once, encoded once, for every stream client.

Sans-IO: bytes in, bytes out, no socket and no clock. :func:`decode_message` turns one bus
message (topic and payload) into a :class:`BusEvent`; :meth:`BusEvent.encode` turns it into
the bytes of one SSE event, which the hub then hands, unchanged, to every client that asked
for it. The format (docs/app.md, "Streams"):

    id: 17                                   a proxy-wide counter, one per bus message
    event: samples                           a sample or a whole batch (one poll of a module)
    data: {"topic": "data.pump1", "samples": [{"topic": "data.pump1.flow", "point": "flow",
           "value": 12.5, "quality": "good", "time": 1765000000.25, "seq": 42}, …]}

    id: 18
    event: record                            state.*, event.*, log.*, metrics.* records
    data: {"topic": "state.plant.mode", "record": {…the record's JSON object…}}

    event: gap                               this client fell behind: its oldest events
    data: {"dropped": 120}                   were dropped (no id: it is the client's own)

    : keepalive                              a comment, every 15 s of silence

``data`` is one line of compact JSON (a JSON text holds no raw newline once encoded). Values
that JSON cannot carry — NaN and the infinities — are sent as the strings ``"nan"``,
``"inf"``, ``"-inf"``, as ``plant bus tail --json`` shows them.

A batch is one event, but a client may follow a single point of it (``data.pump1.flow``):
:meth:`BusEvent.encode` then takes the prefixes that matched only part of the batch and
encodes the samples they select (the hub encodes once per distinct selection, and the whole
batch once for every client whose prefix covers it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from plantd.bus._codec import (
    BusDecodeError,
    Sample,
    decode_batch,
    decode_record,
    decode_sample,
)

__all__ = [
    "KEEPALIVE",
    "BusEvent",
    "decode_message",
    "gap_event",
]

KEEPALIVE: Final = b": keepalive\n\n"
_KIND_SAMPLE, _KIND_RECORD, _KIND_BATCH = ord("S"), ord("J"), ord("B")
_DUMPS = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


@dataclass(slots=True)
class BusEvent:
    """One decoded bus message: a sample, a batch (``samples``), or a record.

    ``samples`` holds each sample's topic and its JSON object; ``record`` the record's fields.
    """

    topic: str
    kind: Literal["samples", "record"]
    samples: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    record: dict[str, Any] | None = None

    def encode(self, event_id: int, partial: Iterable[str] = ()) -> bytes | None:
        """The SSE bytes of this event under ``event_id``.

        With ``partial`` prefixes (each longer than the batch topic, so matching part of it):
        only the samples whose topic starts with one of them, or None if there is none.
        """
        if self.kind == "record":
            body: dict[str, Any] = {"topic": self.topic, "record": self.record}
        else:
            wanted = tuple(partial)
            samples = [
                item for topic, item in self.samples if not wanted or topic.startswith(wanted)
            ]
            if not samples:
                return None
            body = {"topic": self.topic, "samples": samples}
        return _event(self.kind, _json(body), event_id)


def decode_message(topic: str, payload: bytes) -> BusEvent:
    """The event a bus message carries; :class:`BusDecodeError` names what is wrong with it.

    The kind comes from the payload's kind byte, not the topic: a sample or batch is a
    ``samples`` event wherever it was published, a record a ``record`` event."""
    if len(payload) < 2:
        raise BusDecodeError(f"payload of {len(payload)} bytes has no header")
    kind = payload[1]
    if kind == _KIND_BATCH:
        _, items = decode_batch(payload)
        return BusEvent(
            topic,
            "samples",
            [_sample_json(f"{topic}.{name}", name, sample) for name, sample in items],
        )
    if kind == _KIND_SAMPLE:
        point = topic.split(".", 2)[2] if topic.count(".") >= 2 else ""
        return BusEvent(topic, "samples", [_sample_json(topic, point, decode_sample(payload))])
    if kind == _KIND_RECORD:
        return BusEvent(topic, "record", record=decode_record(payload).fields)
    raise BusDecodeError(f"unknown payload kind {kind!r}")


def gap_event(dropped: int) -> bytes:
    """The event that tells one client how many of its events were dropped."""
    return b'event: gap\ndata: {"dropped":%d}\n\n' % dropped


def _sample_json(topic: str, point: str, sample: Sample) -> tuple[str, dict[str, Any]]:
    value = sample.value
    if type(value) is float and not math.isfinite(value):
        value = str(value)
    return topic, {
        "topic": topic,
        "point": point,
        "value": value,
        "quality": sample.quality.label,
        "time": sample.timestamp,
        "seq": sample.seq,
    }


def _json(body: dict[str, Any]) -> bytes:
    try:
        text = _DUMPS(body)
    except ValueError:  # a NaN deep inside a JSON value or a record: rare, so checked late
        text = _DUMPS(_finite(body))
    return text.encode()


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its name (``"nan"``, ``"inf"``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _event(kind: str, data: bytes, event_id: int) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, kind.encode(), data)
