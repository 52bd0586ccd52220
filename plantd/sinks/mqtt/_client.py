"""paho-mqtt (2.x, its own network thread) seen from asyncio: one object per connection.

paho calls its callbacks on its network thread; each is handed to the event loop with
``call_soon_threadsafe``, so everything below the callbacks runs on the loop thread and needs
no lock. A PUBACK is therefore counted after ``publish`` has returned the message id, even
when the acknowledgement raced ahead of it. PUBACKs are handed over in bunches: the network
thread appends each message id to a deque and wakes the loop only once the deque holds as
many as the loop waits for (``_wanted``: one wake-up costs a write to the loop's self-pipe
and a turn of the loop; per PUBACK, that was a large part of the sink's time at thousands of
messages a second).

The window of messages in flight (``max_inflight``) is kept here, not by paho: paho's own
limit scans every message in flight at each PUBACK, which is quadratic in the window.

A session is used once: when the connection drops, the forwarder closes it and makes a new
one. paho's own reconnect never gets to resend anything — the disk queue is the only
retransmission there is, which keeps the accounting in one place.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from plantd.sinks import UpstreamUnavailable
from plantd.sinks.mqtt._config import MqttConfig

__all__ = ["Message", "MqttSession"]

log = logging.getLogger(__name__)

Message = tuple[str, bytes, int, bool]  # topic, payload, qos, retain


class MqttSession:
    def __init__(
        self,
        settings: MqttConfig,
        client_id: str,
        *,
        password: str | None = None,
        will: Message | None = None,
        inbox: asyncio.Queue[tuple[str, bytes]] | None = None,
    ) -> None:
        self.settings = settings
        self._loop = asyncio.get_running_loop()
        self._connected = asyncio.Event()
        self.lost = asyncio.Event()
        self.reason = ""
        self._window = settings.max_inflight
        self._unacked: set[int] = set()  # message ids sent with QoS > 0, no PUBACK yet
        self._acks: collections.deque[int] = collections.deque()  # from paho's thread
        self._wanted = 1  # PUBACKs the loop waits for: wake it when the deque holds as many
        self._acks_scheduled = False  # a _take_acks is on its way to the loop
        self._progress = asyncio.Event()  # set by PUBACKs and by the loss of the connection
        self._sending = asyncio.Lock()  # one publish_all at a time: it waits for all of its own
        self._inbox = inbox
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        tls = settings.tls
        if tls.enabled or tls.ca_file is not None:
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(tls.insecure)
        if settings.username is not None:
            client.username_pw_set(settings.username, password)
        if will is not None:
            client.will_set(will[0], will[1], will[2], will[3])
        client.max_inflight_messages_set(0)  # no limit in paho: the window is publish_all's
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=3600, max_delay=3600)  # we reconnect, not paho
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self._client = client

    # -- paho's thread -----------------------------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._loop.call_soon_threadsafe(self._lose, f"connection refused: {reason}")
        else:
            self._loop.call_soon_threadsafe(self._connected.set)

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._loop.call_soon_threadsafe(self._lose, f"disconnected: {reason}")

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        acks = self._acks
        acks.append(mid)
        if len(acks) >= self._wanted and not self._acks_scheduled:
            self._acks_scheduled = True
            self._loop.call_soon_threadsafe(self._take_acks)

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._inbox is not None:
            self._loop.call_soon_threadsafe(
                self._inbox.put_nowait, (message.topic, bytes(message.payload))
            )

    # -- the loop thread ---------------------------------------------------------------------

    def _lose(self, reason: str) -> None:
        if self.lost.is_set():
            return
        self.reason = reason
        self.lost.set()
        self._progress.set()

    def _take_acks(self) -> None:
        # Cleared before the deque is emptied: an id appended after this line finds the flag
        # down and schedules another call.
        self._acks_scheduled = False
        acks, unacked = self._acks, self._unacked
        while acks:
            unacked.discard(acks.popleft())
        self._progress.set()

    async def connect(self) -> None:
        settings = self.settings
        where = f"mqtt://{settings.host}:{settings.port}"
        try:
            self._client.connect_async(settings.host, settings.port, int(settings.keepalive))
            self._client.loop_start()
        except (OSError, ValueError) as exc:
            raise UpstreamUnavailable(f"{where}: {exc}") from exc
        waiters = [
            asyncio.ensure_future(self._connected.wait()),
            asyncio.ensure_future(self.lost.wait()),
        ]
        try:
            await asyncio.wait(
                waiters, timeout=settings.connect_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        if self.lost.is_set():
            raise UpstreamUnavailable(f"{where}: {self.reason}")
        if not self._connected.is_set():
            self._lose(f"no CONNACK within {settings.connect_timeout:g} s")
            raise UpstreamUnavailable(f"{where}: {self.reason}")

    def _send(self, message: Message) -> None:
        topic, payload, qos, retain = message
        info = self._client.publish(topic, payload, qos, retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._lose(f"publish failed: {mqtt.error_string(info.rc)}")
            raise UpstreamUnavailable(self.reason)
        if qos:
            self._unacked.add(info.mid)

    async def _wait_acks(self, count: int, timeout: float) -> None:
        """Wait until ``count`` more PUBACKs have arrived (or the connection ended); raise if
        the connection is lost or they are not all there within ``timeout`` seconds."""
        self._progress.clear()
        self._wanted = count
        if len(self._acks) >= count:  # arrived before _wanted said to wake us
            self._take_acks()
        try:
            async with asyncio.timeout(timeout):
                await self._progress.wait()
        except TimeoutError:
            self._lose(f"{len(self._unacked)} PUBACK(s) missing after {timeout:g} s")
        finally:
            self._wanted = 1
        if self.lost.is_set():
            raise UpstreamUnavailable(self.reason)

    async def publish_all(self, messages: Sequence[Message], timeout: float) -> None:
        """Send every message, at most ``max_inflight`` unacknowledged at a time, and return
        once every one is acknowledged (QoS 0: handed to paho). Raises
        :class:`UpstreamUnavailable` when the connection is lost, or when ``timeout`` seconds
        pass without any PUBACK while some are awaited."""
        if self.lost.is_set():
            raise UpstreamUnavailable(self.reason)
        async with self._sending:
            unacked, window = self._unacked, self._window
            for message in messages:
                while len(unacked) >= window:
                    await self._wait_acks(len(unacked) - window + 1, timeout)
                self._send(message)
            while unacked:
                await self._wait_acks(len(unacked), timeout)

    def subscribe(self, topics: Sequence[str], qos: int = 1) -> None:
        if topics:
            self._client.subscribe([(topic, qos) for topic in topics])

    async def close(self, farewell: Message | None = None) -> None:
        """Send ``farewell`` if still connected (best effort), disconnect, stop paho's thread."""
        if farewell is not None and not self.lost.is_set():
            with contextlib.suppress(UpstreamUnavailable):
                await self.publish_all([farewell], timeout=2.0)
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
        self._lose("closed")
