"""What the disk queue holds and what one intake commit writes: the entries (a batch of a
module's samples, a single sample, an event record), the gaps in a topic's numbering, and the
:class:`Intake` the forwarder builds between two commits (``plantd.sinks._queue`` stores them).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from plantd.bus import Sample, SampleValue, decode_batch, decode_sample, encode_batch, is_batch

__all__ = [
    "BatchItem",
    "Entry",
    "EventEntry",
    "EventGap",
    "Gap",
    "Intake",
    "entry_count",
    "entry_samples",
]

BatchItem = tuple[bytes, SampleValue, float, int, int]
"""A sample as a batch item (``plantd.bus.encode_batch``): the point's name prefixed by its
length byte, the value, the timestamp, the quality and the seq."""

_BATCH_COUNT = struct.Struct("<I")  # a batch payload's sample count, at offset 6


def entry_count(payload: bytes) -> int:
    """How many samples a queued payload holds: a batch's count, else 1 (a sample)."""
    if is_batch(payload):
        return int(_BATCH_COUNT.unpack_from(payload, 6)[0])
    return 1


def entry_samples(topic: str, payload: bytes) -> list[tuple[str, Sample]]:
    """The samples a queued entry holds, each with its point topic."""
    if not is_batch(payload):
        return [(topic, decode_sample(payload))]
    prefix = topic + "."
    return [(prefix + name, sample) for name, sample in decode_batch(payload)[1]]


@dataclass(frozen=True, slots=True)
class Gap:
    """Samples of ``topic`` missing between two taken ones: those of ``old_epoch`` after
    ``old_seq``, and (when the publisher restarted in between) those of ``new_epoch`` before
    ``new_seq``. With ``old_epoch == new_epoch`` it is the plain range between the two."""

    topic: str
    old_epoch: int
    old_seq: int
    new_epoch: int
    new_seq: int
    since: float
    until: float
    found: float

    @property
    def key(self) -> str:
        return f"{self.topic}|{self.old_epoch}|{self.old_seq}|{self.new_epoch}|{self.new_seq}"

    def wants(self, sample: Sample) -> bool:
        if self.old_epoch == self.new_epoch:
            return sample.epoch == self.old_epoch and self.old_seq < sample.seq < self.new_seq
        if sample.epoch == self.old_epoch:
            return sample.seq > self.old_seq
        return sample.epoch == self.new_epoch and sample.seq < self.new_seq

    def known_missing(self) -> set[int]:
        """The seqs sure to be missing: the range in the same epoch, else 1..new_seq-1."""
        if self.old_epoch == self.new_epoch:
            return set(range(self.old_seq + 1, self.new_seq))
        return set(range(1, self.new_seq))


@dataclass(frozen=True, slots=True)
class Entry:
    """One queued row: a sample on its point topic, or a batch of ``count`` on a module's."""

    id: int
    topic: str
    payload: bytes
    count: int = 1


@dataclass(frozen=True, slots=True)
class EventEntry:
    """One queued event record: its bus topic and its payload (bus record encoding)."""

    id: int
    topic: str
    payload: bytes
    queued: float = 0.0
    """When it was committed to the queue (wall clock)."""
    historical: bool = False
    """Found by a repair (from the alarm history): older than what was delivered live."""


@dataclass(frozen=True, slots=True)
class EventGap:
    """Records of an event topic missing between two taken ones: the seqs between ``last``
    and ``seq`` (taken at ``since`` and ``until``, the records' ``time``), found at ``found``."""

    topic: str
    last: int
    seq: int
    since: float
    until: float
    found: float

    @property
    def key(self) -> str:
        return f"{self.topic}|{self.last}|{self.seq}"

    def known_missing(self) -> set[int]:
        return set(range(self.last + 1, self.seq))


@dataclass(slots=True)
class Intake:
    """What one intake commit writes (built by the forwarder between two commits).

    ``entries`` are ``(topic, payload)`` bus messages, ready to queue: a sample on its point
    topic, or a batch on ``data.<module>``. The intake gathers samples in ``batches``, by
    ``(data.<module>, epoch)``, as batch items; :meth:`seal` turns them into entries.
    """

    entries: list[tuple[str, bytes]] = field(default_factory=list)
    cursors: dict[str, tuple[Sample, bytes]] = field(default_factory=dict)
    new_gaps: list[Gap] = field(default_factory=list)
    closed_gaps: list[tuple[Gap, int, int]] = field(default_factory=list)  # (gap, repaired, lost)
    duplicates: int = 0
    dropped: int = 0
    """Samples dropped from memory while commits failed (``IntakeState.restore``): never
    taken, so they count in ``dropped`` only, with the next commit that succeeds."""
    batches: dict[tuple[str, int], list[BatchItem]] = field(default_factory=dict)
    events: list[tuple[str, bytes]] = field(default_factory=list)
    """Event records taken: ``(topic, payload)`` in the bus record encoding, in order."""
    event_cursors: dict[str, tuple[int | None, bytes]] = field(default_factory=dict)
    repaired_events: list[tuple[str, bytes]] = field(default_factory=list)
    """Event records found for a gap (queued as historical)."""
    new_event_gaps: list[EventGap] = field(default_factory=list)
    closed_event_gaps: list[tuple[EventGap, int, int]] = field(default_factory=list)
    """``(gap, repaired, lost)``: the lost count in ``events_missed``."""
    events_missed: int = 0
    """Event seqs never found (a gap closed with records still missing)."""
    events_dropped: int = 0
    """Event records dropped from memory while commits failed (past ``max_pending``)."""

    def __bool__(self) -> bool:
        return bool(
            self.events
            or self.repaired_events
            or self.new_event_gaps
            or self.closed_event_gaps
            or self.event_cursors
            or self.events_missed
            or self.events_dropped
            or self.entries
            or self.batches
            or self.cursors
            or self.new_gaps
            or self.closed_gaps
            or self.dropped
        )

    def seal(self, batch_size: int) -> None:
        """Encode the gathered batches as entries of at most ``batch_size`` samples each."""
        for (topic, epoch), items in self.batches.items():
            for start in range(0, len(items), batch_size):
                self.entries.append((topic, encode_batch(epoch, items[start : start + batch_size])))
        self.batches = {}
