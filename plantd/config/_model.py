"""The plantd schema: ``plantd.yaml``, section by section.

Each section is a frozen dataclass whose defaults are the appliance defaults
(docs/architecture.md, "Sockets and endpoints": everything on loopback).
``docs/configuration.md`` documents every key; keep the two in step.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from plantd.config._control import ControlConfig
from plantd.config._historian import HistorianConfig
from plantd.config._location import KeyPath
from plantd.config._markers import INTERNAL, Check, Duration, Ge, Gt, Le, Size
from plantd.config._network import is_loopback_host
from plantd.config._observability import LoggerConfig, MetricsConfig
from plantd.config._proxy import ProxyConfig
from plantd.config._security import SecurityConfig

__all__ = [
    "BrokerConfig",
    "BusConfig",
    "ClientConfig",
    "ControlConfig",
    "HistorianConfig",
    "LoggerConfig",
    "LoggingConfig",
    "MetricsConfig",
    "PathsConfig",
    "PlantdConfig",
    "ProxyConfig",
    "SecurityConfig",
    "StateConfig",
    "WorkerConfig",
    "endpoint_problem",
    "is_loopback_endpoint",
]

_TCP = re.compile(r"(?P<host>\[[^\]]*\]|[^:\[\]]*):(?P<port>\d+|\*)", re.ASCII)


def endpoint_problem(endpoint: str) -> str | None:
    """None if ``endpoint`` is a ZeroMQ endpoint plantd can use, else what is wrong with it.

    A ZeroMQ endpoint is ``tcp://HOST:PORT``, ``ipc://PATH`` or ``inproc://NAME``. Whether a
    tcp host may be beyond loopback depends on ``security.mode`` (see
    :meth:`PlantdConfig.cross_check`). The port may be ``*`` (any free port), which only the
    broker can bind: it records the ports it got in ``<paths.run>/broker-endpoints.json``.
    """
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme not in ("tcp", "ipc", "inproc") or not rest:
        return (
            "expected a ZeroMQ endpoint: tcp://HOST:PORT, ipc://PATH or inproc://NAME, "
            f"got {endpoint!r}"
        )
    if scheme != "tcp":
        return None
    match = _TCP.fullmatch(rest)
    port = match["port"] if match is not None else ""
    if match is None or not match["host"] or not (port == "*" or 0 < int(port) < 65536):
        return (
            "expected tcp://HOST:PORT with a port from 1 to 65535 (or *: any free port) "
            f"(IPv6 hosts in brackets: tcp://[::1]:9797), got {endpoint!r}"
        )
    return None


def is_loopback_endpoint(endpoint: str) -> bool:
    """True for ``ipc://``, ``inproc://`` and tcp endpoints on 127.0.0.0/8, ::1 or localhost."""
    scheme, _, rest = endpoint.partition("://")
    if scheme != "tcp":
        return True
    match = _TCP.fullmatch(rest)
    return match is not None and is_loopback_host(match["host"].strip("[]"))


Endpoint = Annotated[str, Check(endpoint_problem)]
Seconds = Annotated[float, Duration, Gt(0)]
Count = Annotated[int, Ge(1)]


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """``broker:``, the MDP broker.

    ``request_expiry``: how long a request may wait in a queue before the broker answers it
    with an error. ``worker_loss_retries``: how many times a request whose worker died is
    queued again before the client gets an error. Queues are bounded in requests and in body
    bytes, per service and in total; ``max_frames`` bounds the frames of one message (MDP
    needs a handful). ``handshake_timeout``: a connection that has not completed its ZMTP
    handshake by then is closed (on the MDP and the bus sockets), so idle half-open
    connections cannot hold the broker's file descriptors.
    """

    endpoint: Endpoint = "tcp://127.0.0.1:9797"
    heartbeat_interval: Seconds = 2.5
    heartbeat_liveness: Annotated[int, Ge(2)] = 3
    request_expiry: Seconds = 10.0
    max_queue_per_service: Count = 1000
    max_queued_total: Count = 100_000
    max_message_bytes: Annotated[int, Size, Ge(1)] = 1_048_576
    max_queued_bytes_per_service: Annotated[int, Size, Ge(1)] = 16 * 1_048_576
    max_queued_bytes: Annotated[int, Size, Ge(1)] = 64 * 1_048_576
    max_frames: Annotated[int, Ge(8)] = 64
    handshake_timeout: Seconds = 5.0
    worker_loss_retries: Annotated[int, Ge(0)] = 1


