"""paho-mqtt (2.x, its own network thread) seen from asyncio: one object per connection.

paho calls its callbacks on its network thread; each is handed to the event loop with
``call_soon_threadsafe``, so everything below the callbacks runs on the loop thread and needs
no lock. A PUBACK therefore resolves its future after ``publish`` has returned the message id,
even when the acknowledgement raced ahead of it.

A session is used once: when the connection drops, the forwarder closes it and makes a new
one. paho's own reconnect never gets to resend anything — the disk queue is the only
retransmission there is, which keeps the accounting in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from plantd.sinks._config import MqttConfig
from plantd.sinks._upstream import UpstreamUnavailable

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
        self._pending: dict[int, asyncio.Future[None]] = {}
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
        client.max_inflight_messages_set(settings.max_inflight)
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
        self._loop.call_soon_threadsafe(self._acked, mid)

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
        for future in self._pending.values():
            if not future.done():
                future.set_exception(UpstreamUnavailable(reason))
        self._pending.clear()

    def _acked(self, mid: int) -> None:
        future = self._pending.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(None)

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

    def publish(self, message: Message) -> asyncio.Future[None]:
        """Send one message; the future resolves on its PUBACK (QoS 0: once handed to paho)."""
        if self.lost.is_set():
            raise UpstreamUnavailable(self.reason)
        topic, payload, qos, retain = message
        info = self._client.publish(topic, payload, qos, retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._lose(f"publish failed: {mqtt.error_string(info.rc)}")
            raise UpstreamUnavailable(self.reason)
        future: asyncio.Future[None] = self._loop.create_future()
        if qos == 0:
            future.set_result(None)
        else:
            self._pending[info.mid] = future
        return future

    async def publish_all(self, messages: Sequence[Message], timeout: float) -> None:
        """Send every message and wait for every acknowledgement, or raise."""
        futures = [self.publish(message) for message in messages]
        if not futures:
            return
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*futures)
        except TimeoutError:
            self._lose(f"{len(self._pending)} PUBACK(s) missing after {timeout:g} s")
            raise UpstreamUnavailable(self.reason) from None

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
