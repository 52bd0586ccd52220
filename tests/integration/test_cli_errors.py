"""``plant`` says at once when nobody is there (issue 12, item 13).

It asks the broker (``mmi.service``, RFC 8) before its first call: no answer is "no broker at
ENDPOINT" (exit 3), a 404 is "no worker serves SERVICE (is … running?)" (exit 4), instead of
every attempt timing out and a bare "no reply from service …". The subprocesses' timeout is
modest on purpose: the old path took (1 + retries) x timeout.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from plantd.cli import NO_BROKER, NO_WORKER
from tests.conftest import Stack

# Long attempts, as on an appliance: the old path would take 4 x 5 s, past the 10 s below.
SLOW_CLIENT = {"timeout": 5.0, "retries": 3}


def plant(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir), *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


@pytest.mark.stack(client=SLOW_CLIENT)
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("historian", "status"),
            "no worker serves org.plantd.Historian (is plantd-historian running?)",
        ),
        (("state", "get", "some.scope", "key"), "no worker serves org.plantd.State"),
        (("module", "status", "pump9"), "is module 'pump9' configured"),
        (("call", "org.plantd.Nothing", "operations"), "no worker serves org.plantd.Nothing"),
    ],
)
def test_no_worker_for_the_service(stack: Stack, args: tuple[str, ...], expected: str) -> None:
    stack.start_broker()
    done = plant(stack, *args)
    assert done.returncode == NO_WORKER, done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.stack(client=SLOW_CLIENT)
@pytest.mark.parametrize(
    "args",
    [
        ("historian", "status"),
        ("state", "get", "some.scope", "key"),
        ("mmi", "services"),
        ("call", "org.plantd.module.Echo", "echo", '{"text": "hi"}'),
    ],
)
def test_no_broker_at_the_endpoint(stack: Stack, args: tuple[str, ...]) -> None:
    stack.without_broker()  # the stack's broker is never started: nothing listens there
    done = plant(stack, *args)
    assert done.returncode == NO_BROKER, done.stderr
    assert f"no broker at {stack.endpoint}" in done.stderr
    assert "is plantd-broker running" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.stack(client=SLOW_CLIENT)
def test_a_running_service_is_still_answered(stack: Stack) -> None:
    stack.start_broker()
    stack.start_echo()
    done = plant(stack, "echo", "hello")
    assert (done.returncode, done.stdout) == (0, "hello\n"), done.stderr
    done = plant(stack, "mmi", "service", "org.plantd.module.Echo")
    assert done.returncode == 0, done.stderr
