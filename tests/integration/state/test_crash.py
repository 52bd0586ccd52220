"""Crash durability: kill -9 of plantd-state at random moments during concurrent writes.

Each cycle starts a real ``plantd-state`` (the broker stays up), lets four writers hammer it —
two write batches that set three keys to the same number, two write single keys — and kills
it with SIGKILL at a random moment. Then, with the process dead, the database file is opened
read-only and checked:

- ``PRAGMA integrity_check`` is ``ok``;
- every acknowledged write is there: each key holds at least the last number acknowledged for
  it (a later write may have superseded it) and at most the last one sent (nothing invented);
- nothing unacknowledged is half-applied: a batch's three keys always hold the same number;
- the bookkeeping agrees: no key's revision is above the global revision, and every request id
  that was acknowledged is recorded (so its retry would get the same answer).

Every earlier cycle's keys are checked again each time. ``--crash-cycles N`` runs more cycles
(default 50).
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from plantd.client import AsyncClient
from plantd.errors import RequestError
from plantd.state import StateClient
from tests.conftest import Stack
from tests.integration.state.conftest import database, start_state, wait_for_state

SCOPE = "crash"
BATCH_KEYS = ("a", "b", "c")
FAST = 0.1  # heartbeats: a killed service's workers leave the broker within 0.3 s


@dataclass
class Lane:
    """One writer: the numbers it sent and had acknowledged, key by key."""

    cycle: int
    index: int
    batch: bool
    sent: int = 0  # highest number sent (maybe applied)
    acked: int = 0  # highest number acknowledged (must be applied)
    acked_ids: list[str] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        base = f"c{self.cycle}.l{self.index}"
        return [f"{base}.{k}" for k in BATCH_KEYS] if self.batch else [base]

    async def run(self, endpoint: str) -> None:
        async with AsyncClient(endpoint, timeout=1.0, retries=0) as client:
            state = StateClient(client)
            n = 0
            while True:
                n += 1
                request_id = f"c{self.cycle}-l{self.index}-{n}"
                self.sent = n
                try:
                    if self.batch:
                        await state.batch(
                            [
                                {"op": "set", "scope": SCOPE, "key": key, "value": n}
                                for key in self.keys
                            ],
                            request_id=request_id,
                        )
                    else:
                        await state.set(SCOPE, self.keys[0], n, request_id=request_id)
                except RequestError:
                    await asyncio.sleep(0.01)  # no answer, or an error: not acknowledged
                    continue
                self.acked = n
                self.acked_ids.append(request_id)


def check_file(path: Path, lanes: list[Lane]) -> None:
    """The checks above, on the database file of a dead service."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        (revision,) = db.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()
        (top,) = db.execute("SELECT coalesce(max(revision), 0) FROM entries").fetchone()
        assert top <= revision
        values = dict(
            db.execute("SELECT key, CAST(value AS INTEGER) FROM entries WHERE scope = ?", (SCOPE,))
        )
        for lane in lanes:
            found = [values.get(key) for key in lane.keys]
            where = (
                f"cycle {lane.cycle} lane {lane.index}: {dict(zip(lane.keys, found, strict=True))}"
            )
            assert len(set(found)) == 1, f"half-applied batch: {where}"
            value = found[0]
            if value is None:
                assert lane.acked == 0, f"acknowledged {lane.acked}, found nothing: {where}"
                continue
            assert lane.acked <= value <= lane.sent, (
                f"acknowledged {lane.acked}, sent {lane.sent}: {where}"
            )
        wanted = [rid for lane in lanes for rid in lane.acked_ids[-5:]]
        marks = ",".join("?" * len(wanted))
        recorded = {
            row[0]
            for row in db.execute(
                f"SELECT request_id FROM requests WHERE request_id IN ({marks})", wanted
            )
        }
        assert recorded == set(wanted), "an acknowledged request id was not recorded"


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.stack(
    broker={"heartbeat_interval": FAST, "worker_loss_retries": 0, "request_expiry": 1.0},
    worker={"heartbeat_interval": FAST},
    state={"workers": 4},
)
async def test_kill9_during_concurrent_writes(
    stack: Stack, state_client: StateClient, pytestconfig: pytest.Config
) -> None:
    cycles: int = pytestconfig.getoption("--crash-cycles")
    assert cycles >= 1
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    stack.start_broker()
    service = start_state(stack)
    await state_client.create_scope(SCOPE)
    path = database(stack)
    lanes: list[Lane] = []
    acked = kills = 0
    started = time.monotonic()
    for cycle in range(cycles):
        if not service.running():
            service.start()
            await asyncio.to_thread(wait_for_state, stack.endpoint)
        current = [Lane(cycle, index, batch=index < 2) for index in range(4)]
        lanes.extend(current)
        tasks = [asyncio.create_task(lane.run(stack.endpoint)) for lane in current]
        await asyncio.sleep(rng.uniform(0.02, 0.25))
        service.kill()
        kills += 1
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        acked += sum(lane.acked for lane in current)
        try:
            check_file(path, lanes)
        except AssertionError as exc:
            raise AssertionError(f"cycle {cycle} (seed {seed}): {exc}") from exc
    elapsed = time.monotonic() - started
    print(f"{kills} kill -9 cycles, {acked} acknowledged writes, {elapsed:.1f} s (seed {seed})")
    assert kills == cycles
    assert acked > cycles, "the writers hardly got anything acknowledged"
    # And the service comes back from the last kill with everything in place.
    service.start()
    await asyncio.to_thread(wait_for_state, stack.endpoint)
    for lane in lanes[-4:]:
        if lane.acked:
            got = await state_client.get(SCOPE, lane.keys[0])
            assert got["value"] >= lane.acked
