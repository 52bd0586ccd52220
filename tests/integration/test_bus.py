"""The data bus through a real broker process: prefix filtering, decoding, gap detection."""

from __future__ import annotations

import asyncio

from plantd.bus import BusPublisher, BusSubscriber, GapTracker, Quality, Record, Sample
from tests.conftest import Stack


async def test_samples_and_records_flow_through_the_broker(stack: Stack) -> None:
    stack.start_broker()
    bus = stack.settings["bus"]
    subscriber = BusSubscriber(bus["backend"], ["data.pump1.", "event."])
    publisher = BusPublisher(bus["frontend"])
    try:
        # PUB/SUB subscriptions take a moment to reach the publisher: publish until one lands.
        for _ in range(100):
            publisher.publish_sample("data.pump1.warmup", 0)
            if await subscriber.receive_within(0.05):
                break
        publisher.publish_sample("data.pump2.flow", 1.0)  # filtered out
        publisher.publish_sample("data.pump1.flow", 12.5, timestamp=1000.0)
        publisher.publish_sample("data.pump1.state", "running", quality=Quality.UNCERTAIN)
        publisher.publish_record("event.pump1.started", {"by": "test"})
        received = []
        while len(received) < 3:
            message = await asyncio.wait_for(subscriber.receive(), 5)
            if message.topic != "data.pump1.warmup":
                received.append(message)
    finally:
        publisher.close()
        subscriber.close()
    assert [m.topic for m in received] == [
        "data.pump1.flow",
        "data.pump1.state",
        "event.pump1.started",
    ]
    flow = received[0].payload
    assert isinstance(flow, Sample)
    assert (flow.value, flow.timestamp, flow.seq, flow.epoch) == (12.5, 1000.0, 1, publisher.epoch)
    assert isinstance(received[1].payload, Sample)
    assert received[1].payload.quality is Quality.UNCERTAIN
    assert received[2].payload == Record({"by": "test"})


async def test_a_subscriber_past_its_high_water_mark_sees_the_gap(stack: Stack) -> None:
    stack.start_broker()
    bus = stack.settings["bus"]
    subscriber = BusSubscriber(bus["backend"], ["data."], high_water_mark=10)
    publisher = BusPublisher(bus["frontend"], high_water_mark=10)
    tracker = GapTracker()
    try:
        for _ in range(100):
            publisher.publish_sample("data.m.warmup", 0)
            if await subscriber.receive_within(0.05):
                break
        for i in range(20_000):  # far more than every queue on the way can hold
            publisher.publish_sample("data.m.p", i)
        last = 0
        while (message := await subscriber.receive_within(0.5)) is not None:
            if message.topic == "data.m.p":
                assert isinstance(message.payload, Sample)
                tracker.observe(message.topic, message.payload)
                last = message.payload.seq
    finally:
        publisher.close()
        subscriber.close()
    assert tracker.missing > 0, "the overflow must show as a gap, not pass unnoticed"
    assert tracker.duplicates == 0
    assert last <= 20_000
