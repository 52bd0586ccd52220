"""The plantd schema: defaults and the rules of plantd.config._model."""

from __future__ import annotations

import dataclasses

import pytest

from plantd.config import (
    BrokerConfig,
    BusConfig,
    ClientConfig,
    LoggingConfig,
    PathsConfig,
    PlantdConfig,
    WorkerConfig,
    parse_dataclass,
    to_data,
)
from plantd.config._model import endpoint_problem
from plantd.errors import ConfigError


def problems(data: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_dataclass(PlantdConfig, data, source="plantd.yaml")
    return caught.value.problems


def test_defaults_are_the_documented_ones() -> None:
    config = PlantdConfig()
    assert config.broker == BrokerConfig(
        endpoint="tcp://127.0.0.1:9797",
        heartbeat_interval=2.5,
        heartbeat_liveness=3,
        request_expiry=10.0,
        max_queue_per_service=1000,
        max_queued_total=100_000,
        max_message_bytes=1_048_576,
        worker_loss_retries=1,
    )
    assert config.bus == BusConfig("tcp://127.0.0.1:11000", "tcp://127.0.0.1:11001", 100_000)
    assert config.client == ClientConfig(
        timeout=5.0, retries=3, backoff_initial=0.1, backoff_max=2.0
    )
    assert config.worker == WorkerConfig(2.5, 3, 0.1, 5.0)
    assert config.logging == LoggingConfig("info", "text")
    assert str(config.paths.data) == "/var/lib/plantd"
    assert str(config.paths.run) == "/run/plantd"
    assert config.source_dir is None


def test_defaults_pass_their_own_validation() -> None:
    assert parse_dataclass(PlantdConfig, to_data(PlantdConfig()), source="x") == PlantdConfig()
    assert parse_dataclass(PlantdConfig, None, source="x") == PlantdConfig()
    assert parse_dataclass(PlantdConfig, {"broker": None}, source="x") == PlantdConfig()


def test_values_are_frozen_and_slotted() -> None:
    config = PlantdConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.broker.endpoint = "x"  # type: ignore[misc]
    for cls in (
        PlantdConfig,
        BrokerConfig,
        BusConfig,
        ClientConfig,
        WorkerConfig,
        LoggingConfig,
        PathsConfig,
    ):
        assert dataclasses.fields(cls)
        assert hasattr(cls, "__slots__"), cls
    assert hash(PlantdConfig()) == hash(PlantdConfig())


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp://127.0.0.1:9797",
        "tcp://127.1.2.3:1",
        "tcp://localhost:65535",
        "tcp://[::1]:9797",
        "tcp://127.0.0.1:*",  # any free port: the broker records the one it got
        "ipc:///run/plantd/broker.sock",
        "ipc://@abstract",
        "inproc://broker",
    ],
)
def test_bindable_endpoints(endpoint: str) -> None:
    assert endpoint_problem(endpoint) is None


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp://0.0.0.0:9797",
        "tcp://*:9797",
        "tcp://192.168.1.10:9797",
        "tcp://[::]:9797",
        "tcp://plc.example:9797",
        "tcp://eth0:9797",
    ],
)
def test_non_loopback_needs_curve(endpoint: str) -> None:
    assert endpoint_problem(endpoint) is None  # a usable endpoint; with CURVE, the default
    parse_dataclass(PlantdConfig, {"broker": {"endpoint": endpoint}}, source="plantd.yaml")
    found = problems({"broker": {"endpoint": endpoint}, "security": {"mode": "none"}})
    assert found == [
        f"plantd.yaml: broker.endpoint: {endpoint!r} is not on loopback; with security.mode 'none' "
        "every endpoint must be (127.0.0.1, [::1], localhost or ipc://): use security.mode "
        "'curve' to reach beyond this machine"
    ]


