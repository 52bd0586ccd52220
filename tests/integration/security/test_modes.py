"""``security.mode`` at start: CURVE needs keys (a clear error if one is missing), ``none`` is
refused beyond loopback and warned about on loopback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from plantd.testing import write_config


def run(args: list[str], timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def config(tmp_path: Path, security: dict[str, str], host: str = "127.0.0.1") -> Path:
    any_port = f"tcp://{host}:*"  # the broker binds what the system gives
    return write_config(
        tmp_path / "etc",
        {
            "broker": {"endpoint": any_port},
            "bus": {"frontend": any_port, "backend": any_port},
            "paths": {"data": str(tmp_path / "data"), "run": str(tmp_path / "run")},
            "security": security,
        },
    )


def test_none_is_refused_beyond_loopback(tmp_path: Path) -> None:
    etc = config(tmp_path, {"mode": "none"}, host="0.0.0.0")
    result = run(["plantd.broker", "--config", str(etc)])
    assert result.returncode == 2
    assert "broker.endpoint: 'tcp://0.0.0.0:" in result.stderr
    assert "is not on loopback; with security.mode 'none'" in result.stderr


def test_none_on_loopback_is_warned_about_at_every_start(tmp_path: Path) -> None:
    etc = config(tmp_path, {"mode": "none"})
    broker = subprocess.Popen(
        [sys.executable, "-m", "plantd.broker", "--config", str(etc)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert broker.stdout is not None
        first = [broker.stdout.readline() for _ in range(3)]
    finally:
        broker.terminate()
        broker.communicate(timeout=10)
    assert any(
        "WARNING" in line and "security.mode is 'none'" in line and "any process" in line
        for line in first
    ), first


def test_curve_without_the_broker_key_says_what_to_do(tmp_path: Path) -> None:
    etc = config(tmp_path, {"mode": "curve"})  # write_config made the keys…
    secret = tmp_path / "data" / "secrets" / "broker.key_secret"
    secret.unlink()  # …and this one is lost
    result = run(["plantd.broker", "--config", str(etc)])
    assert result.returncode == 2
    assert f"{secret}: the broker's secret key is missing; make keys with `plant keys init`" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("args", "principal"),
    [
        (["plantd.state"], "service.state"),
        (["plantd.cli", "serve", "echo"], "service.echo"),
    ],
)
def test_a_service_without_its_key_stops_at_once_with_exit_2(
    tmp_path: Path, args: list[str], principal: str
) -> None:
    etc = config(tmp_path, {"mode": "curve"})
    secret = tmp_path / "data" / "secrets" / f"{principal}.key_secret"
    secret.unlink()
    module, *rest = args
    result = run([module, "--config", str(etc), *rest])
    assert result.returncode == 2  # systemd does not restart it in a loop
    assert f"{secret}: no secret key there; make keys with `plant keys init`" in result.stderr
