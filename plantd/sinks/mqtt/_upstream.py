"""The MQTT upstream: plain (topic and payload templates, JSON by default) or Sparkplug B.

Plain, ``batching: none`` (the default): each sample becomes one QoS 1 message on
``mqtt.topic`` (fields ``{name}`` the sink, ``{module}``, ``{point}``, ``{topic}`` the bus
topic). Its payload is, by default, the JSON object ``{"point", "value", "timestamp",
"quality", "seq", "epoch"}``; ``mqtt.payload`` is a template instead, with those fields plus
``{module}``, ``{value_json}`` and ``{timestamp_ms}``.

Plain, ``batching: module``: each delivery sends one QoS 1 message per module it holds
samples of, on ``mqtt.topic`` (``{name}``, ``{module}``): a JSON array of the same objects,
in queue order. At thousands of samples a second this is what keeps up: an MQTT message costs
the sink, the broker and every subscriber about the same whether it holds one sample or 500.

The will (``mqtt.will``) says ``offline`` on the sink's status topic; after each connect the
sink publishes ``online`` there (both retained by default).

Events (the sink's ``events`` key), plain: each record is one QoS 1 message on
``mqtt.event_topic`` (fields ``{name}``, ``{topic}`` the bus topic, ``{kind}`` its second
part, ``{subject}`` the rest: ``plantd/events/alarm/<alarm>`` by default), its payload the
record as a JSON object, whatever the batching. Sparkplug: an alarm record becomes the node
metrics of ``_alarms`` in an NDATA (rule S8); other records have no Sparkplug form and are
acknowledged unsent (counted in ``events_skipped``).

Sparkplug B: see ``_sparkplug`` for the session rules; commands are routed by
:meth:`MqttUpstream.serve_commands`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from plantd.bus import Quality, Sample, SampleValue
from plantd.sinks import DiskQueue, Outgoing, UpstreamUnavailable, split_topic
from plantd.sinks._upstream import OutgoingEvent, event_json
from plantd.sinks.mqtt._alarms import alarm_metrics, alarm_name, event_time_ms
from plantd.sinks.mqtt._client import Message, MqttSession
from plantd.sinks.mqtt._config import MqttSinkConfig
from plantd.sinks.mqtt._sparkplug import REBIRTH, DataType, EdgeNode, NodeValue

__all__ = [
    "MqttUpstream",
    "alarm_values",
    "render_event_topic",
    "render_payload",
    "render_topic",
    "sample_object",
]

log = logging.getLogger(__name__)

Known = Callable[[], dict[str, dict[str, Sample]]]
KnownEvents = Callable[[], dict[str, dict[str, Any]]]
Write = Callable[[str, str, SampleValue], Awaitable[None]]


_JSON = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps(…, separators=…), made once
_LABELS = {quality: quality.label for quality in Quality}


def render_topic(template: str, name: str, topic: str) -> str:
    module, point = split_topic(topic)
    return template.format(name=name, module=module, point=point, topic=topic)


def sample_object(point: str, sample: Sample) -> dict[str, Any]:
    """The JSON object of a sample (``point`` is ``module.point``); NaN and infinities become
    strings (as ``plantd.bus.sample_to_json``)."""
    value = sample.value
    if type(value) is float and not math.isfinite(value):
        value = str(value)
    return {
        "point": point,
        "value": value,
        "timestamp": sample.timestamp,
        "quality": _LABELS[sample.quality],
        "seq": sample.seq,
        "epoch": sample.epoch,
    }


def render_event_topic(template: str, name: str, topic: str) -> str:
    """``event.alarm.tank-high`` -> ``{kind}`` ``alarm``, ``{subject}`` ``tank-high``."""
    _, _, rest = topic.partition(".")
    kind, _, subject = rest.partition(".")
    return template.format(name=name, topic=topic, kind=kind, subject=subject)


def alarm_values(
    topic: str, fields: dict[str, Any], now_ms: int, *, historical: bool = False
) -> list[NodeValue]:
    """The Sparkplug node metrics of an alarm record (``_alarms``); [] for another record."""
    alarm = alarm_name(topic, fields)
    if alarm is None:
        return []
    stamp = event_time_ms(fields, now_ms)
    return [
        NodeValue(metric, datatype, value, stamp, historical)
        for metric, datatype, value in alarm_metrics(alarm, fields)
    ]


def render_payload(template: str | None, name: str, topic: str, sample: Sample) -> bytes:
    module, point = split_topic(topic)
    data = sample_object(f"{module}.{point}", sample)
    if template is None:
        return _JSON(data).encode()
    value = data["value"]
    return template.format(
        name=name,
        module=module,
        point=point,
        topic=topic,
        value=value,
        value_json=_JSON(value),
        timestamp=sample.timestamp,
        timestamp_ms=math.floor(sample.timestamp * 1000),
        quality=data["quality"],
        seq=sample.seq,
        epoch=sample.epoch,
    ).encode()


class MqttUpstream:
    def __init__(
        self,
        sink: MqttSinkConfig,
        queue: DiskQueue,
        known: Known,
        write: Write,
        *,
        known_events: KnownEvents = dict,
    ) -> None:
        self.sink = sink
        self._known_events = known_events
        self.events_sent = 0
        self.events_skipped = 0
        self.settings = sink.mqtt
        self.queue = queue
        self._known = known
        self._write = write
        self._password = self.settings.password
        if self.settings.password_file is not None:
            self._password = self.settings.password_file.read_text().strip()
        self._client_id = self.settings.client_id or f"plantd-sink-{sink.name}"
        self._session: MqttSession | None = None
        self._node: EdgeNode | None = None
        self._inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._rebirth = False
        self._topics: dict[str, str] = {}  # bus topic (or module) -> MQTT topic
        self._points: dict[str, tuple[str, str]] = {}  # bus topic -> (module, "module.point")
        self.connects = 0
        self.commands = 0
        self.command_errors = 0
        # Sparkplug datatypes, fixed at a metric's first value for the queue's life (S7).
        self._types: dict[tuple[str, str], DataType] = {}
        if self.sparkplug:
            self._types = {k: DataType(v) for k, v in queue.metric_types().items()}
        self._unsaved_types: list[tuple[str, str, int]] = []
        self._mismatched = self._untyped = 0

    @property
    def sparkplug(self) -> bool:
        return self.settings.format == "sparkplug"

    def _status_will(self, payload: str) -> Message | None:
        will = self.settings.will
        if will is None:
            return None
        topic = will.topic.format(name=self.sink.name)
        return topic, payload.encode(), will.qos, will.retain

    async def connect(self) -> None:
        settings = self.settings
        now_ms = int(time.time() * 1000)
        will: Message | None
        if self.sparkplug:
            spb = settings.sparkplug
            try:
                bdseq = await asyncio.to_thread(self.queue.next_counter, "bdseq")
            except sqlite3.Error as exc:  # a full disk: no session without a new bdSeq (S1)
                raise UpstreamUnavailable(f"cannot save the next bdSeq: {exc}") from exc
            if self._node is not None:  # the counts of the sessions before, for status()
                self._mismatched += self._node.mismatched
                self._untyped += self._node.untyped
            self._node = EdgeNode(
                spb.group_id, spb.edge_node_id or self.sink.name, bdseq, self._types
            )
            topic, payload = self._node.death(now_ms)
            will = (topic, payload, 1, False)
        else:
            will = self._status_will(settings.will.payload) if settings.will else None
        session = MqttSession(
            settings, self._client_id, password=self._password, will=will, inbox=self._inbox
        )
        try:
            await session.connect()
            if self._node is not None:
                if settings.sparkplug.commands:
                    session.subscribe([self._node.topic("NCMD"), self._node.topic("DCMD") + "/+"])
                births = self._node.birth(now_ms, self._known(), self._alarms(now_ms))
                await self._save_types()
                await session.publish_all(
                    [(t, p, 1, False) for t, p in births], settings.ack_timeout
                )
            elif settings.will is not None:
                online = self._status_will(settings.will.online_payload)
                assert online is not None
                await session.publish_all([online], settings.ack_timeout)
        except BaseException:
            await session.close()
            raise
        self._session = session
        self._rebirth = False
        self.connects += 1

    async def deliver(self, batch: Sequence[Outgoing]) -> int:
        session = self._session
        if session is None or session.lost.is_set():
            raise UpstreamUnavailable(session.reason if session else "not connected")
        settings = self.settings
        messages: list[Message]
        if self._node is not None:
            now_ms = int(time.time() * 1000)
            messages = self._asked_rebirth(now_ms)
            items = [(*split_topic(o.topic), o.sample, o.historical) for o in batch]
            data = self._node.data(now_ms, items, self._known())
            messages += [(t, p, 1, False) for t, p in data]
            await self._save_types()
        elif settings.batching == "module":
            messages = self._module_messages(batch)
        else:
            messages = self._sample_messages(batch)
        await session.publish_all(messages, settings.ack_timeout)
        return 0

    def _asked_rebirth(self, now_ms: int) -> list[Message]:
        """The births an NCMD rebirth asked for (S2, S6), once; [] if none was asked."""
        if self._node is None or not self._rebirth:
            return []
        self._rebirth = False
        births = self._node.birth(now_ms, self._known(), self._alarms(now_ms))
        return [(t, p, 1, False) for t, p in births]

    def _alarms(self, now_ms: int) -> list[NodeValue]:
        """The node metrics of the last record of every alarm taken (what an NBIRTH says)."""
        values: list[NodeValue] = []
        for topic, fields in sorted(self._known_events().items()):
            values += alarm_values(topic, fields, now_ms)
        return values

    async def deliver_events(self, events: Sequence[OutgoingEvent]) -> int:
        """Publish event records (QoS 1) and wait for every PUBACK; see the module doc."""
        session = self._session
        if session is None or session.lost.is_set():
            raise UpstreamUnavailable(session.reason if session else "not connected")
        settings = self.settings
        messages: list[Message]
        skipped = 0
        if self._node is not None:
            now_ms = int(time.time() * 1000)
            values: list[NodeValue] = []
            for event in events:
                found = alarm_values(event.topic, event.fields, now_ms,
                                     historical=event.historical)  # fmt: skip
                skipped += not found
                values += found
            messages = self._asked_rebirth(now_ms)
            data = self._node.node_data(now_ms, values, self._known())
            messages += [(t, p, 1, False) for t, p in data]
            await self._save_types()  # a rebirth's DBIRTHs may have fixed datatypes (S7)
        else:
            template, name = settings.event_topic, self.sink.name
            messages = [
                (render_event_topic(template, name, event.topic), event_json(event.fields).encode(),
                 1, settings.retain)
                for event in events
            ]  # fmt: skip
        await session.publish_all(messages, settings.ack_timeout)
        self.events_sent += len(events) - skipped
        self.events_skipped += skipped
        return 0

    async def _save_types(self) -> None:
        """Keep the datatypes fixed since the last call (S7) in the queue file. If it cannot
        be written now (a full disk), they are kept in memory and saved next time."""
        node = self._node
        assert node is not None
        self._unsaved_types += node.fixed
        node.fixed = []
        if not self._unsaved_types:
            return
        try:
            await self.queue.save_metric_types(self._unsaved_types)
        except sqlite3.Error as exc:
            log.warning("sink %s: cannot save Sparkplug datatypes yet: %s", self.sink.name, exc)
            return
        self._unsaved_types = []

    def _sample_messages(self, batch: Sequence[Outgoing]) -> list[Message]:
        name, settings, topics = self.sink.name, self.settings, self._topics
        template, payload, retain = settings.topic_template, settings.payload, settings.retain
        messages: list[Message] = []
        for item in batch:
            topic = topics.get(item.topic)
            if topic is None:
                topic = topics[item.topic] = render_topic(template, name, item.topic)
            messages.append((topic, render_payload(payload, name, item.topic, item.sample), 1,
                             retain))  # fmt: skip
        return messages

    def _module_messages(self, batch: Sequence[Outgoing]) -> list[Message]:
        """One message per module: a JSON array of its samples' objects, in queue order."""
        groups: dict[str, list[dict[str, Any]]] = {}
        points = self._points
        for item in batch:
            named = points.get(item.topic)
            if named is None:
                module, point = split_topic(item.topic)
                named = points[item.topic] = (module, f"{module}.{point}")
            group = groups.get(named[0])
            if group is None:
                group = groups[named[0]] = []
            group.append(sample_object(named[1], item.sample))
        settings, topics = self.settings, self._topics
        messages: list[Message] = []
        for module, objects in groups.items():
            topic = topics.get(module)
            if topic is None:
                topic = topics[module] = settings.topic_template.format(
                    name=self.sink.name, module=module
                )
            messages.append((topic, _JSON(objects).encode(), 1, settings.retain))
        return messages

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        farewell: Message | None = None
        if self._node is not None:
            topic, payload = self._node.death(int(time.time() * 1000))
            farewell = (topic, payload, 1, False)
        elif self.settings.will is not None:
            farewell = self._status_will(self.settings.will.payload)
        await session.close(farewell)

    async def serve_commands(self) -> None:
        """Route Sparkplug NCMD/DCMD messages for as long as the sink runs (S6)."""
        while True:
            topic, payload = await self._inbox.get()
            node = self._node
            if node is None:
                continue
            try:
                commands = node.command(topic, payload)
            except ValueError as exc:
                self.command_errors += 1
                log.warning("sink %s: undecodable command on %s: %s", self.sink.name, topic, exc)
                continue
            for command in commands:
                if command.device is None and command.point == REBIRTH:
                    log.info("sink %s: rebirth requested", self.sink.name)
                    self._rebirth = True
                    continue
                assert command.device is not None
                self.commands += 1
                try:
                    await self._write(command.device, command.point, command.value)
                except Exception as exc:  # supervisor edge: a refused write is logged, not fatal
                    self.command_errors += 1
                    log.warning(
                        "sink %s: DCMD %s.%s = %r failed: %s",
                        self.sink.name,
                        command.device,
                        command.point,
                        command.value,
                        exc,
                    )

    def status(self) -> dict[str, Any]:
        session = self._session
        return {
            "broker": f"{self.settings.host}:{self.settings.port}",
            "format": self.settings.format,
            "connected": session is not None and not session.lost.is_set(),
            "connects": self.connects,
            "commands": self.commands,
            "command_errors": self.command_errors,
            "bdseq": self._node.bdseq if self._node else None,
            "mismatched": self._mismatched + (self._node.mismatched if self._node else 0),
            "untyped": self._untyped + (self._node.untyped if self._node else 0),
            "events_sent": self.events_sent,
            "events_skipped": self.events_skipped,
        }
