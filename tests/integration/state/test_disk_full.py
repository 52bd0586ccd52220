"""A write that cannot be made durable is answered with an error, never acknowledged; the service
stays up, serves reads, and takes writes again once space returns.

Two real ways to run out of space, so that the test always runs: a small tmpfs (needs ``mount``,
which root may do here) and ``RLIMIT_FSIZE`` on the service process (``prlimit``; the service
ignores SIGXFSZ, so the kernel answers its writes with EFBIG instead of killing it).
"""

from __future__ import annotations

import contextlib
import os
import resource
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from plantd.errors import ServiceError
from plantd.state import StateClient
from plantd.testing import ManagedProcess
from tests.conftest import Stack
from tests.integration.state.conftest import start_state, wait_for_state

SCOPE = "plant.disk"
VALUE = "v" * 8000


@contextlib.contextmanager
def small_tmpfs(directory: Path) -> Iterator[Callable[[], None]]:
    """A 256 KiB tmpfs at ``directory``; yields a function that grows it to 64 MiB."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(directory)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc}); the RLIMIT_FSIZE variant still runs")

    def grow() -> None:
        subprocess.run(
            ["mount", "-o", "remount,size=64m", str(directory)], check=True, capture_output=True
        )

    try:
        yield grow
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False, capture_output=True)


def file_limit(process: ManagedProcess, database: Path) -> Callable[[], None]:
    """Cap the service's file size a little above its files now; returns the undo."""
    sizes = [p.stat().st_size for p in database.parent.glob(database.name + "*")]
    cap = max(sizes) + 160 * 1024  # room for a few writes, each a handful of WAL frames
    _, hard = resource.prlimit(process.pid, resource.RLIMIT_FSIZE)
    # Only the soft limit: the kernel enforces it, and raising it again needs no privilege.
    resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (cap, hard))

    def lift() -> None:
        resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (hard, hard))

    return lift


@pytest.fixture(params=["tmpfs", "rlimit"])
async def full_disk(
    request: pytest.FixtureRequest, stack: Stack, tmp_path: Path
) -> AsyncIterator[tuple[ManagedProcess, Path, Callable[[], None]]]:
    """A running service whose next growth of its files fails; and how to make room again."""
    disk = tmp_path / "disk"
    with contextlib.ExitStack() as cleanup:
        if request.param == "tmpfs":
            grow = cleanup.enter_context(small_tmpfs(disk))
        else:
            disk.mkdir()
        database = disk / "state.db"
        env = dict(os.environ, PLANTD_STATE_DATABASE=str(database))
        stack.start_broker()
        process = start_state(stack, env=env)
        cleanup.callback(process.kill)  # before the unmount
        if request.param == "rlimit":
            grow = file_limit(process, database)
        yield process, database, grow


async def test_a_full_disk_is_an_error_never_an_acknowledgement(
    stack: Stack,
    state_client: StateClient,
    full_disk: tuple[ManagedProcess, Path, Callable[[], None]],
) -> None:
    process, database, make_room = full_disk
    state = state_client
    await state.create_scope(SCOPE)
    acked: list[str] = []
    failed: list[tuple[str, ServiceError]] = []
    for n in range(400):
        key = f"k{n}"
        try:
            await state.set(SCOPE, key, VALUE)
        except ServiceError as exc:
            failed.append((key, exc))
            if len(failed) >= 5:
                break
        else:
            acked.append(key)
    assert acked, "nothing fitted before the disk filled up"
    assert len(failed) == 5, "the disk never filled up"
    for _, error in failed:
        assert error.code == "state.io-error"
        assert error.message.startswith("the write was not applied: the database said SQLITE_")
    # The service is up, says why it cannot write, and still serves reads.
    assert process.running()
    health = await state.health()
    assert health["status"] == "degraded"
    assert "SQLITE_" in str(health["last_error"])
    assert (await state.get(SCOPE, acked[-1]))["value"] == VALUE
    for key, _ in failed:
        with pytest.raises(ServiceError, match="unknown-key"):
            await state.get(SCOPE, key)
    assert process.log_text().count("commit failed") == 1  # logged once, not per write
    # Space returns: writes work again, and the health says so.
    make_room()
    for n in range(5):
        await state.set(SCOPE, f"after{n}", VALUE)
    health = await state.health()
    assert health["status"] == "ok"
    assert health["last_error"] is None
    assert "commits succeed again" in process.log_text()
    # Everything acknowledged survives a kill -9; nothing refused appeared.
    process.kill()
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        keys = {row[0] for row in db.execute("SELECT key FROM entries")}
    assert set(acked) | {f"after{n}" for n in range(5)} == keys
    process.start()
    wait_for_state(stack.endpoint)
    assert (await state.get(SCOPE, "after4"))["version"] == 1
