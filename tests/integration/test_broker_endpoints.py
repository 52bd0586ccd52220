"""A broker on ports the system picks (``tcp://127.0.0.1:*``): it records what it bound in
``<paths.run>/broker-endpoints.json``, serves there, and a restart binds the same ports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from plantd.broker._endpoints import ENDPOINTS_FILE
from plantd.config import PlantdConfig, load_config, parse_dataclass
from plantd.testing import (
    ANY_PORT,
    ManagedProcess,
    listening_ports,
    start_broker,
    wait_for_broker,
    wait_for_endpoints,
    write_config,
)


def wildcard_config(base: Path) -> Path:
    return write_config(
        base / "etc",
        {
            "broker": {"endpoint": ANY_PORT},
            "bus": {"frontend": ANY_PORT, "backend": ANY_PORT},
            "paths": {"data": str(base / "data"), "run": str(base / "run")},
        },
    )


def port_of(endpoint: str) -> int:
    host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
    assert host == "127.0.0.1", endpoint
    return int(port)


def test_three_wildcards_are_a_valid_config() -> None:
    data = {"broker": {"endpoint": ANY_PORT}, "bus": {"frontend": ANY_PORT, "backend": ANY_PORT}}
    config = parse_dataclass(PlantdConfig, data, source="plantd.yaml")
    assert list(config.cross_check()) == []  # not "the same place": each gets its own port


def test_the_broker_records_the_ports_it_got_and_serves_there(tmp_path: Path) -> None:
    config_dir = wildcard_config(tmp_path)
    broker, bound = start_broker(config_dir, log_dir=tmp_path / "logs")
    try:
        endpoints = [
            bound["broker"]["endpoint"], bound["bus"]["frontend"], bound["bus"]["backend"]
        ]  # fmt: skip
        ports = {port_of(endpoint) for endpoint in endpoints}
        assert len(ports) == 3
        assert ports <= listening_ports(broker.pid)  # the broker itself holds them
        recorded = json.loads((tmp_path / "run" / ENDPOINTS_FILE).read_text())
        assert recorded == {"pid": broker.pid, **bound}
        # Every later process reads the real endpoints from the config.
        config = load_config(config_dir)
        assert config.broker.endpoint == bound["broker"]["endpoint"]
        assert (config.bus.frontend, config.bus.backend) == (endpoints[1], endpoints[2])
        assert f"endpoints: {json.dumps(bound)}" in broker.log_text()
        assert broker.terminate() == 0
        assert not (tmp_path / "run" / ENDPOINTS_FILE).exists()  # an orderly stop removes it
    finally:
        broker.kill()


def test_a_restart_after_kill_binds_the_same_ports_and_a_stale_file_is_not_read(
    tmp_path: Path,
) -> None:
    config_dir = wildcard_config(tmp_path)
    first, bound = start_broker(config_dir, log_dir=tmp_path / "logs")
    first.kill()
    path = tmp_path / "run" / ENDPOINTS_FILE
    assert json.loads(path.read_text())["pid"] == first.pid  # left behind by kill -9
    again = ManagedProcess.plantd(
        ["plantd.broker", "--config", str(config_dir)], name="again", log_dir=tmp_path / "logs"
    ).start()
    try:
        assert wait_for_endpoints(tmp_path / "run", again) == bound
        assert json.loads(path.read_text())["pid"] == again.pid
        wait_for_broker(bound["broker"]["endpoint"], process=again)
    finally:
        again.kill()


def test_a_wildcard_with_a_run_directory_it_cannot_write_is_an_error(tmp_path: Path) -> None:
    config_dir = wildcard_config(tmp_path)
    (tmp_path / "run").write_text("a file where the run directory should be")
    done = subprocess.run(
        [sys.executable, "-m", "plantd.broker", "--config", str(config_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert f"cannot record the endpoints it bound in {tmp_path / 'run' / ENDPOINTS_FILE}" in (
        done.stderr
    )
    assert "a wildcard port (tcp://HOST:*) needs a paths.run it may write" in done.stderr
    assert "Traceback" not in done.stderr
