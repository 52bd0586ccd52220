"""The data bus: its payload codec (version 1), publishers and subscribers.

See ``docs/bus.md`` for the topic scheme and the byte layout.
"""

from __future__ import annotations

from plantd.bus._codec import (
    VERSION,
    BusDecodeError,
    Quality,
    Record,
    Sample,
    SampleValue,
    decode,
    decode_batch,
    decode_record,
    decode_sample,
    encode_batch,
    encode_record,
    encode_sample,
    is_batch,
    sample_to_json,
)
from plantd.bus._sockets import BusMessage, BusPublisher, BusSubscriber, GapTracker

__all__ = [
    "VERSION",
    "BusDecodeError",
    "BusMessage",
    "BusPublisher",
    "BusSubscriber",
    "GapTracker",
    "Quality",
    "Record",
    "Sample",
    "SampleValue",
    "decode",
    "decode_batch",
    "decode_record",
    "decode_sample",
    "encode_batch",
    "encode_record",
    "encode_sample",
    "is_batch",
    "sample_to_json",
]
