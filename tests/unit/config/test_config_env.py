"""Environment overrides: plantd.config._env."""

from __future__ import annotations

from plantd.config import PlantdConfig, env_override_names
from plantd.config._env import env_overrides, env_var


def test_every_setting_has_a_variable() -> None:
    found = env_overrides(PlantdConfig, {"PLANTD_BROKER_HEARTBEAT_INTERVAL": "1.5"})
    assert found.values == {("broker", "heartbeat_interval"): "1.5"}
    assert found.sources == {
        ("broker", "heartbeat_interval"): "environment PLANTD_BROKER_HEARTBEAT_INTERVAL"
    }
    assert found.problems == ()
    assert env_var(("paths", "data")) == "PLANTD_PATHS_DATA"


def test_other_variables_are_ignored() -> None:
    environ = {"PLANTD_CONFIG": "/x", "HOME": "/root", "plantd_broker_endpoint": "x"}
    found = env_overrides(PlantdConfig, environ)
    assert found.values == {}
    assert found.problems == ()
    assert env_override_names(environ) == []


def test_unknown_variables_are_problems_with_a_suggestion() -> None:
    environ = {
        "PLANTD_BROKER_HEARTBEAT": "1",
        "PLANTD_BROKR_ENDPOINT": "x",
        "PLANTD_SOURCE_DIR": "/x",
        "PLANTD_ZZZ": "1",
    }
    found = env_overrides(PlantdConfig, environ)
    assert found.values == {}
    assert found.problems == (
        "environment PLANTD_BROKER_HEARTBEAT: not a plantd setting "
        "(did you mean PLANTD_BROKER_HEARTBEAT_LIVENESS?)",
        "environment PLANTD_BROKR_ENDPOINT: not a plantd setting "
        "(did you mean PLANTD_BROKER_ENDPOINT?)",
        "environment PLANTD_SOURCE_DIR: not a plantd setting "
        "(settings are PLANTD_<SECTION>_<KEY>, like PLANTD_LOGGING_LEVEL)",
        "environment PLANTD_ZZZ: not a plantd setting "
        "(settings are PLANTD_<SECTION>_<KEY>, like PLANTD_LOGGING_LEVEL)",
    )
    assert env_override_names(environ) == sorted(environ)


def test_apply_writes_into_a_copy() -> None:
    found = env_overrides(
        PlantdConfig, {"PLANTD_BROKER_ENDPOINT": "ipc://b", "PLANTD_LOGGING_LEVEL": "debug"}
    )
    data = {"broker": {"endpoint": "tcp://127.0.0.1:1", "heartbeat_liveness": 4}, "bus": None}
    merged = found.apply(data)
    assert merged == {
        "broker": {"endpoint": "ipc://b", "heartbeat_liveness": 4},
        "bus": None,
        "logging": {"level": "debug"},
    }
    assert data["broker"] == {"endpoint": "tcp://127.0.0.1:1", "heartbeat_liveness": 4}
    assert found.apply(None) == {"broker": {"endpoint": "ipc://b"}, "logging": {"level": "debug"}}
    assert found.apply({"logging": None}) == {
        "broker": {"endpoint": "ipc://b"},
        "logging": {"level": "debug"},
    }


def test_apply_leaves_a_broken_file_alone() -> None:
    found = env_overrides(PlantdConfig, {"PLANTD_BROKER_ENDPOINT": "ipc://b"})
    assert found.apply(["not", "a", "mapping"]) == ["not", "a", "mapping"]
    assert found.apply({"broker": 5}) == {"broker": 5}
