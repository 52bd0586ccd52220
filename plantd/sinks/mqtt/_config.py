"""The ``mqtt:`` section of an MQTT sink file (``type: mqtt``); every key is in docs/sinks.md."""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from plantd.config import Check, Duration, Ge, Gt, KeyPath, Le
from plantd.sinks._config import SinkConfig

__all__ = [
    "EVENT_TOPIC",
    "EVENT_TOPIC_FIELDS",
    "MODULE_TOPIC",
    "MODULE_TOPIC_FIELDS",
    "PAYLOAD_FIELDS",
    "SAMPLE_TOPIC",
    "TOPIC_FIELDS",
    "MqttConfig",
    "MqttSinkConfig",
    "SparkplugConfig",
    "TlsConfig",
    "WillConfig",
]

_SPARKPLUG_ID = re.compile(r"[^/+#]+")

TOPIC_FIELDS = frozenset({"name", "module", "point", "topic"})
MODULE_TOPIC_FIELDS = frozenset({"name", "module"})
SAMPLE_TOPIC = "plantd/{module}/{point}"
MODULE_TOPIC = "plantd/{module}"
EVENT_TOPIC_FIELDS = frozenset({"name", "topic", "kind", "subject"})
EVENT_TOPIC = "plantd/events/{kind}/{subject}"
PAYLOAD_FIELDS = frozenset(
    {
        "name", "module", "point", "topic", "value", "value_json", "timestamp", "timestamp_ms",
        "quality", "seq", "epoch",
    }
)  # fmt: skip


def _template_problem(allowed: frozenset[str]) -> Check:
    def problem(text: str) -> str | None:
        try:
            names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
        except ValueError as exc:
            return f"not a valid template ({exc}): {text!r}"
        unknown = sorted({name for name in names if name not in allowed})
        if unknown:
            return (
                f"unknown field {{{unknown[0]}}} in {text!r} "
                f"(fields: {', '.join('{' + f + '}' for f in sorted(allowed))})"
            )
        return None

    return Check(problem)


def _sparkplug_id_problem(text: str) -> str | None:
    if _SPARKPLUG_ID.fullmatch(text):
        return None
    return f"a Sparkplug id may not be empty nor hold '/', '+' or '#', got {text!r}"


@dataclass(frozen=True, kw_only=True)
class TlsConfig:
    enabled: bool = False
    """Use TLS (implied by ``ca_file``)."""
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False
    """Skip the check of the server's host name (never in production)."""

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if (self.cert_file is None) != (self.key_file is None):
            yield ("key_file",), "cert_file and key_file go together (a client certificate)"


@dataclass(frozen=True, kw_only=True)
class WillConfig:
    """The last will: published by the broker when the sink's connection dies."""

    topic: str = "plantd/sinks/{name}/status"
    payload: str = "offline"
    online_payload: str = "online"
    """Published (retained) on the will topic after each connect."""
    qos: Annotated[int, Ge(0), Le(2)] = 1
    retain: bool = True


@dataclass(frozen=True, kw_only=True)
class SparkplugConfig:
    group_id: Annotated[str, Check(_sparkplug_id_problem)] = "plantd"
    edge_node_id: Annotated[str, Check(_sparkplug_id_problem)] | None = None
    """Default: the sink's name."""
    commands: bool = True
    """Route DCMD metrics to the module's ``write`` (and NCMD rebirth requests)."""


_SPARKPLUG_BATCHES = (
    "applies to format: json (Sparkplug sends one DDATA per device per delivery already)"
)
_MODULE_PAYLOAD = (
    "a payload template is for batching: none; with batching: module a message is a JSON "
    "array of the samples' objects"
)
_MODULE_TOPIC = (
    "with batching: module a message holds a module's samples: the topic may use {name} and "
    "{module} only,"
)


@dataclass(frozen=True, kw_only=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: Annotated[int, Ge(1), Le(65535)] = 1883
    client_id: str | None = None
    """Default: ``plantd-sink-NAME``."""
    username: str | None = None
    password: str | None = None
    password_file: Path | None = None
    tls: TlsConfig = field(default_factory=TlsConfig)
    keepalive: Annotated[float, Duration, Ge(5), Le(65535)] = 30.0
    connect_timeout: Annotated[float, Duration, Gt(0)] = 10.0
    ack_timeout: Annotated[float, Duration, Gt(0)] = 30.0
    """A delivery whose PUBACKs are not all back by then counts as a lost connection."""
    max_inflight: Annotated[int, Ge(1), Le(65535)] = 1000
    """Most messages sent and not yet acknowledged (PUBACK) at a time."""
    format: Literal["json", "sparkplug"] = "json"
    batching: Literal["none", "module"] = "none"
    """``format: json``: ``none``, one message per sample; ``module``, one message per module
    per delivery (a JSON array of the samples' objects) — docs/sinks.md, "Batching"."""
    topic: Annotated[str, _template_problem(TOPIC_FIELDS)] | None = None
    """Default: ``plantd/{module}/{point}``; with ``batching: module``, ``plantd/{module}``."""
    payload: Annotated[str, _template_problem(PAYLOAD_FIELDS)] | None = None
    """A template for ``format: json``; default: a JSON object with every field."""
    event_topic: Annotated[str, _template_problem(EVENT_TOPIC_FIELDS)] = EVENT_TOPIC
    """``format: json``: the topic of an event record (``event.alarm.x``: ``{kind}`` is
    ``alarm``, ``{subject}`` is ``x``); its payload is the record as a JSON object."""
    retain: bool = False
    will: WillConfig | None = field(default_factory=WillConfig)
    sparkplug: SparkplugConfig = field(default_factory=SparkplugConfig)

    @property
    def topic_template(self) -> str:
        """``topic``, or its default for the batching."""
        if self.topic is not None:
            return self.topic
        return MODULE_TOPIC if self.batching == "module" else SAMPLE_TOPIC

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if self.password is not None and self.password_file is not None:
            yield ("password_file",), "give password or password_file, not both"
        if self.batching == "none":
            return
        if self.format != "json":
            yield ("batching",), _SPARKPLUG_BATCHES
        if self.payload is not None:
            yield ("payload",), _MODULE_PAYLOAD
        if self.topic is not None:
            fields = {name for _, name, _, _ in string.Formatter().parse(self.topic) if name}
            if fields - MODULE_TOPIC_FIELDS:
                yield ("topic",), f"{_MODULE_TOPIC} got {self.topic!r}"


@dataclass(frozen=True, kw_only=True)
class MqttSinkConfig(SinkConfig):
    type: Literal["mqtt"]
    mqtt: MqttConfig = field(default_factory=MqttConfig)