@dataclass(frozen=True, slots=True)
class BusConfig:
    """``bus:``, the data bus proxy: publishers connect to ``frontend`` (the broker binds XSUB
    there), subscribers to ``backend`` (XPUB)."""

    frontend: Endpoint = "tcp://127.0.0.1:11000"
    backend: Endpoint = "tcp://127.0.0.1:11001"
    high_water_mark: Count = 100_000


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """``client:``, MDP clients (``plant`` and services calling services)."""

    timeout: Seconds = 5.0
    retries: Annotated[int, Ge(0)] = 3
    backoff_initial: Seconds = 0.1
    backoff_max: Seconds = 2.0

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if self.backoff_initial > self.backoff_max:
            yield (
                ("backoff_initial",),
                f"must not exceed backoff_max ({self.backoff_max:g} s), "
                f"got {self.backoff_initial:g} s",
            )


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """``worker:``, MDP workers (services and modules)."""

    heartbeat_interval: Seconds = 2.5
    heartbeat_liveness: Annotated[int, Ge(2)] = 3
    reconnect_initial: Seconds = 0.1
    reconnect_max: Seconds = 5.0

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if self.reconnect_initial > self.reconnect_max:
            yield (
                ("reconnect_initial",),
                f"must not exceed reconnect_max ({self.reconnect_max:g} s), "
                f"got {self.reconnect_initial:g} s",
            )


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """``logging:``, for every plantd process (to stdout; journald picks it up).

    Records at ``publish`` and above also go on the bus (``log.<source>.<level>``) for
    ``plantd-logger`` to keep; ``off`` publishes none. At most ``publish_queue`` records wait
    for the bus: past that the oldest are dropped (and counted), so logging never blocks.
    """

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"
    publish: Literal["debug", "info", "warning", "error", "off"] = "info"
    publish_queue: Annotated[int, Ge(1), Le(1_000_000)] = 10_000


@dataclass(frozen=True, slots=True)
class PathsConfig:
    """``paths:``; relative paths in a file are relative to its config directory."""

    data: Path = Path("/var/lib/plantd")
    run: Path = Path("/run/plantd")


@dataclass(frozen=True, slots=True)
class StateConfig:
    """``state:``, the state service (``plantd-state``).

    ``database``: the SQLite file; None (the default) means ``<paths.data>/state.db``, see
    :meth:`database_path`. ``workers``: MDP worker sessions the service registers, so how many
    requests it handles at once (and so how many writes one group commit can gather).
    ``idempotency_window`` request ids are remembered for at least ``idempotency_ttl``.
    ``max_value_bytes`` is further capped at half of ``broker.max_message_bytes``, so that a
    value always fits in a message.
    """

    database: Path | None = None
    workers: Annotated[int, Ge(1), Le(256)] = 16
    max_key_bytes: Annotated[int, Size, Ge(1), Le(4096)] = 256
    max_value_bytes: Annotated[int, Size, Ge(1)] = 65_536
    max_batch_ops: Annotated[int, Ge(1), Le(100_000)] = 1000
    group_commit_max: Annotated[int, Ge(1), Le(100_000)] = 256
    idempotency_window: Count = 100_000
    idempotency_ttl: Seconds = 86_400.0

    def database_path(self, paths: PathsConfig) -> Path:
        """``database``, or ``state.db`` in ``paths.data`` when it is not set."""
        return self.database if self.database is not None else paths.data / "state.db"


@dataclass(frozen=True, slots=True)
class PlantdConfig:
    """The whole of ``plantd.yaml``, after environment overrides.

    ``source_dir`` is the config directory it was loaded from (None: built-in defaults).
    """

    broker: BrokerConfig = field(default_factory=BrokerConfig)
    bus: BusConfig = field(default_factory=BusConfig)
    client: ClientConfig = field(default_factory=ClientConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    state: StateConfig = field(default_factory=StateConfig)
    historian: HistorianConfig = field(default_factory=HistorianConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    source_dir: Path | None = field(default=None, metadata=INTERNAL)

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        """The broker binds all three endpoints: no two may be the same place. Without CURVE,
        every one of them must be on loopback."""
        bound: dict[str, KeyPath] = {}
        for path, endpoint in (
            (("broker", "endpoint"), self.broker.endpoint),
            (("bus", "frontend"), self.bus.frontend),
            (("bus", "backend"), self.bus.backend),
        ):
            if not self.security.enabled and not is_loopback_endpoint(endpoint):
                yield (
                    path,
                    f"{endpoint!r} is not on loopback; with security.mode 'none' every "
                    "endpoint must be (127.0.0.1, [::1], localhost or ipc://): "
                    "use security.mode 'curve' to reach beyond this machine",
                )
            place = _bind_place(endpoint)
            if place == "tcp:*":
                continue  # any free port: each wildcard gets a port of its own
            if place in bound:
                other = ".".join(str(part) for part in bound[place])
                yield path, f"{endpoint!r} is the same place as {other}; each needs its own"
            else:
                bound[place] = path


def _bind_place(endpoint: str) -> str:
    """tcp endpoints on loopback collide by port, whatever the loopback host is written as."""
    scheme, _, rest = endpoint.partition("://")
    return f"tcp:{rest.rpartition(':')[2]}" if scheme == "tcp" else endpoint
