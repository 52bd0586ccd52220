"""Batches on the bus: the codec, the publisher's numbering, the subscriber's per-point view."""

from __future__ import annotations

import asyncio
import math
import re
import struct

import pytest
import zmq
from hypothesis import given
from hypothesis import strategies as st

from plantd.bus import (
    BusDecodeError,
    BusPublisher,
    BusSubscriber,
    GapTracker,
    Quality,
    Sample,
    decode_batch,
    encode_batch,
    is_batch,
)
from plantd.bus._sockets import _covering


def item(name: str, value: object, timestamp: float = 1.0, quality: int = 0, seq: int = 1):  # type: ignore[no-untyped-def]
    raw = name.encode()
    return (bytes((len(raw),)) + raw, value, timestamp, quality, seq)


values = st.one_of(
    st.floats(allow_nan=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.text(max_size=50),
    st.none(),
    st.lists(st.integers(), max_size=5),
)


@given(st.lists(st.tuples(st.text(min_size=1, max_size=20), values, st.floats(0, 2e9),
                          st.sampled_from([0, 1, 2]), st.integers(1, 2**63)), max_size=30),
       st.integers(0, 2**32 - 1))  # fmt: skip
def test_a_batch_round_trips(
    samples: list[tuple[str, object, float, int, int]], epoch: int
) -> None:
    payload = encode_batch(epoch, [item(*s) for s in samples])  # type: ignore[arg-type]
    assert is_batch(payload)
    got_epoch, items = decode_batch(payload)
    assert got_epoch == epoch
    assert items == [
        (name, Sample(value, stamp, Quality(quality), seq, epoch))  # type: ignore[arg-type]
        for name, value, stamp, quality, seq in samples
    ]


def test_nan_and_infinities_travel_as_floats() -> None:
    payload = encode_batch(1, [item("a", math.nan), item("b", math.inf)])
    (_, a), (_, b) = decode_batch(payload)[1]
    assert math.isnan(a.value)  # type: ignore[arg-type]
    assert b.value == math.inf


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"\x01B", "shorter than its header"),
        (b"\x02B" + b"\0" * 8, "version 2"),
        (struct.pack("<BBII", 1, 66, 0, 1), "bad batch item"),  # one item announced, none there
        (encode_batch(0, [item("a", 1.0)]) + b"x", "1 byte(s) after the batch's 1 item(s)"),
        (encode_batch(0, [item("a", "text")])[:-2], "runs past the payload"),
        (struct.pack("<BBII", 1, 66, 0, 1) + b"\x01a" + struct.pack("<BBQd", 0, 0x7A, 1, 0.0),
         "unknown sample value type"),
    ],
)  # fmt: skip
def test_a_broken_batch_is_refused_with_what_is_wrong(payload: bytes, problem: str) -> None:
    with pytest.raises(BusDecodeError, match=re.escape(problem)):
        decode_batch(payload)


@pytest.mark.parametrize(
    ("prefix", "subscription"),
    [
        ("", ""),
        ("data.", "data."),
        ("data.pu", "data.pu"),
        ("data.pump1.", "data.pump1"),
        ("data.pump1.flow", "data.pump1"),
        ("state.a.", "state.a."),
    ],
)
def test_the_zeromq_subscription_covers_the_batches(prefix: str, subscription: str) -> None:
    assert _covering(prefix) == subscription


async def test_a_subscriber_gets_a_batch_sample_by_sample_with_its_own_prefix_only() -> None:
    context = zmq.Context.instance()
    xsub, xpub = context.socket(zmq.XSUB), context.socket(zmq.XPUB)
    xsub.bind("tcp://127.0.0.1:*")
    xpub.bind("tcp://127.0.0.1:*")
    frontend, backend = xsub.last_endpoint.decode(), xpub.last_endpoint.decode()

    async def forward() -> None:
        poller = zmq.Poller()
        poller.register(xsub, zmq.POLLIN)
        poller.register(xpub, zmq.POLLIN)
        while True:
            for sock, _ in poller.poll(0):
                (xpub if sock is xsub else xsub).send_multipart(sock.recv_multipart())
            await asyncio.sleep(0.001)

    forwarder = asyncio.create_task(forward())
    flows = BusSubscriber(backend, ["data.pump1.flow"])
    everything = BusSubscriber(backend, ["data."])
    publisher = BusPublisher(frontend)
    try:
        assert await publisher.wait_for_subscribers(5)
        for n in range(3):
            sent = publisher.publish_batch(
                "data.pump1",
                [("flow", float(n), 10.0 + n, Quality.GOOD), ("level", n, 10.0 + n, Quality.BAD)],
            )
            assert sent == 2
        publisher.publish_batch("data.pump10", [("flow", 9.0, 1.0, Quality.GOOD)])  # not pump1
        got = [await flows.receive_within(5) for _ in range(3)]
        assert [(m.topic, m.payload.value, m.payload.seq) for m in got if m] == [  # type: ignore[union-attr]
            ("data.pump1.flow", 0.0, 1),
            ("data.pump1.flow", 1.0, 2),
            ("data.pump1.flow", 2.0, 3),
        ]
        assert await flows.receive_within(0.3) is None  # neither level nor pump10's flow
        gaps = GapTracker()
        topics = []
        for _ in range(7):
            message = await everything.receive_within(5)
            assert message is not None
            assert isinstance(message.payload, Sample)
            gaps.observe(message.topic, message.payload)
            topics.append(message.topic)
        assert topics == ["data.pump1.flow", "data.pump1.level"] * 3 + ["data.pump10.flow"]
        assert gaps.missing == 0
    finally:
        forwarder.cancel()
        for sock in (flows, everything, publisher):
            sock.close()
        xsub.close(linger=0)
        xpub.close(linger=0)
