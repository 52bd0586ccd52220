"""Sink files, ``sinks.d/NAME.yaml``: one per upstream sink (``plant sink run NAME``).

    type: KIND                     # the sink's kind: a name in the plantd.sinks entry points
    topics: ["data."]              # bus prefixes (or globs with *) to forward
    events: ["event.alarm."]       # bus prefixes of event records to forward ([]: none)
    queue:   {max_bytes: 256MiB, max_age: 168h, drain_rate: 1000, …}
    repair:  {enabled: true, timeout: 60s}
    KIND:    {…}                   # the kind's own section, read by the kind's config_type

What every sink shares is :class:`SinkConfig`; each kind extends it with its own section
(the kinds that come with plantd, or a third party's: docs/sinks.md, "Writing a sink").
Every key is documented in ``docs/sinks.md``; the file is read with
``parse_dataclass`` like the rest of plantd's config, so every wrong key is named with its line.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from plantd.config import (
    INTERNAL,
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
from plantd.sinks._registry import available_sink_kinds, load_sink_kind

__all__ = [
    "SINKS_DIR",
    "QueueConfig",
    "RepairConfig",
    "SinkConfig",
    "list_sinks",
    "load_sink",
    "sink_path",
]

SINKS_DIR = "sinks.d"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*", re.ASCII)


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
    """Most samples per upstream delivery (one burst of messages, one COPY)."""
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

    type: str
    """The kind: the name of its ``plantd.sinks`` entry point."""
    topics: tuple[str, ...] = ("data.",)
    events: tuple[str, ...] = ("event.alarm.",)
    """Bus prefixes of event records (``plantd.bus.Record``) to forward, queued with the
    samples (docs/sinks.md, "Events"); ``[]`` forwards none."""
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
        for index, prefix in enumerate(self.events):
            problem = _event_prefix_problem(prefix)
            if problem is not None:
                yield ("events", index), problem
        if self.reconnect_initial > self.reconnect_max:
            yield ("reconnect_initial",), "must not exceed reconnect_max"

    def queue_path(self, config: PlantdConfig) -> Path:
        if self.queue.path is not None:
            return self.queue.path
        return config.paths.data / "sinks" / f"{self.name}.queue.db"


def _event_prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot name events to forward, or None: a literal prefix of
    ``event.*`` topics (records), with no glob characters."""
    if not prefix.startswith("event."):
        return f"events are records on event.* topics, got {prefix!r}"
    if any(char in prefix for char in "*?["):
        return f"an events entry is a literal bus prefix (no globs), got {prefix!r}"
    if not prefix.isascii() or any(char.isspace() for char in prefix):
        return f"a bus prefix is ASCII without spaces, got {prefix!r}"
    return None


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


@functools.cache
def _header(kinds: tuple[str, ...]) -> type[Any]:
    """A dataclass that reads only ``type``, as one of the installed ``kinds``: the schema's
    own Literal check then words an unknown kind (the known ones, a did-you-mean) as for any
    other value."""
    one_of: Any = Literal.__getitem__(kinds)  # Literal["a", "b", …], made at run time
    return dataclasses.make_dataclass("SinkHeader", [("type", one_of)], frozen=True)


def load_sink(config: PlantdConfig, name: str) -> SinkConfig:
    """Read and validate ``sinks.d/NAME.yaml`` with its kind's ``config_type``;
    :class:`ConfigError` names every problem."""
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
    kinds = tuple(available_sink_kinds())
    if not kinds:
        raise ConfigError([f"{path}: type: no sink kinds installed (entry points plantd.sinks)"])
    header = parse_dataclass(
        _header(kinds),
        document.data,
        source=str(path),
        lines=document.lines,
        unknown_keys="ignore",
    )
    kind = load_sink_kind(header.type, source=str(path))
    parsed: SinkConfig = parse_dataclass(
        kind.config_type,
        document.data,
        source=str(path),
        lines=document.lines,
        base_dir=path.parent,
    )
    return dataclasses.replace(parsed, name=name, source=path)
