"""What the broker takes from a re-read plantd.yaml (plantd.broker._reload.merge)."""

from __future__ import annotations

from typing import Any

from plantd.broker._reload import merge
from plantd.config import PlantdConfig, parse_dataclass


def config(**sections: dict[str, Any]) -> PlantdConfig:
    return parse_dataclass(PlantdConfig, dict(sections), source="plantd.yaml")


def test_nothing_changed_is_nothing_to_apply() -> None:
    merged = merge(config(), config())
    assert not merged.changed
    assert merged.restart == []
    assert merged.config == config()


def test_queue_limits_apply_live() -> None:
    read = config(broker={"max_queue_per_service": 5, "max_queued_bytes": "2 MiB"})
    merged = merge(config(), read)
    assert merged.config.broker.max_queue_per_service == 5
    assert merged.config.broker.max_queued_bytes == 2 * 1_048_576
    assert merged.applied == [
        "broker.max_queue_per_service: 1000 -> 5",
        "broker.max_queued_bytes: 67108864 -> 2097152",
    ]
    assert merged.restart == []


def test_endpoints_and_heartbeat_need_a_restart_and_stay_as_they_run() -> None:
    read = config(
        broker={"endpoint": "tcp://127.0.0.1:9999", "heartbeat_interval": 1, "max_frames": 32},
        bus={"high_water_mark": 10},
    )
    merged = merge(config(), read)
    assert merged.config.broker.endpoint == "tcp://127.0.0.1:9797"
    assert merged.config.broker.heartbeat_interval == 2.5
    assert merged.config.bus == config().bus
    assert merged.config.broker.max_frames == 32  # the live one alongside is applied
    assert merged.restart == [
        "broker.endpoint: 'tcp://127.0.0.1:9797' -> 'tcp://127.0.0.1:9999'",
        "broker.heartbeat_interval: 2.5 -> 1.0",
        "bus: changed",
    ]


def test_security_roles_apply_live_but_not_the_mode() -> None:
    roles = {"roles": [{"name": "viewer", "access": ["read"]}]}
    merged = merge(config(), config(security=roles))
    assert merged.config.security.roles == config(security=roles).security.roles
    assert merged.applied == ["security.roles: changed"]
    merged = merge(config(), config(security={"mode": "none"}))
    assert merged.config.security.mode == "curve"
    assert merged.restart == ["security.mode: changed"]
