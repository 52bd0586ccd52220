"""Handing a stream of items to its consumers: bounded queues that never block the producer.

A push driver (:class:`plantd.module.PushDriver`) learns of changes in one place — a callback
from a device thread, a frame from a port, a publish from a server — and each change goes to
every consumer of the group it belongs to (``driver.stream(group)``, one per caller). That
hand-off is written here once:

- :class:`Feed`: one consumer's queue. :meth:`Feed.put` never blocks, because the producer runs
  in the event loop, often in a callback that cannot wait. A bounded feed that is full drops
  its *oldest* item to make room: a stalled consumer loses history, not the current state, and
  memory stays bounded. :meth:`Feed.end` ends the stream after what is already queued, with an
  error the consumer then raises, or without one.
- :class:`Fanout`: feeds by key (a driver's group name), for any number of consumers per key.
  :meth:`Fanout.publish` puts an item in every feed of its key; :meth:`Fanout.end` ends every
  feed there is.

    streams: Fanout[str, dict[str, Reading]] = Fanout(maxsize=1000)
    streams.publish("panel", {"door": Reading(True)})      # producer: never blocks
    with streams.subscribe("panel") as feed:               # consumer: leaves on exit
        async for batch in feed:                           # ends when streams.end() is called
            ...

Items must not be ``None``: :meth:`Feed.get` answers ``None`` once the stream has ended. All of
this is for one event loop; it is not thread-safe (threads hand over with
``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Fanout", "Feed"]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class _End:
    """The marker queued behind the last item: the stream ended, with this error or none."""

    error: BaseException | None


class Feed(Generic[T]):
    """One consumer's stream: a queue the producer puts to without waiting.

    ``maxsize`` 0 is unbounded; otherwise a full feed drops its oldest item for each new one
    (counted in :attr:`dropped`).
    """

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self.dropped = 0
        """Items dropped, oldest first, because the consumer did not keep up."""
        self._queue: asyncio.Queue[T | _End] = asyncio.Queue(maxsize)
        self._ended = False
        self._end: _End | None = None  # the end, once the consumer has reached it

    @property
    def ended(self) -> bool:
        """True once :meth:`end` was called (the consumer may still be taking queued items)."""
        return self._ended

    def put(self, item: T) -> None:
        """Queue ``item`` for the consumer; ignored once the feed has ended."""
        if self._ended:
            return
        self._make_room()
        self._queue.put_nowait(item)

    def end(self, error: BaseException | None = None) -> None:
        """End the stream after the items already queued; the consumer then raises ``error``
        (if given) or sees the end. Only the first call counts."""
        if self._ended:
            return
        self._ended = True
        self._make_room()
        self._queue.put_nowait(_End(error))

    async def get(self) -> T | None:
        """The next item; ``None`` once the stream has ended, or its error raised (every call
        after the end answers the same)."""
        if self._end is None:
            item = await self._queue.get()
            if not isinstance(item, _End):
                return item
            self._end = item
        if self._end.error is not None:
            raise self._end.error
        return None

    def __aiter__(self) -> Feed[T]:
        return self

    async def __anext__(self) -> T:
        item = await self.get()
        if item is None:
            raise StopAsyncIteration
        return item

    def _make_room(self) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1


class Fanout(Generic[K, T]):
    """Feeds by key: every item published under a key reaches each feed subscribed to it.

    Every feed has the same ``maxsize`` (see :class:`Feed`): one slow consumer loses its own
    oldest items and holds up no one, neither the producer nor the other consumers.
    """

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self._feeds: dict[K, list[Feed[T]]] = {}

    @contextmanager
    def subscribe(self, key: K) -> Iterator[Feed[T]]:
        """A new feed of ``key``'s items from now on, unsubscribed when the block exits."""
        feed: Feed[T] = Feed(self.maxsize)
        feeds = self._feeds.setdefault(key, [])
        feeds.append(feed)
        try:
            yield feed
        finally:
            # end() may have taken the feed away already (and a later subscriber made a new list)
            current = self._feeds.get(key, [])
            if feed in current:
                current.remove(feed)
            if not current:
                self._feeds.pop(key, None)

    def publish(self, key: K, item: T) -> None:
        """Put ``item`` in every feed subscribed to ``key`` (none: it goes nowhere)."""
        for feed in self._feeds.get(key, ()):
            feed.put(item)

    def end(self, error: BaseException | None = None) -> None:
        """End every feed there is now (see :meth:`Feed.end`); later subscribers start afresh."""
        feeds, self._feeds = self._feeds, {}
        for key_feeds in feeds.values():
            for feed in key_feeds:
                feed.end(error)

    def subscribers(self, key: K) -> int:
        """How many feeds are subscribed to ``key`` now."""
        return len(self._feeds.get(key, ()))
