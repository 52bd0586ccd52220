"""plantd.streams: the fan-out that the push drivers (GPIO, serial, OPC UA) hand changes to."""

from __future__ import annotations

import asyncio

import pytest

from plantd.errors import DeviceUnavailable
from plantd.streams import Fanout, Feed


async def drain(feed: Feed[int]) -> list[int]:
    return [item async for item in feed]


async def test_an_item_reaches_every_feed_of_its_key_and_no_other() -> None:
    fanout: Fanout[str, int] = Fanout()
    with (
        fanout.subscribe("a") as first,
        fanout.subscribe("a") as second,
        fanout.subscribe("b") as other,
    ):
        for item in (1, 2, 3):
            fanout.publish("a", item)
        fanout.publish("b", 9)
        fanout.end()
        assert await drain(first) == [1, 2, 3]
        assert await drain(second) == [1, 2, 3]
        assert await drain(other) == [9]


async def test_a_waiting_consumer_is_woken_by_a_publish() -> None:
    fanout: Fanout[str, int] = Fanout()
    with fanout.subscribe("a") as feed:
        waiting = asyncio.create_task(feed.get())
        await asyncio.sleep(0)  # let it reach the empty queue
        assert not waiting.done()
        fanout.publish("a", 7)
        assert await waiting == 7


async def test_a_full_feed_drops_its_oldest_items_and_the_producer_goes_on() -> None:
    fanout: Fanout[str, int] = Fanout(maxsize=3)
    with fanout.subscribe("a") as slow, fanout.subscribe("a") as quick:
        for item in range(1, 6):
            fanout.publish("a", item)
            assert await quick.get() == item  # one slow consumer holds up no one else
        fanout.end()
        # 1 and 2 made room for 4 and 5, then 3 for the end (which needs a place too)
        assert await drain(slow) == [4, 5]
        assert slow.dropped == 3
        assert quick.dropped == 0
        assert await drain(quick) == []


async def test_an_unbounded_feed_keeps_everything() -> None:
    feed: Feed[int] = Feed()
    for item in range(10_000):
        feed.put(item)
    feed.end()
    assert await drain(feed) == list(range(10_000))
    assert feed.dropped == 0


async def test_the_end_comes_after_what_was_queued_and_stays() -> None:
    feed: Feed[int] = Feed(maxsize=10)
    feed.put(1)
    feed.end()
    feed.put(2)  # after the end: nobody is listening any more
    assert feed.ended
    assert await feed.get() == 1
    assert await feed.get() is None
    assert await feed.get() is None  # not a hang: the end is remembered


async def test_an_end_with_an_error_raises_it_after_the_queued_items() -> None:
    feed: Feed[int] = Feed()
    feed.put(1)
    feed.end(DeviceUnavailable("the port vanished"))
    feed.end(DeviceUnavailable("closed"))  # only the first end counts
    assert await feed.get() == 1
    with pytest.raises(DeviceUnavailable, match="the port vanished"):
        await drain(feed)
    with pytest.raises(DeviceUnavailable, match="the port vanished"):
        await feed.get()


async def test_end_reaches_every_key_and_later_subscribers_start_afresh() -> None:
    fanout: Fanout[str, int] = Fanout()
    with fanout.subscribe("a") as a, fanout.subscribe("b") as b:
        fanout.end(DeviceUnavailable("lost"))
        fanout.publish("a", 1)  # to the ended feeds: gone
        with fanout.subscribe("a") as fresh:
            assert fanout.subscribers("a") == 1
            fanout.publish("a", 2)
            for ended in (a, b):
                with pytest.raises(DeviceUnavailable, match="lost"):
                    await ended.get()
            assert await fresh.get() == 2
            assert not fresh.ended


def test_leaving_the_block_unsubscribes_even_on_an_error() -> None:
    fanout: Fanout[str, int] = Fanout()

    def consume() -> None:
        with fanout.subscribe("a"):
            assert fanout.subscribers("a") == 1
            raise RuntimeError("the consumer broke")

    with pytest.raises(RuntimeError, match="broke"):
        consume()
    assert fanout.subscribers("a") == 0
    fanout.publish("a", 1)  # no subscriber: goes nowhere, raises nothing
