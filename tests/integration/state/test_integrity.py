"""The real ``plantd-state`` refuses a database that lost acknowledged writes or is damaged: one
clear line naming the file and what is wrong, exit 65 (not restarted by systemd), and
``--accept-loss`` lets it start again (issue 12, items 5-6).

Each test writes keys through the broker and has them acknowledged, stops or kills the service,
damages the files as a crash or a bad disk would, and starts it again.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from plantd.errors import ServiceError
from plantd.state import StateClient
from plantd.state._errors import DAMAGED_EXIT_STATUS
from plantd.testing import ManagedProcess
from tests.conftest import Stack
from tests.integration.state.conftest import database, start_state, wait_for_state

SCOPE = "plant.integrity"
PAGE = 4096
FAST = 0.1  # heartbeats: a killed service's workers leave the broker quickly


async def write_keys(state: StateClient, keys: int, value: str = "v") -> None:
    await state.create_scope(SCOPE)
    for start in range(0, keys, 100):
        ops = [
            {"op": "set", "scope": SCOPE, "key": f"k{n:05d}", "value": f"{value}{n}"}
            for n in range(start, min(start + 100, keys))
        ]
        await state.batch(ops)  # acknowledged: on disk


def exit_status(process: ManagedProcess) -> int:
    assert process.process is not None
    return process.process.wait(timeout=60)


def refused(stack: Stack, name: str) -> tuple[int, str]:
    """Start the service on the damaged files; its exit status and its output."""
    process = start_state(stack, name, wait=False)
    return exit_status(process), process.log_text()


def accept_loss(stack: Stack) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "plantd.state", "--config", str(stack.config_dir), "--accept-loss"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def starts_again(stack: Stack, name: str) -> dict[str, object]:
    start_state(stack, name)
    return wait_for_state(stack.endpoint)


def assert_one_clear_line(output: str, path: Path, problem: str) -> None:
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if problem in line]
    assert len(lines) == 1, output
    assert f"{path}: " in lines[0]
    assert "--accept-loss" in lines[0]


def damage_wal(wal: Path, damage: str) -> None:
    assert wal.stat().st_size > 0
    if damage == "delete":
        wal.unlink()
        return
    with wal.open("r+b") as file:  # SQLite drops every frame from the first bad one on
        file.seek(wal.stat().st_size // 2)
        file.write(b"\x5a" * 64)


async def read_every_value(state: StateClient) -> None:
    after = None
    while True:
        page = await state.list(SCOPE, after=after, limit=1000, values=True)
        after = page["next"]
        assert after is not None, "read every key without meeting the damaged page"


def corrupt_middle_page(path: Path) -> None:
    """Overwrite a leaf page in the middle of the keys with bytes no b-tree page can hold (a
    key's page: other pages, such as recorded results, are not read by every request)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        pages = [
            row[0]
            for row in db.execute(
                "SELECT pageno FROM dbstat WHERE name = 'entries' AND pagetype = 'leaf' "
                "ORDER BY pageno"
            )
        ]
    assert len(pages) > 8, "too few pages of keys to damage one in the middle"
    with path.open("r+b") as file:
        file.seek((pages[len(pages) // 2] - 1) * PAGE)
        file.write(b"\xa5" * PAGE)


@pytest.mark.parametrize("damage", ["truncate", "delete"])
async def test_an_emptied_or_deleted_database_is_refused(
    stack: Stack, state_client: StateClient, damage: str
) -> None:
    stack.start_broker()
    service = start_state(stack)
    await write_keys(state_client, 300)
    assert service.terminate() == 0
    path = database(stack)
    if damage == "truncate":
        path.write_bytes(b"")
        problem = "the database is empty (0 bytes), but state.db.generation says it held"
    else:
        path.unlink()
        problem = "the database does not exist, but state.db.generation says it held"
    status, output = refused(stack, "refused")
    assert status == DAMAGED_EXIT_STATUS
    assert_one_clear_line(output, path, problem)
    assert "removed" in accept_loss(stack)
    health = starts_again(stack, "after")
    assert health["status"] == "ok"
    assert health["keys"] == 0  # what is left: nothing, and now everyone knows


@pytest.mark.stack(
    broker={"heartbeat_interval": FAST, "worker_loss_retries": 0},
    worker={"heartbeat_interval": FAST},
)
@pytest.mark.parametrize("damage", ["delete", "damage"])
async def test_a_lost_or_damaged_wal_after_kill9_is_refused(
    stack: Stack, state_client: StateClient, damage: str
) -> None:
    stack.start_broker()
    service = start_state(stack)
    await write_keys(state_client, 300)
    service.kill()  # no checkpoint: the acknowledged writes are in the WAL only
    path = database(stack)
    damage_wal(Path(f"{path}-wal"), damage)
    status, output = refused(stack, "refused")
    assert status == DAMAGED_EXIT_STATUS
    assert_one_clear_line(output, path, "acknowledged change(s) are missing")
    accept_loss(stack)
    assert starts_again(stack, "after")["status"] == "ok"


async def test_a_damaged_page_is_refused_at_start(stack: Stack, state_client: StateClient) -> None:
    stack.start_broker()
    service = start_state(stack)
    await write_keys(state_client, 3000)
    assert service.terminate() == 0  # checkpointed: everything is in state.db
    path = database(stack)
    corrupt_middle_page(path)
    status, output = refused(stack, "refused")
    assert status == DAMAGED_EXIT_STATUS
    assert_one_clear_line(output, path, "the database is damaged: PRAGMA quick_check")
    assert "moved" in accept_loss(stack)
    assert list(path.parent.glob("state.db.damaged-*"))  # kept for salvage
    health = starts_again(stack, "fresh")
    assert (health["status"], health["keys"]) == ("ok", 0)


@pytest.mark.stack(
    broker={"heartbeat_interval": FAST, "worker_loss_retries": 0},
    worker={"heartbeat_interval": FAST},
)
async def test_a_page_damaged_while_serving_stops_the_service_once(
    stack: Stack, state_client: StateClient
) -> None:
    stack.start_broker()
    service = start_state(stack)
    await write_keys(state_client, 3000)
    assert service.terminate() == 0
    service = start_state(stack, "serving")  # passes quick_check
    path = database(stack)
    corrupt_middle_page(path)
    # A commit makes the reader drop its page cache, so the next reads go to the file.
    await state_client.set(SCOPE, "after", 1)
    with pytest.raises(ServiceError) as raised:
        await read_every_value(state_client)
    assert raised.value.code == "state.damaged"
    assert exit_status(service) == DAMAGED_EXIT_STATUS
    output = service.log_text()
    assert "internal" not in output
    assert_one_clear_line(output, path, "the database is damaged: SQLite said")
