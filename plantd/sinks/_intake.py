"""What a sink takes from the bus, and the gaps in it (sans-IO: samples and a clock in).

Rules, per bus topic (the cursor is the last sample taken, persisted with every commit):

  I1  A sample of a topic with no cursor is taken.
  I2  Same epoch as the cursor: ``seq <= cursor`` is a duplicate (counted, not taken);
      ``seq == cursor + 1`` is taken; ``seq > cursor + 1`` is taken and opens a gap for the
      seqs in between.
  I3  Another epoch (the publisher restarted): taken; if its ``seq`` is above 1, a gap opens
      for the old epoch's samples after the cursor and the new epoch's before this one. (At
      seq 1 the sink was listening when the publisher restarted: no gap.)
  I4  A gap is closed by :meth:`IntakeState.close_gap` with the samples found for it (from the
      historian) and the count of those known missing that were not found (lost). Found
      samples are taken like live ones but never move the cursor back.

Everything taken, the cursors, opened and closed gaps go into one :class:`Intake`, which the
forwarder commits to the disk queue in one transaction (``DiskQueue.commit``).

Samples taken are gathered per module (``data.<module>``) and publisher epoch, and queued as
one batch per module per commit (at most ``batch_size`` samples each): the queue's cost is
then per batch, not per sample. A topic with no point part (``data.x``), or a point name
longer than a batch can hold, is queued as a single sample.

  I5  While commits fail (a full disk), what was not committed stays here, and grows:
      :meth:`IntakeState.restore` keeps at most ``max_pending`` samples of it, dropping the
      oldest sealed entries (whole batches) beyond that and counting them in
      ``pending.dropped``. Cursors and gaps are kept whole (one per point at most), so the
      numbering stays right. Memory is then bounded by ``max_pending`` plus one
      commit interval of intake.

Event records (the sink's ``events`` key: alarm transitions and the like) are taken whole,
each as one entry of the queue's ``events`` table, in the order they came. Per event topic
the cursor is the last record taken and its ``seq`` field:

  E1  A record with no integer ``seq`` is taken; its topic has no numbering to check.
  E2  ``seq == cursor + 1`` (or no cursor yet) is taken; ``seq > cursor + 1`` is taken and
      opens an :class:`EventGap` for the seqs in between. ``seq <= cursor``: the publisher's
      numbering started again (its store was reset): taken, the cursor follows it. (The bus
      never delivers a message twice, so it is no duplicate.)
  E3  While commits fail, pending records are kept up to ``max_pending``; the oldest beyond
      are dropped and counted in ``events_dropped``.
  E4  A gap is closed by :meth:`IntakeState.close_event_gap` with the records found for it
      (from the alarm history: queued as historical, counted in ``events_repaired``; they
      never move the cursor) and the count still missing (``events_missed``).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from plantd.bus import BusDecodeError, Sample, decode_record, encode_record, encode_sample
from plantd.sinks._queue import EventGap, Gap, Intake, entry_count

__all__ = ["EventGap", "IntakeState"]

log = logging.getLogger(__name__)

_NO_BATCH = ("", b"")


class IntakeState:
    def __init__(
        self,
        cursors: dict[str, tuple[Sample, bytes]],
        gaps: list[Gap],
        *,
        batch_size: int = 500,
        max_pending: int = 100_000,
        event_cursors: dict[str, tuple[int | None, bytes]] | None = None,
        event_gaps: list[EventGap] | None = None,
    ) -> None:
        self.event_gaps: dict[str, EventGap] = {gap.key: gap for gap in event_gaps or ()}
        self.cursors = dict(cursors)
        self.event_cursors: dict[str, tuple[int | None, bytes]] = dict(event_cursors or {})
        self.events_received = 0
        self.gaps: dict[str, Gap] = {gap.key: gap for gap in gaps}
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.pending = Intake()
        self.pending_samples = 0
        self.received = 0
        # topic -> (its module's batch topic, the point's name as a batch item names it)
        self._names: dict[str, tuple[str, bytes]] = {}

    def offer(self, topic: str, sample: Sample, now: float) -> Gap | None:
        """Take one live sample (rules I1–I3); returns the gap it opened, if any."""
        self.received += 1
        cursor = self.cursors.get(topic)
        gap: Gap | None = None
        if cursor is not None:
            last = cursor[0]
            if last.epoch == sample.epoch:
                if sample.seq <= last.seq:
                    self.pending.duplicates += 1
                    return None
                if sample.seq > last.seq + 1:
                    gap = self._gap(topic, last, sample, now)
            elif sample.seq > 1:
                gap = self._gap(topic, last, sample, now)
        payload = encode_sample(sample)
        self.pending.cursors[topic] = self.cursors[topic] = (sample, payload)
        self._queue(topic, sample, payload)
        return gap

    def offer_event(self, topic: str, fields: dict[str, Any], now: float) -> EventGap | None:
        """Take one event record (rules E1, E2); returns the gap it opened, if any."""
        self.events_received += 1
        payload = encode_record(fields)
        seq = fields.get("seq")
        if type(seq) is not int:  # E1 (bool is no seq either)
            seq = None
        gap: EventGap | None = None
        cursor = self.event_cursors.get(topic)
        if seq is not None and cursor is not None and cursor[0] is not None:
            last = cursor[0]
            if seq > last + 1:
                since = _record_time(cursor[1])
                until = _record_time(payload)
                gap = EventGap(topic, last, seq, since, until, now)
                self.event_gaps[gap.key] = gap
                self.pending.new_event_gaps.append(gap)
            elif seq <= last:
                log.info("%s: seq went back from %d to %d (numbering restarted)", topic, last,
                         seq)  # fmt: skip
        self.pending.event_cursors[topic] = self.event_cursors[topic] = (seq, payload)
        self.pending.events.append((topic, payload))
        return gap

    def close_event_gap(self, gap: EventGap, found: list[dict[str, Any]], lost: int) -> None:
        """Rule E4: take the records found for ``gap`` (historical) and forget the gap."""
        if self.event_gaps.pop(gap.key, None) is None:
            return
        for fields in found:
            self.pending.repaired_events.append((gap.topic, encode_record(fields)))
        self.pending.closed_event_gaps.append((gap, len(found), lost))
        self.pending.events_missed += lost

    def _queue(self, topic: str, sample: Sample, payload: bytes | None = None) -> None:
        """Add ``sample`` to its module's batch (or, if it cannot be in one, as an entry)."""
        self.pending_samples += 1
        named = self._names.get(topic)
        if named is None:
            named = self._names[topic] = _batch_name(topic)
        batch_topic, name = named
        if not batch_topic:
            self.pending.entries.append((topic, payload or encode_sample(sample)))
            return
        key = (batch_topic, sample.epoch)
        items = self.pending.batches.get(key)
        if items is None:
            items = self.pending.batches[key] = []
        items.append((name, sample.value, sample.timestamp, sample.quality, sample.seq))

    def _gap(self, topic: str, last: Sample, sample: Sample, now: float) -> Gap:
        gap = Gap(
            topic, last.epoch, last.seq, sample.epoch, sample.seq, last.timestamp,
            sample.timestamp, now,
        )  # fmt: skip
        self.gaps[gap.key] = gap
        self.pending.new_gaps.append(gap)
        return gap

    def close_gap(self, gap: Gap, found: list[Sample], lost: int) -> None:
        """Rule I4: take what was found for ``gap`` and forget the gap."""
        if self.gaps.pop(gap.key, None) is None:
            return
        for sample in found:
            self._queue(gap.topic, sample)
        self.pending.closed_gaps.append((gap, len(found), lost))

    def take(self) -> Intake:
        """The intake to commit now, its batches sealed (a fresh one starts)."""
        intake, self.pending = self.pending, Intake()
        intake.seal(self.batch_size)
        self.pending_samples = 0
        return intake

    def restore(self, intake: Intake) -> int:
        """Put back an intake whose commit failed, ahead of what came since; keep at most
        ``max_pending`` samples of it (rule I5). Returns how many samples were dropped."""
        newer = self.pending
        self.pending_samples += sum(entry_count(payload) for _, payload in intake.entries)
        intake.entries.extend(newer.entries)
        intake.batches = newer.batches
        intake.cursors.update(newer.cursors)
        intake.new_gaps.extend(newer.new_gaps)
        intake.closed_gaps.extend(newer.closed_gaps)
        intake.duplicates += newer.duplicates
        intake.dropped += newer.dropped
        intake.events.extend(newer.events)
        intake.repaired_events.extend(newer.repaired_events)
        intake.new_event_gaps.extend(newer.new_event_gaps)
        intake.closed_event_gaps.extend(newer.closed_event_gaps)
        intake.event_cursors.update(newer.event_cursors)
        intake.events_missed += newer.events_missed
        intake.events_dropped += newer.events_dropped
        excess = len(intake.events) - self.max_pending  # E3
        if excess > 0:
            del intake.events[:excess]
            intake.events_dropped += excess
        self.pending = intake
        return self._drop_oldest()

    def _drop_oldest(self) -> int:
        """Drop the oldest sealed entries until at most ``max_pending`` samples are pending."""
        entries = self.pending.entries
        excess = self.pending_samples - self.max_pending
        dropped = cut = 0
        while dropped < excess and cut < len(entries):
            dropped += entry_count(entries[cut][1])
            cut += 1
        del entries[:cut]
        self.pending_samples -= dropped
        self.pending.dropped += dropped
        return dropped


def _record_time(payload: bytes) -> float:
    """A record's ``time`` field (Unix seconds), 0.0 if it has none."""
    try:
        when = decode_record(payload).fields.get("time")
    except BusDecodeError:
        return 0.0
    if isinstance(when, int | float) and not isinstance(when, bool) and math.isfinite(when):
        return float(when)
    return 0.0


def _batch_name(topic: str) -> tuple[str, bytes]:
    """``data.pump1.flow`` -> ``("data.pump1", b"\\x04flow")``; no batch for ``data.x``."""
    kind, dot, rest = topic.partition(".")
    module, dot2, point = rest.partition(".")
    raw = point.encode()
    if not (dot and dot2 and module and point) or len(raw) > 255:
        return _NO_BATCH
    return f"{kind}.{module}", bytes((len(raw),)) + raw
