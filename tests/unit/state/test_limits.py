"""What the store accepts, and the messages for what it does not."""

from __future__ import annotations

import math

import pytest

from plantd.config import PlantdConfig, parse_dataclass
from plantd.state import Limits, StateError

LIMITS = Limits(max_key_bytes=16, max_value_bytes=64, max_batch_ops=3)


def refused(call: object, *args: object) -> StateError:
    assert callable(call)
    with pytest.raises(StateError) as caught:
        call(*args)
    return caught.value


@pytest.mark.parametrize("scope", ["a", "org.plantd.module.pump1", "A-b_c.9", "x" * 200])
def test_good_scopes(scope: str) -> None:
    assert LIMITS.scope(scope) == scope


@pytest.mark.parametrize("scope", ["", ".a", "a.", "a..b", "a b", "a/b", "é", "a.*", "x" * 201])
def test_bad_scopes(scope: str) -> None:
    error = refused(LIMITS.scope, scope)
    assert error.code == "state.invalid-scope"
    assert "scope" in error.message


@pytest.mark.parametrize("key", ["k", "alarms/high", "a.b", "~!@#$%^&*()", "x" * 16])
def test_good_keys(key: str) -> None:
    assert LIMITS.key(key) == key


@pytest.mark.parametrize("key", ["", "a b", "tab\there", "é", "new\nline", "\x00"])
def test_bad_keys(key: str) -> None:
    assert refused(LIMITS.key, key).code == "state.invalid-key"


def test_key_too_long_names_the_limit() -> None:
    error = refused(LIMITS.key, "x" * 17)
    assert error.code == "state.too-large"
    assert (
        error.message == "key 'xxxxxxxxxxxxxxxxx' has 17 bytes, more than state.max_key_bytes (16)"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [(1, "1"), (None, "null"), ({"b": [1, 2.5]}, '{"b":[1,2.5]}'), ("é", '"é"'), (True, "true")],
)
def test_values_are_stored_as_compact_json(value: object, text: str) -> None:
    assert LIMITS.value(value) == text


@pytest.mark.parametrize("value", [math.nan, math.inf, [-math.inf], {"a": math.nan}])
def test_nan_and_infinity_are_not_json(value: object) -> None:
    error = refused(LIMITS.value, value)
    assert error.code == "state.invalid-value"
    assert error.message.startswith("the value is not JSON")


def test_lone_surrogates_are_refused() -> None:
    assert refused(LIMITS.value, "\ud800").code == "state.invalid-value"


def test_value_size_counts_utf8_bytes() -> None:
    assert LIMITS.value("x" * 62) == '"' + "x" * 62 + '"'  # 64 bytes: fits
    assert LIMITS.value("é" * 31) == '"' + "é" * 31 + '"'  # 2 + 62 bytes: fits
    error = refused(LIMITS.value, "é" * 32)
    assert error.code == "state.too-large"
    assert error.message == "value is 66 bytes as JSON, more than state.max_value_bytes (64)"


def test_batch_size() -> None:
    LIMITS.batch_size(3)
    error = refused(LIMITS.batch_size, 4)
    assert error.message == "the batch has 4 operations, more than state.max_batch_ops (3)"


@pytest.mark.parametrize("request_id", ["", "a b", "x" * 129, "é"])
def test_bad_request_ids(request_id: str) -> None:
    assert refused(Limits.request_id, request_id).code == "state.invalid-request-id"


def test_limits_from_config_cap_values_at_half_a_broker_message() -> None:
    config = parse_dataclass(
        PlantdConfig,
        {"broker": {"max_message_bytes": 65536}, "state": {"max_key_bytes": "1KiB"}},
        source="x",
    )
    limits = Limits.from_config(config)
    assert limits.max_key_bytes == 1024
    assert limits.max_value_bytes == 32768
    error = refused(limits.value, "x" * 40000)
    assert "more than half of broker.max_message_bytes (32768)" in error.message
    assert Limits.from_config(PlantdConfig()) == Limits(256, 65536, 1000)


def test_state_config_defaults_and_database_path() -> None:
    config = PlantdConfig()
    assert str(config.state.database_path(config.paths)) == "/var/lib/plantd/state.db"
    moved = parse_dataclass(PlantdConfig, {"state": {"database": "/srv/s.db"}}, source="x")
    assert str(moved.state.database_path(moved.paths)) == "/srv/s.db"
    assert config.state.workers == 16
    assert config.state.idempotency_ttl == 86400.0


def test_unknown_error_codes_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown state error code"):
        StateError("state.whatever", "x")
