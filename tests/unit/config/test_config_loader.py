"""Finding and loading the config directory: resolve_config_dir and load_config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from plantd.config import (
    DEFAULT_CONFIG_DIR,
    BrokerConfig,
    PlantdConfig,
    load_config,
    resolve_config_dir,
    to_data,
)
from plantd.errors import ConfigError

PLANTD_YAML = """\
# the demo rig
broker:
  endpoint: tcp://127.0.0.1:19797
  heartbeat_interval: 500ms
  max_message_bytes: 4MiB

logging:
  level: debug
paths:
  data: ../var
"""


def write(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    file = directory / "plantd.yaml"
    file.write_text(text)
    return file


def problems_of(config_dir: Path | None, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir, environ or {})
    return caught.value.problems


# -- resolve_config_dir ---------------------------------------------------------------------


def test_explicit_dir_wins(tmp_path: Path) -> None:
    environ = {"PLANTD_CONFIG": "/from/env"}
    assert resolve_config_dir(tmp_path / "x", environ, default=tmp_path) == tmp_path / "x"


def test_environment_comes_next(tmp_path: Path) -> None:
    environ = {"PLANTD_CONFIG": "/from/env"}
    assert resolve_config_dir(None, environ, default=tmp_path) == Path("/from/env")


def test_default_dir_only_if_it_exists(tmp_path: Path) -> None:
    assert resolve_config_dir(None, {}, default=tmp_path) == tmp_path
    assert resolve_config_dir(None, {"PLANTD_CONFIG": ""}, default=tmp_path) == tmp_path
    assert resolve_config_dir(None, {}, default=tmp_path / "missing") is None
    assert Path("/etc/plantd") == DEFAULT_CONFIG_DIR


# -- load_config ----------------------------------------------------------------------------


def test_no_dir_means_defaults() -> None:
    assert load_config(None) == PlantdConfig()
    assert load_config(None, {}) == PlantdConfig()


def test_dir_without_plantd_yaml_means_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path) == PlantdConfig(source_dir=tmp_path)


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "---\n"])
def test_empty_file_means_defaults(tmp_path: Path, text: str) -> None:
    write(tmp_path, text)
    assert load_config(tmp_path) == PlantdConfig(source_dir=tmp_path)


def test_missing_explicit_dir_is_an_error(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "nope") == [
        f"{tmp_path / 'nope'}: config directory does not exist"
    ]
    (tmp_path / "file").write_text("")
    assert problems_of(tmp_path / "file") == [
        f"{tmp_path / 'file'}: not a directory (given as the config directory)"
    ]


def test_file_values_and_relative_paths(tmp_path: Path) -> None:
    write(tmp_path / "etc", PLANTD_YAML)
    config = load_config(tmp_path / "etc", {})
    assert config.source_dir == tmp_path / "etc"
    assert config.broker.endpoint == "tcp://127.0.0.1:19797"
    assert config.broker.heartbeat_interval == 0.5
    assert config.broker.max_message_bytes == 4 * 1024 * 1024
    assert config.broker.heartbeat_liveness == 3  # not in the file: the default
    assert config.logging.level == "debug"
    assert config.paths.data == tmp_path / "etc" / "../var"
    assert config.paths.run == Path("/run/plantd")


def test_relative_config_dir_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "etc", PLANTD_YAML)
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("etc"))
    assert config.source_dir == tmp_path / "etc"
    assert config.paths.data == tmp_path / "etc" / "../var"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    write(tmp_path, PLANTD_YAML)
    environ = {
        "PLANTD_CONFIG": str(tmp_path),
        "PLANTD_BROKER_HEARTBEAT_INTERVAL": "1.5",
        "PLANTD_BROKER_HEARTBEAT_LIVENESS": "5",
        "PLANTD_LOGGING_LEVEL": "warning",
        "PLANTD_PATHS_RUN": "run",
        "PLANTD_BUS_FRONTEND": "ipc:///tmp/bus-in",
    }
    config = load_config(tmp_path, environ)
    assert config.broker.heartbeat_interval == 1.5
    assert config.broker.heartbeat_liveness == 5
    assert config.broker.endpoint == "tcp://127.0.0.1:19797"  # from the file
    assert config.logging.level == "warning"
    assert config.paths.run == tmp_path / "run"
    assert config.bus.frontend == "ipc:///tmp/bus-in"


def test_environment_overrides_defaults_without_a_dir() -> None:
    config = load_config(None, {"PLANTD_CLIENT_TIMEOUT": "250ms", "PLANTD_CLIENT_RETRIES": "0"})
    assert config.client.timeout == 0.25
    assert config.client.retries == 0


def test_environment_problems_name_the_variable() -> None:
    environ = {"PLANTD_BROKER_HEARTBEAT_LIVENESS": "1", "PLANTD_LOGGING_FORMAT": "xml"}
    assert problems_of(None, environ) == [
        "environment PLANTD_BROKER_HEARTBEAT_LIVENESS: broker.heartbeat_liveness: "
        "expected an integer >= 2, got '1'",
        "environment PLANTD_LOGGING_FORMAT: logging.format: expected one of 'text', 'json', "
        "got 'xml'",
    ]


def test_an_override_hides_a_bad_file_value(tmp_path: Path) -> None:
    write(tmp_path, "client:\n  retries: lots\n")
    assert load_config(tmp_path, {"PLANTD_CLIENT_RETRIES": "2"}).client.retries == 2


def test_cross_check_blames_the_variable_that_broke_it(tmp_path: Path) -> None:
    write(tmp_path, "client:\n  backoff_max: 1s\n")
    assert problems_of(tmp_path, {"PLANTD_CLIENT_BACKOFF_INITIAL": "2s"}) == [
        "environment PLANTD_CLIENT_BACKOFF_INITIAL: client.backoff_initial: "
        "must not exceed backoff_max (1 s), got 2 s"
    ]


def test_every_problem_in_one_error(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        """\
broker:
  hearbeat_interval: 2
  heartbeat_interval: fast
  endpoint: tcp://0.0.0.0:9797