@pytest.mark.parametrize(
    "endpoint",
    ["127.0.0.1:9797", "http://127.0.0.1:80", "tcp://", "ipc://", "inproc://", "pgm://x;y:1", ""],
)
def test_not_an_endpoint(endpoint: str) -> None:
    assert endpoint_problem(endpoint) == (
        "expected a ZeroMQ endpoint: tcp://HOST:PORT, ipc://PATH or inproc://NAME, "
        f"got {endpoint!r}"
    )


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp://127.0.0.1",
        "tcp://127.0.0.1:0",
        "tcp://127.0.0.1:65536",
        "tcp://127.0.0.1:**",
        "tcp://::1:9797",
        "tcp://:9797",
        "tcp://127.0.0.1:९७",
    ],
)
def test_bad_tcp_endpoint(endpoint: str) -> None:
    problem = endpoint_problem(endpoint)
    assert problem is not None
    assert problem.startswith("expected tcp://HOST:PORT with a port from 1 to 65535")


def test_section_rules() -> None:
    data = {
        "broker": {
            "endpoint": "tcp://10.0.0.1:9797",
            "heartbeat_interval": 0,
            "heartbeat_liveness": 1,
            "request_expiry": "-1s",
            "max_queue_per_service": 0,
            "max_queued_total": 0,
            "max_message_bytes": "0KiB",
            "worker_loss_retries": -1,
        },
        "bus": {"frontend": "ipc://x", "backend": "tcp://0.0.0.0:1", "high_water_mark": 0},
        "client": {"timeout": 0, "retries": -1, "backoff_initial": 0, "backoff_max": 0},
        "worker": {"heartbeat_liveness": 0, "reconnect_initial": "0ms"},
        "logging": {"level": "verbose", "format": "xml"},
        "paths": {"data": "", "run": 5},
    }
    # The endpoints are fine with CURVE (the default): test_non_loopback_needs_curve.
    assert [problem.split(": ", 2)[1] for problem in problems(data)] == [
        "broker.heartbeat_interval",
        "broker.heartbeat_liveness",
        "broker.request_expiry",
        "broker.max_queue_per_service",
        "broker.max_queued_total",
        "broker.max_message_bytes",
        "broker.worker_loss_retries",
        "bus.high_water_mark",
        "client.timeout",
        "client.retries",
        "client.backoff_initial",
        "client.backoff_max",
        "worker.heartbeat_liveness",
        "worker.reconnect_initial",
        "logging.level",
        "logging.format",
        "paths.data",
        "paths.run",
    ]


def test_rule_messages() -> None:
    got = problems({"broker": {"heartbeat_liveness": 1, "max_message_bytes": "0KiB"}})
    assert got == [
        "plantd.yaml: broker.heartbeat_liveness: expected an integer >= 2, got 1",
        "plantd.yaml: broker.max_message_bytes: expected a size >= 1, got '0KiB'",
    ]


def test_zero_retries_are_allowed() -> None:
    data = {"client": {"retries": 0}, "broker": {"worker_loss_retries": 0}}
    config = parse_dataclass(PlantdConfig, data, source="x")
    assert config.client.retries == 0
    assert config.broker.worker_loss_retries == 0


def test_backoff_initial_must_not_exceed_backoff_max() -> None:
    assert problems({"client": {"backoff_initial": "3s", "backoff_max": 2}}) == [
        "plantd.yaml: client.backoff_initial: must not exceed backoff_max (2 s), got 3 s"
    ]
    config = parse_dataclass(PlantdConfig, {"client": {"backoff_initial": 2}}, source="x")
    assert config.client.backoff_initial == config.client.backoff_max == 2.0


def test_reconnect_initial_must_not_exceed_reconnect_max() -> None:
    assert problems({"worker": {"reconnect_initial": "10s"}}) == [
        "plantd.yaml: worker.reconnect_initial: must not exceed reconnect_max (5 s), got 10 s"
    ]


def test_the_broker_binds_three_distinct_places() -> None:
    data = {"broker": {"endpoint": "tcp://localhost:11000"}, "bus": {"backend": "ipc://bus"}}
    assert problems(data) == [
        "plantd.yaml: bus.frontend: 'tcp://127.0.0.1:11000' is the same place as "
        "broker.endpoint; each needs its own"
    ]
    data = {"bus": {"frontend": "inproc://bus", "backend": "inproc://bus"}}
    assert problems(data) == [
        "plantd.yaml: bus.backend: 'inproc://bus' is the same place as bus.frontend; "
        "each needs its own"
    ]
