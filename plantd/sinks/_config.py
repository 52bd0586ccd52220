"""Sink files, ``sinks.d/NAME.yaml``: one per upstream sink (``plant sink run NAME``).

    type: mqtt                     # or postgres
    topics: ["data."]              # bus prefixes (or globs with *) to forward
    queue:   {max_bytes: 256MiB, max_age: 168h, drain_rate: 1000, …}
    repair:  {enabled: true, timeout: 60s}
    mqtt:    {host: …, port: 1883, topic: "plantd/{module}/{point}", …}   # type: mqtt
                                   # (batching: module: one message per module per delivery)
    postgres: {dsn: "host=… dbname=…", table: plantd_samples, …}          # type: postgres

Every key is documented in ``docs/sinks.md``; the file is read with ``parse_dataclass`` like
the rest of plantd's config, so every wrong key is named with its line.
"""

from __future__ import annotations

import dataclasses
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from plantd.config import (
    INTERNAL,
    Check,
    Duration,
    Ge,
    Gt,
    KeyPath,
    Le,
    PlantdConfig,
    Size,
    parse_dataclass,
    read_yaml,
)
from plantd.errors import ConfigError

__all__ = [
    "MODULE_TOPIC",
    "MODULE_TOPIC_FIELDS",
    "PAYLOAD_FIELDS",
    "SAMPLE_TOPIC",
    "SINKS_DIR",
    "TOPIC_FIELDS",
    "MqttConfig",
    "MqttSinkConfig",
    "PostgresConfig",
    "PostgresSinkConfig",
    "QueueConfig",
    "RepairConfig",
    "SinkConfig",
    "SparkplugConfig",
    "TlsConfig",
    "WillConfig",
    "list_sinks",
    "load_sink",
    "sink_path",
]

SINKS_DIR = "sinks.d"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*", re.ASCII)
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}", re.ASCII)
_SPARKPLUG_ID = re.compile(r"[^/+#]+")

TOPIC_FIELDS = frozenset({"name", "module", "point", "topic"})
MODULE_TOPIC_FIELDS = frozenset({"name", "module"})
SAMPLE_TOPIC = "plantd/{module}/{point}"
MODULE_TOPIC = "plantd/{module}"
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


def _identifier_problem(text: str) -> str | None:
    if _IDENTIFIER.fullmatch(text):
        return None
    return f"expected a lower-case SQL identifier (letters, digits, '_'), got {text!r}"


def _sparkplug_id_problem(text: str) -> str | None:
    if _SPARKPLUG_ID.fullmatch(text):
        return None
    return f"a Sparkplug id may not be empty nor hold '/', '+' or '#', got {text!r}"


@dataclass(frozen=True, kw_only=True)
class QueueConfig:
    """The disk queue between the bus and the upstream (docs/sinks.md, "store-and-forward")."""

    path: Path | None = None
    """The SQLite file; default ``<paths.data>/sinks/NAME.queue.db``."""
    max_bytes: Annotated[int, Size, Ge(65_536)] = 268_435_456
    max_age: Annotated[float, Duration, Gt(0)] = 7 * 24 * 3600.0
    commit_interval: Annotated[float, Duration, Gt(0), Le(10)] = 0.25
    """Samples taken from the bus are committed to the queue at this pace."""
    batch_size: Annotated[int, Ge(1), Le(100_000)] = 500
    """Most samples per upstream delivery (one MQTT burst, one COPY)."""
    drain_rate: Annotated[float, Ge(0)] = 1000.0
    """Backlog samples per second once the link is back, on top of live data (0: no limit)."""
    max_pending: Annotated[int, Ge(100)] = 100_000
    """Most samples kept in memory while queue commits fail (a full disk); beyond, the oldest
    are dropped and counted."""


@dataclass(frozen=True, kw_only=True)
class RepairConfig:
    """Filling gaps in what the sink took from the bus from the historian (docs/sinks.md)."""

    enabled: bool = True
    timeout: Annotated[float, Duration, Gt(0)] = 60.0
    """How long a gap is retried before its samples are counted as lost."""


