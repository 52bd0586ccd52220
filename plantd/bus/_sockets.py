"""Publishing to and subscribing from the data bus (the broker's XSUB/XPUB forwarder).

Publishers connect a PUB socket to ``bus.frontend``; subscribers connect a SUB socket to
``bus.backend`` and filter by topic prefix. Modules publish each poll as one *batch* on
``data.<module>`` (:meth:`BusPublisher.publish_batch`); a :class:`BusSubscriber` hands out its
samples one by one, each on its own point topic ``data.<module>.<point>``, as if they had come
one message each — so a subscription to ``data.pump1.flow`` works as it always did: the
subscriber asks ZeroMQ for ``data.pump1`` and keeps the samples of ``flow``.

ZeroMQ PUB never blocks: past the high-water mark a slow subscriber simply misses messages,
which the per-topic sequence numbers make visible (:class:`GapTracker`). Publishing is
therefore a plain non-blocking send, safe from any task of the thread that owns the publisher.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import zmq
import zmq.asyncio

from plantd._zmq import async_context, sync_context
from plantd.bus._codec import (
    BatchItem,
    BusDecodeError,
    Quality,
    Record,
    Sample,
    SampleValue,
    decode,
    decode_batch,
    encode_batch,
    encode_record,
    encode_sample_fields,
    is_batch,
)
from plantd.security import Credentials, secure
from plantd.security._refusals import RefusalWatch

__all__ = ["BusMessage", "BusPublisher", "BusSubscriber", "GapTracker"]

_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE_NOBLOCK = int(zmq.SNDMORE) | _NOBLOCK
_POLLIN = int(zmq.POLLIN)
_CHECK_EVERY = 1.0  # seconds between looks at whether the broker refused our key

log = logging.getLogger(__name__)


class BusPublisher:
    """Numbers and sends samples and records. ``epoch`` is random per publisher.

    The socket is an XPUB rather than a PUB so that the publisher can see subscriptions arrive:
    ZeroMQ drops what a publisher sends before the bus has told it who subscribes (the "slow
    joiner"), so a new publisher should :meth:`wait_for_subscribers` before its first message.
    Under CURVE, a socket the broker refused (a rotated key) is rebuilt with the current key,
    looked at about once a second (``plantd.security._refusals``).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        high_water_mark: int = 100_000,
        credentials: Credentials | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.epoch = secrets.randbits(32)
        self._seq: dict[str, int] = {}
        self._topics: dict[str, bytes] = {}
        self._batch_seqs: dict[str, dict[str, int]] = {}  # batch topic -> point -> last seq
        self._names: dict[str, bytes] = {}  # point name -> its length byte and UTF-8 bytes
        self._hwm = high_water_mark
        self._credentials = credentials
        self._watch: RefusalWatch | None = None
        self._next_check = 0.0
        self._open()

    def _open(self) -> None:
        self._socket = sync_context().socket(zmq.XPUB)
        self._socket.set_hwm(self._hwm)
        self._socket.linger = 1000  # give queued messages a second on close
        if secure(self._socket, self._credentials):
            self._watch = RefusalWatch(self._socket)
        self._socket.connect(self.endpoint)
        self._send = self._socket.send

    def _check_refused(self, now: float) -> None:
        self._next_check = now + _CHECK_EVERY
        if self._watch is not None and self._watch.refused():
            log.warning(
                "the bus refused this publisher's key; connecting again with the current one"
            )
            self._watch.close()
            self._socket.close(linger=0)
            self._open()

    async def wait_for_subscribers(self, timeout: float = 1.0) -> bool:
        """Wait until the bus has passed on at least one subscription, at most ``timeout``
        seconds (there may be no subscriber at all). True if one arrived."""
        deadline = time.monotonic() + timeout
        while (now := time.monotonic()) < deadline:
            if self._drain_subscriptions():
                return True
            if now >= self._next_check:
                self._check_refused(now)
            await asyncio.sleep(0.01)
        return False

    def _drain_subscriptions(self) -> bool:
        seen = False
        while self._socket.poll(0, zmq.POLLIN):
            self._socket.recv(zmq.NOBLOCK)
            seen = True
        return seen

    def next_seq(self, topic: str) -> int:
        seq = self._seq.get(topic, 0) + 1
        self._seq[topic] = seq
        return seq

    def publish_sample(
        self,
        topic: str,
        value: SampleValue,
        *,
        timestamp: float | None = None,
        quality: Quality = Quality.GOOD,
    ) -> int:
        """Number, encode and send one sample; returns its sequence number.

        This is the publishing hot path (a module sends every sample through it), so it packs
        the fields directly and sends the two frames with plain int flags.
        """
        seq = self._seq.get(topic, 0) + 1
        self._seq[topic] = seq
        if (now := time.monotonic()) >= self._next_check:
            self._check_refused(now)
        stamp = time.time() if timestamp is None else timestamp
        payload = encode_sample_fields(value, stamp, quality, seq, self.epoch)
        topic_bytes = self._topics.get(topic)
        if topic_bytes is None:
            topic_bytes = self._topics[topic] = topic.encode()
        self._send(topic_bytes, _SNDMORE_NOBLOCK)
        self._send(payload, _NOBLOCK)
        return seq

    def publish_batch(
        self, topic: str, samples: Iterable[tuple[str, SampleValue, float, Quality]]
    ) -> int:
        """Number every sample ``(point, value, timestamp, quality)`` on its point topic
        ``<topic>.<point>`` and send them all as one message on ``topic``; returns how many.

        The publishing hot path of every module: one ZeroMQ message per poll, not per sample.
        """
        seqs = self._batch_seqs.get(topic)
        if seqs is None:
            seqs = self._batch_seqs[topic] = {}
        names = self._names
        items: list[BatchItem] = []
        for name, value, timestamp, quality in samples:
            seq = seqs.get(name, 0) + 1
            seqs[name] = seq
            encoded = names.get(name)
            if encoded is None:
                raw = name.encode()
                if len(raw) > 255:
                    raise ValueError(f"point name {name[:40]!r}… is longer than 255 bytes")
                encoded = names[name] = bytes((len(raw),)) + raw
            items.append((encoded, value, timestamp, quality, seq))
        if not items:
            return 0
        if (now := time.monotonic()) >= self._next_check:
            self._check_refused(now)
        topic_bytes = self._topics.get(topic)
        if topic_bytes is None:
            topic_bytes = self._topics[topic] = topic.encode()
        self._send(topic_bytes, _SNDMORE_NOBLOCK)
        self._send(encode_batch(self.epoch, items), _NOBLOCK)
        return len(items)

    def publish_record(self, topic: str, fields: dict[str, Any]) -> None:
        if (now := time.monotonic()) >= self._next_check:
            self._check_refused(now)
        self._socket.send_multipart([topic.encode(), encode_record(fields)], zmq.NOBLOCK)

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
        self._socket.close()


@dataclass(frozen=True, slots=True)
class BusMessage:
    topic: str
    payload: Sample | Record


class BusSubscriber:
    """Receives decoded bus messages whose topic starts with any of ``prefixes``.

    An empty prefix subscribes to everything. A batch is handed out sample by sample, each on
    its point topic, those matching ``prefixes`` only. Undecodable payloads are skipped and
    counted in ``undecodable``; a subscriber never dies of what a publisher sent.
    """

    def __init__(
        self,
        endpoint: str,
        prefixes: Iterable[str] = ("",),
        *,
        high_water_mark: int = 100_000,
        credentials: Credentials | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.undecodable = 0
        self._prefixes = list(prefixes)
        self._match = tuple(self._prefixes)
        self._ready: collections.deque[BusMessage] = collections.deque()
        self._hwm = high_water_mark
        self._credentials = credentials
        self._watch: RefusalWatch | None = None
        self._open()

    def _open(self) -> None:
        self._socket: zmq.asyncio.Socket = async_context().socket(zmq.SUB)
        self._socket.set_hwm(self._hwm)
        self._socket.linger = 0
        if secure(self._socket, self._credentials):
            self._watch = RefusalWatch(self._socket)
        for subscription in sorted({_covering(prefix) for prefix in self._prefixes}):
            self._socket.subscribe(subscription.encode())
        self._socket.connect(self.endpoint)

    def _check_refused(self) -> None:
        """Under CURVE, a socket the broker refused (a rotated key) is rebuilt with the current
        key (``plantd.security._refusals``)."""
        if self._watch is not None and self._watch.refused():
            log.warning(
                "the bus refused this subscriber's key; connecting again with the current one"
            )
            self._watch.close()
            self._socket.close(linger=0)
            self._open()

    async def receive(self) -> BusMessage:
        while True:
            message = await self.receive_within(_CHECK_EVERY)
            if message is not None:
                return message

    async def receive_within(self, timeout: float) -> BusMessage | None:
        """The next message, or None when ``timeout`` seconds pass without one."""
        if self._ready:
            return self._ready.popleft()
        deadline = time.monotonic() + timeout
        while True:
            # Waiting costs an await; when a message is there already (the common case under
            # load), take it at once.
            if not self._socket.get(zmq.EVENTS) & _POLLIN:  # type: ignore[operator]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                if not await self._socket.poll(int(min(remaining, _CHECK_EVERY) * 1000)):
                    self._check_refused()
                    continue
            self._decode(await self._socket.recv_multipart())
            if self._ready:
                return self._ready.popleft()

    def _decode(self, frames: list[bytes]) -> None:
        """Queue the messages ``frames`` carry (those matching the prefixes)."""
        if len(frames) != 2:
            self.undecodable += 1
            return
        topic_bytes, payload = frames
        try:
            topic = topic_bytes.decode("ascii")
            if is_batch(payload):
                _, items = decode_batch(payload)
                match, ready = self._match, self._ready
                for name, sample in items:
                    point = f"{topic}.{name}"
                    if point.startswith(match):
                        ready.append(BusMessage(point, sample))
            elif topic.startswith(self._match):
                self._ready.append(BusMessage(topic, decode(payload)))
        except (BusDecodeError, UnicodeDecodeError) as exc:
            self.undecodable += 1
            if self.undecodable <= 10:
                log.warning("skipped an undecodable bus message on %r: %s", topic_bytes[:64], exc)

    async def __aiter__(self) -> AsyncIterator[BusMessage]:
        while True:
            yield await self.receive()

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
        self._socket.close(linger=0)


def _covering(prefix: str) -> str:
    """The ZeroMQ subscription that covers ``prefix`` whether its samples come one message
    each or in a batch on ``data.<module>``: ``data.pump1.flow`` → ``data.pump1``."""
    if prefix.startswith("data."):
        module, dot, _ = prefix[5:].partition(".")
        if dot:
            return f"data.{module}"
    return prefix


class GapTracker:
    """Counts samples lost per topic from their sequence numbers.

    ``observe`` returns how many samples of that topic went missing just before this one (0 if
    none). A new epoch means the publisher restarted: numbering starts again, no gap. A number at
    or below the last one seen is a duplicate (``duplicates`` counts them).
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int]] = {}
        self.missing = 0
        self.duplicates = 0

    def observe(self, topic: str, sample: Sample) -> int:
        last = self._last.get(topic)
        if last is not None and last[0] == sample.epoch:
            if sample.seq <= last[1]:
                self.duplicates += 1
                return 0
            missing = sample.seq - last[1] - 1
        else:
            missing = 0
        self._last[topic] = (sample.epoch, sample.seq)
        self.missing += missing
        return missing
