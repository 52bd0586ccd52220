"""``plantd-logger`` as a real process behind a real broker: records published on ``log.*``
are stored, ``org.plantd.Logger`` answers, ``plant logs`` finds them and ``plant logs -f``
prints new ones as they come; SIGTERM stops it in order."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plantd.bus import BusPublisher
from plantd.client import Client
from plantd.service import call
from plantd.testing import ManagedProcess, wait_for_workers
from tests.conftest import Stack

SERVICE = "org.plantd.Logger"


def start_logger(stack: Stack) -> ManagedProcess:
    process = ManagedProcess.plantd(
        ["plantd.logger", "--config", str(stack.config_dir)], name="logger", log_dir=stack.log_dir
    ).start()
    stack.processes.append(process)
    wait_for_workers(stack.endpoint, SERVICE)
    return process


def record(message: str, *, source: str = "module.boiler", level: str = "warning",
           **fields: Any) -> dict[str, Any]:  # fmt: skip
    return {"time": time.time(), "level": level, "source": source,
            "logger": "plantd.module.boiler", "message": message, **fields}  # fmt: skip


def publish(stack: Stack, *records: dict[str, Any]) -> None:
    """Publish ``records`` on ``log.<source>.<level>`` once the bus passes subscriptions on."""

    async def send() -> None:
        publisher = BusPublisher(stack.settings["bus"]["frontend"])
        try:
            await publisher.wait_for_subscribers(5.0)
            for fields in records:
                publisher.publish_record(f"log.{fields['source']}.{fields['level']}", fields)
        finally:
            publisher.close()

    asyncio.run(send())


def until(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError("the condition did not come true in time")
        time.sleep(0.05)
    return result


def plant(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir), *args],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.stack(logger={"batch_interval": 0.05, "listen": ""})
def test_records_are_stored_searched_and_followed(stack: Stack) -> None:
    stack.start_broker()
    logger = start_logger(stack)
    publish(
        stack,
        record("Q7Z-poll failed: timeout", unit=3, point="temp"),
        record("Q7Z-connected", level="info"),
        record("Q7Z-state is slow", source="state", level="error"),
    )
    with Client(stack.endpoint, timeout=2.0) as client:
        # (the logger and the broker store records of their own too: ours say "Q7Z-")
        mine = {"contains": "q7z-"}
        until(lambda: len(call(client, SERVICE, "query", mine)["records"]) == 3)
        page = call(client, SERVICE, "query", {**mine, "source": "module.", "level": "warning"})
        assert [r["message"] for r in page["records"]] == ["Q7Z-poll failed: timeout"]
        assert page["records"][0]["fields"] == {"point": "temp", "unit": 3}
        status = call(client, SERVICE, "status")
        assert status["records"] >= 3
        assert status["stored"] == status["records"]
        assert status["lost"] == 0
        assert status["bytes"] > 0

    done = plant(stack, "logs", "--level", "warning", "--since", "10m", "--contains", "Q7Z-")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert "WARNING  module.boiler plantd.module.boiler: Q7Z-poll failed: timeout" in lines[0]
    assert lines[0].endswith("point=temp unit=3")
    assert "ERROR    state" in lines[1]
    assert lines[1].endswith(": Q7Z-state is slow")  # oldest first
    done = plant(stack, "logs", "--service", "state", "--contains", "Q7Z-", "--json")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["message"] for line in done.stdout.splitlines()] == [
        "Q7Z-state is slow"
    ]
    done = plant(stack, "logs", "--level", "loud")
    assert done.returncode == 1
    assert "unknown level 'loud'" in done.stderr

    errors = stack.log_dir / "follow.err"
    with errors.open("w") as stderr, subprocess.Popen(
        [sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir),
         "logs", "-f", "--service", "module.boiler", "--contains", "valve"],
        stdout=subprocess.PIPE, stderr=stderr, text=True,
    ) as follow:  # fmt: skip
        out = follow.stdout
        assert out is not None
        seen: list[str] = []
        reader = threading.Thread(target=lambda: seen.extend(iter(out.readline, "")))
        reader.start()
        try:
            # Printed once whether the follower's first search or its polling finds it.
            publish(stack, record("valve 7 stuck", code="E42"), record("valve", source="state"))
            until(lambda: any("valve 7 stuck" in line for line in seen))
            # Published once the follower polls: only following can print this one.
            publish(stack, record("valve 8 open", level="info"))
            until(lambda: any("valve 8 open" in line for line in seen))
            assert sum("valve 7 stuck" in line for line in seen) == 1
            assert "code=E42" in next(line for line in seen if "valve 7" in line)
            assert [line for line in seen if " state " in line] == []  # --service
            # The logger restarts: the follower waits, then goes on after the last id.
            assert logger.terminate() == 0
            logger = start_logger(stack)
            publish(stack, record("valve 9 back"))
            until(lambda: any("valve 9 back" in line for line in seen))
        finally:
            follow.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                code = follow.wait(timeout=20)
            finally:
                follow.kill()  # else leaving the `with` would wait for it for ever
            reader.join(timeout=20)
    assert code == 0, errors.read_text()

    assert logger.terminate() == 0
    assert "Traceback" not in logger.log_text()


@pytest.mark.timeout(60)
def test_no_logger_is_no_worker(stack: Stack) -> None:
    stack.start_broker()
    done = plant(stack, "logs")
    assert done.returncode == 4, done.stderr  # NO_WORKER


def test_the_database_is_where_the_config_says(tmp_path: Path) -> None:
    from plantd.config import LoggerConfig, PathsConfig

    paths = PathsConfig(data=tmp_path)
    assert LoggerConfig().database_path(paths) == tmp_path / "logs.db"


@pytest.mark.timeout(60)
@pytest.mark.stack(
    logger={"batch_interval": 10.0, "listen": ""},
    logging={"level": "debug", "publish": "off"},  # the only record is the test's
)
def test_sigterm_commits_the_batch_in_hand(stack: Stack) -> None:
    stack.start_broker()
    logger = start_logger(stack)
    publish(stack, record("Q7Z-last words"))
    with Client(stack.endpoint, timeout=2.0) as client:
        # Received, and waiting for its batch to be written (10 s from now).
        until(lambda: call(client, SERVICE, "status")["pending"] == 1)
        assert call(client, SERVICE, "query", {"contains": "Q7Z-"})["records"] == []
    assert logger.terminate() == 0
    database = Path(stack.settings["paths"]["data"]) / "logs.db"
    conn = sqlite3.connect(database)
    try:
        stored = conn.execute("SELECT message FROM records WHERE message LIKE 'Q7Z-%'")
        assert [row[0] for row in stored] == ["Q7Z-last words"]
    finally:
        conn.close()
