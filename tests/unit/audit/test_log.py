"""The audit writer: stamping, folding refusals with exact sums, flush and stop, pruning, and
write errors that lose nothing once the disk takes writes again."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from plantd import _sqlite
from plantd.audit import AuditEvent, AuditLog, AuditStore
from plantd.audit._store import query_records, verify_chain
from plantd.config import AuditConfig

T0 = 1_700_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def refusal(source: str = "tcp://10.0.0.9:40000", *, time: float = 0.0) -> AuditEvent:
    return AuditEvent(
        "-", "connect", "tcp://0.0.0.0:9797", "denied", "unknown key", source, time=time
    )


def call(principal: str = "alice", *, time: float = 0.0) -> AuditEvent:
    return AuditEvent(principal, "call", "org.plantd.State set", "ok", '{"key":"a"}', "mdp", time)


def records(path: Path) -> list[dict[str, Any]]:
    """Every record on disk, oldest first, read as the audit service would."""
    if not path.exists():
        return []  # the writer thread has not opened the store yet
    conn = _sqlite.connect(path, readonly=True)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'records'").fetchone():
            return []
        return sorted(query_records(conn, limit=1_000_000), key=lambda r: r["id"])
    finally:
        conn.close()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def make_log(tmp_path: Path, clock: Clock) -> Iterator[Callable[..., AuditLog]]:
    logs: list[AuditLog] = []

    def make(config: AuditConfig | None = None, **options: Any) -> AuditLog:
        options.setdefault("flush_interval", 0.05)
        log = AuditLog(tmp_path / "audit.db", config or AuditConfig(), clock=clock, **options)
        logs.append(log)
        log.start()
        return log

    yield make
    for log in logs:
        log.stop()


def test_events_are_stamped_by_the_clock_unless_they_have_a_time(
    make_log: Callable[..., AuditLog], tmp_path: Path
) -> None:
    log = make_log()
    log.record(call())
    log.record(call("bob", time=T0 - 50))
    assert log.flush()
    assert [(r["principal"], r["time"]) for r in records(tmp_path / "audit.db")] == [
        ("alice", T0),
        ("bob", T0 - 50),
    ]
    assert (log.written, log.folded, log.dropped, log.last_error) == (2, 0, 0, None)


def test_a_flood_of_identical_refusals_is_one_record_with_the_exact_count(
    make_log: Callable[..., AuditLog], tmp_path: Path
) -> None:
    log = make_log()
    for _ in range(10_000):  # the clock stands still: all within one window
        log.record(refusal())
    assert log.flush()
    written = records(tmp_path / "audit.db")
    assert [(r["count"], r["time"]) for r in written] == [(10_000, T0)]
    assert (log.written, log.folded) == (1, 9_999)


def test_ten_thousand_identical_refusals_fold_into_one_record_per_second(
    make_log: Callable[..., AuditLog], tmp_path: Path
) -> None:
    log = make_log(flush_interval=60.0)  # nothing is written before the flush
    for i in range(10_000):  # 10 s of refused handshakes, one a millisecond
        log.record(refusal(time=T0 + i * 0.001))
    assert log.flush()
    written = records(tmp_path / "audit.db")
    assert 10 <= len(written) <= 11
    assert sum(r["count"] for r in written) == 10_000
    assert log.folded == 10_000 - len(written)
    assert all(r["result"] == "denied" for r in written)


def test_refusals_fold_only_when_every_field_but_the_time_is_equal(
    make_log: Callable[..., AuditLog], tmp_path: Path
) -> None:
    log = make_log()
    for _ in range(100):
        log.record(refusal("tcp://10.0.0.9:1"))
        log.record(refusal("tcp://10.0.0.7:1"))
        log.record(AuditEvent("-", "connect", "tcp://0.0.0.0:9797", "denied", "revoked", "x"))
    assert log.flush()
    written = records(tmp_path / "audit.db")
    assert sorted((r["source"], r["detail"], r["count"]) for r in written) == [
        ("tcp://10.0.0.7:1", "unknown key", 100),
        ("tcp://10.0.0.9:1", "unknown key", 100),
        ("x", "revoked", 100),
    ]


def test_other_results_are_never_folded(make_log: Callable[..., AuditLog], tmp_path: Path) -> None:
    log = make_log()
    for _ in range(1000):
        log.record(call())  # identical, at the same clock time
    log.record(AuditEvent("bob", "call", "org.plantd.State set", "state.conflict"))
    log.record(AuditEvent("bob", "call", "org.plantd.State set", "state.conflict"))
    assert log.flush()
    written = records(tmp_path / "audit.db")
    assert len(written) == 1002
    assert {r["count"] for r in written} == {1}
    assert log.folded == 0


def test_records_keep_the_order_of_their_first_event(
    make_log: Callable[..., AuditLog], tmp_path: Path
) -> None:
    log = make_log()
    log.record(call("a"))
    log.record(refusal())
    log.record(call("b"))
    log.record(refusal())  # folds into the second record
    log.record(call("c"))
    assert log.flush()
    assert [(r["principal"], r["count"]) for r in records(tmp_path / "audit.db")] == [
        ("a", 1),
        ("-", 2),
        ("b", 1),
        ("c", 1),
    ]


def test_a_window_closes_after_a_second_by_the_clock(
    make_log: Callable[..., AuditLog], tmp_path: Path, clock: Clock
) -> None:
    log = make_log()
    log.record(refusal())
    log.record(refusal())
    clock.now += 1.5  # the writer closes the window on its next round, without a flush
    wait_until(lambda: len(records(tmp_path / "audit.db")) == 1)
    log.record(refusal())  # a new window
    assert log.flush()
    assert [r["count"] for r in records(tmp_path / "audit.db")] == [2, 1]


def test_flush_before_start_is_a_usage_error(tmp_path: Path) -> None:
    from plantd.errors import UsageError

    log = AuditLog(tmp_path / "audit.db", AuditConfig())
    with pytest.raises(UsageError, match="not started"):
        log.flush()
    log.stop()  # harmless


def test_stop_writes_what_is_queued_and_the_chain_verifies(
    make_log: Callable[..., AuditLog], tmp_path: Path
) -> None:
    log = make_log(flush_interval=60.0)  # only stop() will write
    for i in range(1234):
        log.record(call(f"p{i % 7}"))
    log.record(refusal())
    log.stop()
    written = records(tmp_path / "audit.db")
    assert len(written) == 1235
    conn = _sqlite.connect(tmp_path / "audit.db", readonly=True)
    try:
        assert verify_chain(conn) == (True, 1235, None)
    finally:
        conn.close()
    log.record(call())  # after stop: counted, not silently kept
    assert log.dropped == 1


def test_write_errors_keep_the_events_and_are_logged_once_per_transition(
    make_log: Callable[..., AuditLog],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = {"left": 3, "calls": 0}
    append = AuditStore.append_records

    def flaky(self: AuditStore, events: Any) -> list[dict[str, Any]]:
        failures["calls"] += 1
        if failures["left"]:
            failures["left"] -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return append(self, events)

    monkeypatch.setattr(AuditStore, "append_records", flaky)
    caplog.set_level(logging.INFO, logger="plantd.audit")
    log = make_log()
    for i in range(50):
        log.record(call(f"p{i}"))
        log.record(refusal())
    assert log.flush(timeout=20)
    assert failures == {"left": 0, "calls": failures["calls"]}
    assert failures["calls"] >= 4
    written = records(tmp_path / "audit.db")
    assert [r["principal"] for r in written if r["action"] == "call"] == [
        f"p{i}" for i in range(50)
    ]
    assert sum(r["count"] for r in written if r["result"] == "denied") == 50
    assert (log.dropped, log.last_error) == (0, None)
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    errors = [m for level, m in messages if level == "ERROR"]
    assert len(errors) == 1
    assert "database or disk is full" in errors[0]
    assert any("writing to" in m and "again" in m for level, m in messages if level == "WARNING")


def test_past_the_memory_bound_new_events_are_counted_as_dropped(
    make_log: Callable[..., AuditLog], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = {"full": True}
    append = AuditStore.append_records

    def full(self: AuditStore, events: Any) -> list[dict[str, Any]]:
        if disk["full"]:
            raise sqlite3.OperationalError("database or disk is full")
        return append(self, events)

    monkeypatch.setattr(AuditStore, "append_records", full)
    log = make_log(max_pending=100)
    for i in range(150):
        log.record(call(f"p{i}"))
    for _ in range(20):
        log.record(refusal())  # no room for a new record: dropped too
    wait_until(lambda: log.dropped == 70 and log.last_error is not None)
    disk["full"] = False
    assert log.flush(timeout=20)
    written = records(tmp_path / "audit.db")
    assert [r["principal"] for r in written] == [f"p{i}" for i in range(100)]
    assert (log.written, log.dropped, log.last_error) == (100, 70, None)


def test_stop_gives_up_on_a_dead_disk_and_counts_the_loss(
    make_log: Callable[..., AuditLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: AuditStore, events: Any) -> list[dict[str, Any]]:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(AuditStore, "append_records", broken)
    log = make_log()
    for _ in range(5):
        log.record(call())
    log.stop(timeout=0.3)
    assert log.dropped == 5
    assert log.last_error == "OperationalError: disk I/O error"


def test_old_records_are_pruned_at_start_and_every_hour(
    make_log: Callable[..., AuditLog], tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "audit.db"
    with AuditStore(path, AuditConfig()) as store:
        store.append([call(time=T0 - 7200), call(time=T0 - 10)])
    log = make_log(AuditConfig(max_age=3600.0))
    log.record(call("new"))
    assert log.flush()
    assert [r["time"] for r in records(path)] == [T0 - 10, T0]
    clock.now += 3601  # an hour on: the next round prunes the two that are now old
    log.record(call("newer"))
    assert log.flush()
    wait_until(lambda: [r["principal"] for r in records(path)] == ["newer"])
