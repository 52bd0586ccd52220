"""SIGHUP (``systemctl reload``) on a real broker process: a changed limit in plantd.yaml is in
effect at once; a file with problems is logged and the broker routes on as it was; the keys
are read again at once."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
import zmq

from plantd.client import Client
from plantd.security import Identity
from plantd.testing import ANY_PORT, ManagedProcess, start_broker, write_config
from tests.conftest import Stack

TOO_BIG = b"x" * 2000


def edit_config(config_dir: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = config_dir / "plantd.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def error_of(endpoint: str, body: bytes) -> str:
    """The broker's error code for a request of ``body`` to a service nobody serves."""
    context = zmq.Context.instance()
    with context.socket(zmq.DEALER) as client:
        client.linger = 0
        client.connect(endpoint)
        client.send_multipart([b"MDPC02", b"\x01", b"nobody", body])
        assert client.poll(20_000), "no answer from the broker"
        code: str = json.loads(client.recv_multipart()[-1])["error"]["code"]
        return code


def wait_for_log(process: ManagedProcess, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in process.log_text():
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{process.log_text()}"
        time.sleep(0.05)


def test_sighup_applies_a_changed_limit_and_a_bad_file_changes_nothing(tmp_path: Path) -> None:
    config_dir = write_config(
        tmp_path / "etc",
        {
            "broker": {"endpoint": ANY_PORT, "request_expiry": 0.5, "max_message_bytes": 4000},
            "bus": {"frontend": ANY_PORT, "backend": ANY_PORT},
            "paths": {"data": str(tmp_path / "data"), "run": str(tmp_path / "run")},
        },
    )
    broker, bound = start_broker(config_dir, log_dir=tmp_path / "logs")
    endpoint = bound["broker"]["endpoint"]
    try:
        # Under the limit: queued, and expired for want of a worker.
        assert error_of(endpoint, TOO_BIG) == "broker.no-worker"

        edit_config(config_dir, lambda data: data["broker"].update(max_message_bytes=1000))
        broker.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        wait_for_log(broker, "SIGHUP: applied broker.max_message_bytes: 4000 -> 1000")
        assert error_of(endpoint, TOO_BIG) == "broker.too-large"
        assert "needs a restart" not in broker.log_text()  # the wildcards read back as bound

        edit_config(config_dir, lambda data: data["broker"].update(max_frames="many"))
        broker.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        wait_for_log(broker, "SIGHUP: the configuration has problems; nothing applied")
        assert f"{config_dir / 'plantd.yaml'}:" in broker.log_text()  # file:line of it
        assert broker.running()
        assert error_of(endpoint, TOO_BIG) == "broker.too-large"  # the limit as it was
        assert error_of(endpoint, b"small") == "broker.no-worker"

        edit_config(config_dir, lambda data: data["broker"].update(endpoint="tcp://127.0.0.1:1"))
        edit_config(config_dir, lambda data: data["broker"].update(max_frames=64))
        broker.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        wait_for_log(broker, "needs a restart, not applied")
        assert error_of(endpoint, b"small") == "broker.no-worker"  # still where it was
        assert broker.terminate() == 0
    finally:
        broker.kill()


@pytest.mark.stack(security={"mode": "curve"})
def test_sighup_reads_the_keys_at_once(stack: Stack) -> None:
    broker = stack.start_broker()
    keyset = stack.keyset()
    secret = keyset.secret_path("module.late")
    keyset.add("module.late", generate_secret=secret)
    broker.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
    wait_for_log(broker, "SIGHUP: keys re-read:")
    credentials = Identity(secret, keyset.public_path("broker")).credentials()
    with Client(stack.endpoint, timeout=5, retries=2, credentials=credentials) as client:
        assert client.request("mmi.service", b"mmi.broker")  # admitted: an answer at all
    assert broker.running()