@dataclass(frozen=True, kw_only=True)
class SinkConfig:
    """What every sink file shares."""

    type: Literal["mqtt", "postgres"]
    topics: tuple[str, ...] = ("data.",)
    queue: QueueConfig = field(default_factory=QueueConfig)
    repair: RepairConfig = field(default_factory=RepairConfig)
    reconnect_initial: Annotated[float, Duration, Gt(0)] = 0.5
    reconnect_max: Annotated[float, Duration, Gt(0)] = 30.0
    status_interval: Annotated[float, Duration, Gt(0)] = 5.0
    name: str = field(default="", metadata=INTERNAL)
    source: Path | None = field(default=None, metadata=INTERNAL)

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        for index, topic in enumerate(self.topics):
            if not topic.startswith("data"):
                yield ("topics", index), f"a sink forwards samples (data.*), got {topic!r}"
        if self.reconnect_initial > self.reconnect_max:
            yield ("reconnect_initial",), "must not exceed reconnect_max"

    def queue_path(self, config: PlantdConfig) -> Path:
        if self.queue.path is not None:
            return self.queue.path
        return config.paths.data / "sinks" / f"{self.name}.queue.db"


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


@dataclass(frozen=True, kw_only=True)
class PostgresConfig:
    dsn: str = "host=127.0.0.1 port=5432 dbname=plantd"
    """A libpq connection string (``host=… port=… dbname=… user=…``) or a URI."""
    password_file: Path | None = None
    schema: Annotated[str, Check(_identifier_problem)] = "public"
    table: Annotated[str, Check(_identifier_problem)] = "plantd_samples"
    timescale: Literal["auto", "require", "never"] = "auto"
    """``auto``: a hypertable if the timescaledb extension is installed in the database;
    ``require``: refuse to run without it; ``never``: a plain table even with it."""
    source: str | None = None
    """The ``source`` column of every row; default: the sink's name."""
    connect_timeout: Annotated[float, Duration, Gt(0)] = 10.0


@dataclass(frozen=True, kw_only=True)
class PostgresSinkConfig(SinkConfig):
    type: Literal["postgres"]
    postgres: PostgresConfig = field(default_factory=PostgresConfig)


@dataclass(frozen=True, slots=True)
class _Header:
    type: Literal["mqtt", "postgres"]


def sink_path(config: PlantdConfig, name: str) -> Path:
    if config.source_dir is None:
        raise ConfigError(
            [f"sink {name!r}: no configuration directory (use --config DIR or $PLANTD_CONFIG)"]
        )
    return config.source_dir / SINKS_DIR / f"{name}.yaml"


def list_sinks(config: PlantdConfig) -> list[str]:
    """Names of the sink files in ``<config dir>/sinks.d``."""
    if config.source_dir is None:
        return []
    directory = config.source_dir / SINKS_DIR
    return sorted(p.stem for p in directory.glob("*.yaml") if not p.name.startswith("."))


def load_sink(config: PlantdConfig, name: str) -> MqttSinkConfig | PostgresSinkConfig:
    """Read and validate ``sinks.d/NAME.yaml``; :class:`ConfigError` names every problem."""
    path = sink_path(config, name)
    if not _NAME.fullmatch(name):
        raise ConfigError(
            [f"{path}: sink name {name!r} may hold only letters, digits, '-' and '_'"]
        )
    if not path.is_file():
        raise ConfigError([f"{path}: no such sink file"])
    document = read_yaml(path)
    if document.problems:
        raise ConfigError(list(document.problems))
    header = parse_dataclass(
        _Header, document.data, source=str(path), lines=document.lines, unknown_keys="ignore"
    )
    cls: type[MqttSinkConfig | PostgresSinkConfig] = (
        MqttSinkConfig if header.type == "mqtt" else PostgresSinkConfig
    )
    parsed = parse_dataclass(
        cls, document.data, source=str(path), lines=document.lines, base_dir=path.parent
    )
    return dataclasses.replace(parsed, name=name, source=path)
