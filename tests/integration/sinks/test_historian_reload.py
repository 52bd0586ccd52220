"""SIGHUP (``systemctl reload``) on a real historian process: a shorter ``raw_max_age`` in
plantd.yaml takes effect at once (a retention pass runs); a file with problems is logged with
its file:line and the historian stores on with the settings it had."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from plantd.bus import BusPublisher
from plantd.client import Client
from plantd.historian._service import SERVICE
from plantd.service import call
from tests.conftest import Stack
from tests.integration.sinks._helpers import start_historian, wait_until

HOUR = 3600.0


def stored(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT DISTINCT p.name FROM every_sample s JOIN points p ON p.id = s.point"
        )
        return {str(name) for (name,) in rows}
    finally:
        conn.close()


def status(stack: Stack) -> dict[str, Any]:
    """Asked directly, not with ``plant``: it reads plantd.yaml, which may be the bad one."""
    with Client(stack.endpoint, timeout=10, retries=1) as client:
        answer: dict[str, Any] = call(client, SERVICE, "status")
        return answer


def set_historian(stack: Stack, **values: object) -> None:
    path = stack.config_dir / "plantd.yaml"
    data = yaml.safe_load(path.read_text())
    data.setdefault("historian", {}).update(values)
    path.write_text(yaml.safe_dump(data))


@pytest.mark.timeout(90)
@pytest.mark.stack(historian={"batch_interval": 0.2, "status_interval": 0.5})
def test_sighup_applies_retention_at_once_and_a_bad_file_changes_nothing(stack: Stack) -> None:
    stack.start_broker()
    historian = start_historian(stack)
    database = Path(stack.settings["paths"]["data"]) / "history.db"
    publisher = BusPublisher(stack.settings["bus"]["frontend"])
    try:

        def publish() -> bool:
            publisher.publish_sample("data.test.new", 2.0)
            return "test.new" in stored(database)

        assert wait_until(publish, timeout=20), "the samples were never stored"
        # Subscribed: one old sample, and nothing more in flight once it is stored.
        publisher.publish_sample("data.test.old", 1.0, timestamp=time.time() - 2 * HOUR)
        assert wait_until(lambda: "test.old" in stored(database), timeout=10)
        assert wait_until(lambda: status(stack)["pending"] == 0, timeout=10)

        set_historian(stack, raw_max_age="1h")
        historian.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        # A retention pass at once, not at the next maintenance_interval (60 s).
        assert wait_until(lambda: "test.old" not in stored(database), timeout=10)
        assert "test.new" in stored(database)
        assert "SIGHUP: applied historian.raw_max_age: 604800.0 -> 3600.0" in historian.log_text()
        assert status(stack)["raw_max_age"] == HOUR

        set_historian(stack, raw_max_age="soon")
        historian.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        assert wait_until(lambda: "configuration has problems" in historian.log_text(), 10)
        assert f"{stack.config_dir / 'plantd.yaml'}:" in historian.log_text()
        assert historian.running()
        assert status(stack)["raw_max_age"] == HOUR  # as it was
        before = status(stack)["received"]
        publisher.publish_sample("data.test.new", 3.0)
        assert wait_until(lambda: status(stack)["received"] > before, timeout=10)
    finally:
        publisher.close()
