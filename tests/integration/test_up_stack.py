"""``plant up`` as a user runs it: a child with a bad file is stopped (not restarted forever),
and a second stack on the same data directory is refused while the first one lives."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from plantd.testing import ipc_endpoints, wait_for_workers
from tests.conftest import Stack, make_stack
from tests.integration._plant_up import Up, run_plant_up

ECHO = "org.plantd.module.Echo"
BAD_DRIVER = "no driver named 'nosuchdriver'"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Running (not a zombie waiting for a reaper that is gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    # plant up starts the services with the broker, so they need its endpoints before it binds.
    return make_stack(tmp_path, security={"mode": "none"}, **ipc_endpoints(tmp_path / "sockets"))


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[Callable[[Stack], Up]]:
    started: list[Up] = []

    def start(stack: Stack) -> Up:
        up = run_plant_up(stack.config_dir, tmp_path, f"up{len(started)}")
        started.append(up)
        return up

    yield start
    for up in started:
        up.kill()


def test_a_child_with_a_bad_file_is_stopped_once_and_the_rest_runs_on(
    stack: Stack, start_up: Callable[[Stack], Up]
) -> None:
    modules = stack.config_dir / "modules.d"
    modules.mkdir()
    (modules / "bad.yaml").write_text("driver: nosuchdriver\nisolated: true\n")
    up = start_up(stack)
    wait_until(lambda: "not restarting module bad" in up.stderr(), "plant up to give up")
    wait_for_workers(stack.endpoint, ECHO)  # the others run on
    stderr = up.stderr()
    assert "restarting in" not in stderr  # before: "exited with 2; restarting in 0.5 s", forever
    assert f"plant up: module bad exited 2 (bad configuration): {stack.config_dir}" in stderr
    assert up.process.poll() is None
    assert up.interrupt() == 2  # the exit status says something was wrong
    stderr = up.stderr()
    assert stderr.count(BAD_DRIVER) == 3  # its own error once; plant up's line; the summary
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("plant up: stopped module bad: exited 2 (bad configuration): ")
    assert BAD_DRIVER in last
    assert "Traceback" not in stderr


def test_a_second_stack_on_the_same_data_directory_is_refused(
    stack: Stack, start_up: Callable[[Stack], Up]
) -> None:
    first = start_up(stack)
    wait_for_workers(stack.endpoint, ECHO)
    second = start_up(stack)
    assert second.process.wait(timeout=60) == 1
    data = stack.settings["paths"]["data"]
    assert (
        f"plant up: a stack is already running on {data} (plant up, pid {first.process.pid})"
    ) in second.stderr()
    assert "plantd stack up" not in second.stdout()  # it started nothing
    assert first.process.poll() is None
    assert first.interrupt() == 0


def test_the_lock_goes_with_a_killed_plant_up(
    stack: Stack, start_up: Callable[[Stack], Up]
) -> None:
    first = start_up(stack)
    wait_until(lambda: "plantd stack up" in first.stdout(), "the first stack")
    children = first.children()
    assert children
    first.process.kill()  # kill -9: no chance to let go of anything, nor to stop its children
    first.process.wait()
    # They stop by themselves (PR_SET_PDEATHSIG): no orphan keeps the stack's ports.
    wait_until(lambda: not any(_alive(pid) for pid in children), "its children to stop")
    third = start_up(stack)
    wait_until(lambda: "plantd stack up" in third.stdout(), "a new stack after kill -9")
    wait_for_workers(stack.endpoint, ECHO)
    assert "already running" not in third.stderr()
    assert third.interrupt() == 0


def test_a_data_directory_it_cannot_make_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    (tmp_path / "plantd.yaml").write_text(
        f"security: {{mode: none}}\npaths: {{data: {tmp_path / 'file' / 'data'}}}\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "plantd.cli", "--config", str(tmp_path), "up"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr  # before: NotADirectoryError and its traceback
    assert f"plant up: cannot make {tmp_path / 'file' / 'data'}: Not a directory;" in run.stderr