client:
  retries: 1
  retries: 2
logging:
  level: loud
""",
    )
    environ = {"PLANTD_WORKER_HEARTBEAT_LIVENESS": "1", "PLANTD_WORKR_X": "1"}
    assert problems_of(tmp_path, environ) == [
        f"{file}:7: client.retries: duplicate key (first at line 6)",
        f"{file}:2: broker.hearbeat_interval: unknown key (did you mean 'heartbeat_interval'?)",
        f"{file}:3: broker.heartbeat_interval: expected a duration (seconds, or a string "
        "like \"2.5s\"), got 'fast'",
        "environment PLANTD_WORKER_HEARTBEAT_LIVENESS: worker.heartbeat_liveness: expected an "
        "integer >= 2, got '1'",
        f"{file}:9: logging.level: expected one of 'debug', 'info', 'warning', 'error', got 'loud'",
        "environment PLANTD_WORKR_X: not a plantd setting "
        "(settings are PLANTD_<SECTION>_<KEY>, like PLANTD_LOGGING_LEVEL)",
    ]


def test_syntax_error_and_environment_problems_together(tmp_path: Path) -> None:
    file = write(tmp_path, "broker:\n  endpoint: [\n")
    got = problems_of(tmp_path, {"PLANTD_BROKER_HEARTBEAT_LIVENESS": "x"})
    assert len(got) == 2
    assert got[0].startswith(f"{file}:3:1: invalid YAML: ")
    assert got[1] == (
        "environment PLANTD_BROKER_HEARTBEAT_LIVENESS: broker.heartbeat_liveness: "
        "expected an integer, got 'x'"
    )


@pytest.mark.parametrize(("text", "found"), [("- a\n", "a list"), ("just text\n", "'just text'")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, found: str) -> None:
    file = write(tmp_path, text)
    sections = ", ".join(f.name for f in dataclasses.fields(PlantdConfig) if f.name != "source_dir")
    assert sections.startswith("broker, bus, client, worker, logging, paths, state")
    assert problems_of(tmp_path) == [
        f"{file}:1: expected a mapping with keys {sections}, got {found}"
    ]


def test_unknown_section(tmp_path: Path) -> None:
    file = write(tmp_path, "brokers:\n  endpoint: x\n")
    assert problems_of(tmp_path) == [f"{file}:1: brokers: unknown key (did you mean 'broker'?)"]


def test_source_dir_is_not_a_key(tmp_path: Path) -> None:
    write(tmp_path, "source_dir: /x\n")
    assert "source_dir: unknown key" in problems_of(tmp_path)[0]


def test_show_output_loads_back_equal(tmp_path: Path) -> None:
    write(tmp_path / "a", PLANTD_YAML)
    config = load_config(tmp_path / "a", {"PLANTD_BUS_HIGH_WATER_MARK": "10"})
    write(tmp_path / "b", yaml.safe_dump(to_data(config)))
    assert load_config(tmp_path / "b") == dataclasses.replace(config, source_dir=tmp_path / "b")


# -- round trip, for any valid broker section -------------------------------------------------

_seconds = st.floats(min_value=0, exclude_min=True, allow_nan=False, allow_infinity=False)
_port = st.integers(min_value=1, max_value=65535)
_endpoints = st.one_of(
    st.builds("tcp://127.0.0.1:{}".format, _port),
    st.builds("tcp://localhost:{}".format, _port),
    st.builds("tcp://[::1]:{}".format, _port),
    st.builds(
        "tcp://127.{}.{}.{}:{}".format,
        st.integers(0, 255),
        st.integers(0, 255),
        st.integers(0, 255),
        _port,
    ),
    st.builds("ipc://{}".format, st.text(min_size=1)),
    st.builds("inproc://{}".format, st.text(min_size=1)),
)
_BUS = {"frontend": "inproc://bus-in", "backend": "inproc://bus-out"}
_brokers = st.builds(
    BrokerConfig,
    endpoint=_endpoints,
    heartbeat_interval=_seconds,
    heartbeat_liveness=st.integers(min_value=2, max_value=2**63),
    request_expiry=_seconds,
    max_queue_per_service=st.integers(min_value=1, max_value=2**63),
    max_queued_total=st.integers(min_value=1, max_value=2**63),
    max_message_bytes=st.integers(min_value=1, max_value=2**63),
    worker_loss_retries=st.integers(min_value=0, max_value=2**63),
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(broker=_brokers)
def test_any_valid_broker_section_loads_back_equal(tmp_path: Path, broker: BrokerConfig) -> None:
    assume(broker.endpoint not in _BUS.values())  # the broker binds all three
    write(tmp_path, yaml.safe_dump({"broker": to_data(broker), "bus": _BUS}))
    assert load_config(tmp_path).broker == broker


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=50)
@given(broker=_brokers)
def test_any_valid_broker_setting_loads_back_from_the_environment(broker: BrokerConfig) -> None:
    environ = {
        f"PLANTD_BROKER_{key.upper()}": repr(value) if isinstance(value, float) else str(value)
        for key, value in to_data(broker).items()  # type: ignore[attr-defined]
    }
    assume(broker.endpoint not in _BUS.values())
    environ |= {f"PLANTD_BUS_{key.upper()}": value for key, value in _BUS.items()}
    assert load_config(None, environ).broker == broker
