"""``plantd-proxy`` as a process: it serves where its config says (port 0 read back), tells
systemd when it serves, answers nobody without credentials, refuses to listen off loopback
without TLS, says clearly when its port is taken, serves HTTPS with the device certificate,
and leaves cleanly on SIGTERM."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from plantd.config import load_config
from plantd.testing import ManagedProcess, NotifySocket, merge_into_config
from tests.conftest import Stack

from .conftest import start_proxy, until

pytestmark = [pytest.mark.timeout(90)]


def proxy_command(stack: Stack) -> list[str]:
    return [sys.executable, "-m", "plantd.proxy", "--config", str(stack.config_dir)]


@pytest.mark.stack(proxy={"listen": "127.0.0.1:0"})
def test_it_serves_on_the_port_it_got_and_answers_nobody_without_credentials(
    stack: Stack, tmp_path: Path
) -> None:
    stack.start_broker()
    with NotifySocket(tmp_path / "notify.sock") as notify:
        process = ManagedProcess.plantd(
            ["plantd.proxy", "--config", str(stack.config_dir)],
            name="proxy",
            log_dir=stack.log_dir,
            env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")},
        ).start()
        stack.processes.append(process)
        ready = notify.wait_for("READY")
    assert ready["STATUS"] == "serving http://127.0.0.1:0"
    config = load_config(stack.config_dir)
    record = config.paths.run / "proxy-endpoints.json"
    url = until(lambda: record.exists() and record.read_text(), "the endpoints file")
    assert '"url": "http://127.0.0.1:' in url
    base = url.split('"url": "')[1].split('"')[0]
    assert not base.endswith(":0")

    answer = httpx.get(f"{base}/api/v1/services")
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == 401
    assert problem["type"].startswith("https://plantd.org/problems/")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"

    nothing = httpx.get(f"{base}/no/such/thing")
    assert nothing.status_code in (401, 404)
    assert nothing.headers["content-type"] == "application/problem+json"

    assert process.process is not None
    process.process.send_signal(signal.SIGTERM)
    assert process.process.wait(timeout=15) == 0
    assert not record.exists()  # it removes what it wrote


def test_it_will_not_listen_off_loopback_without_tls(stack: Stack) -> None:
    merge_into_config(stack.config_dir, {"proxy": {"listen": "0.0.0.0:0"}})
    why = "proxy.listen: '0.0.0.0:0' is not on loopback: set tls_certificate and tls_key"
    done = subprocess.run(
        proxy_command(stack), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert why in done.stderr
    check = subprocess.run(
        [sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir), "config", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode != 0
    assert why in check.stderr + check.stdout


def test_a_taken_port_is_named(stack: Stack) -> None:
    stack.start_broker()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        merge_into_config(stack.config_dir, {"proxy": {"listen": f"127.0.0.1:{port}"}})
        done = subprocess.run(
            proxy_command(stack), capture_output=True, text=True, timeout=60, check=False
        )
    assert done.returncode != 0
    assert f"cannot serve on 127.0.0.1:{port} (proxy.listen)" in done.stderr


@pytest.mark.stack(security={"mode": "curve"})
def test_https_with_the_device_certificate(stack: Stack) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir), "keys", "init"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    config = load_config(stack.config_dir)
    keys = config.security.keys_dir(config.source_dir)
    certificate = keys / "tls" / "device.crt"
    key = config.security.secrets_dir(config.paths.data) / "device.tls_key"
    assert certificate.exists(), "plant keys init makes the device certificate"
    assert key.exists()
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    merge_into_config(
        stack.config_dir,
        {
            "proxy": {
                "listen": "127.0.0.1:0",
                "tls_certificate": str(certificate),
                "tls_key": str(key),
            }
        },
    )
    stack.start_broker()
    _, url = start_proxy(stack)
    assert url.startswith("https://127.0.0.1:")
    context = ssl.create_default_context(cafile=str(certificate))
    answer = httpx.get(f"{url}/api/v1/me", verify=context)
    assert answer.status_code == 401  # the TLS handshake verified against the device cert
    assert answer.headers["strict-transport-security"].startswith("max-age=")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/api/v1/me")  # a self-signed certificate is not trusted by default


@pytest.mark.parametrize("fault", ["missing", "not-pem"])
def test_tls_files_that_cannot_serve_are_a_configuration_error(
    stack: Stack, tmp_path: Path, fault: str
) -> None:
    certificate, key = tmp_path / "device.crt", tmp_path / "device.tls_key"
    if fault == "not-pem":
        certificate.write_text("not a certificate\n")
        key.write_text("not a key\n")
    merge_into_config(
        stack.config_dir,
        {
            "proxy": {
                "listen": "127.0.0.1:0",
                "tls_certificate": str(certificate),
                "tls_key": str(key),
            }
        },
    )
    done = subprocess.run(
        proxy_command(stack), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2  # systemd does not restart it: RestartPreventExitStatus=2
    assert f"proxy.tls_certificate {certificate} / proxy.tls_key {key}: " in done.stderr
    expected = "No such file or directory" if fault == "missing" else "not a PEM certificate"
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
