"""The audit store on a real SQLite file: appends and queries, the append-only triggers,
pruning by age and by size with an injected clock, and the hash chain catching tampering."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from plantd import _sqlite
from plantd.audit import AuditEvent, AuditStore
from plantd.audit._store import GENESIS, chain_hash, query_records, used_bytes, verify_chain
from plantd.config import AuditConfig

T0 = 1_700_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def event(
    principal: str = "alice",
    action: str = "call",
    target: str = "org.plantd.State set",
    result: str = "ok",
    *,
    time: float = T0,
    detail: str = "",
    count: int = 1,
) -> AuditEvent:
    return AuditEvent(
        principal,
        action,  # type: ignore[arg-type]
        target,
        result,
        detail=detail,
        source="mdp",
        time=time,
        count=count,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def open_store(tmp_path: Path, clock: Clock) -> Iterator[Callable[..., AuditStore]]:
    stores: list[AuditStore] = []

    def opener(**settings: object) -> AuditStore:
        store = AuditStore(tmp_path / "audit.db", AuditConfig(**settings), clock=clock)  # type: ignore[arg-type]
        stores.append(store)
        return store

    yield opener
    for store in stores:
        store.close()


@pytest.fixture
def raw(tmp_path: Path) -> Iterator[Callable[[], sqlite3.Connection]]:
    """Plain connections to the same file, as a tamperer (or another process) would open."""
    conns: list[sqlite3.Connection] = []

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
        conns.append(conn)
        return conn

    yield connect
    for conn in conns:
        conn.close()


def test_append_returns_the_count_and_records_chain_from_genesis(
    open_store: Callable[..., AuditStore],
) -> None:
    store = open_store()
    assert store.count() == 0
    assert store.verify() == (True, 0, None)
    assert store.append([event(time=T0 + i) for i in range(3)]) == 3
    records = store.append_records([event("bob", time=T0 + 3)])
    assert records[0]["id"] == 4
    assert store.count() == 4
    oldest_first = sorted(store.query(), key=lambda r: r["id"])
    previous = GENESIS
    for record in oldest_first:
        assert record["hash"] == chain_hash(previous, record)
        previous = record["hash"]
    assert store.verify() == (True, 4, None)


def test_append_of_nothing_writes_nothing(open_store: Callable[..., AuditStore]) -> None:
    store = open_store()
    assert store.append([]) == 0
    assert store.count() == 0


def test_query_filters_newest_first_and_pages(open_store: Callable[..., AuditStore]) -> None:
    store = open_store()
    store.append(
        [
            event("alice", "call", "org.plantd.State set", "ok", time=T0),
            event("bob", "call", "org.plantd.module.pump1 write", "ok", time=T0 + 10),
            event("-", "connect", "tcp://0.0.0.0:9797", "denied", time=T0 + 20, count=7),
            event("alice", "call", "org.plantd.module.pump1 write", "state.denied", time=T0 + 30),
            event("bob", "register", "org.plantd.module.pump2", "denied", time=T0 + 40),
        ]
    )
    ids = [r["id"] for r in store.query()]
    assert ids == [5, 4, 3, 2, 1]
    assert [r["id"] for r in store.query(principal="alice")] == [4, 1]
    assert [r["id"] for r in store.query(action="call")] == [4, 2, 1]
    assert [r["id"] for r in store.query(result="denied")] == [5, 3]
    assert [r["id"] for r in store.query(target_prefix="org.plantd.module.")] == [5, 4, 2]
    assert [r["id"] for r in store.query(target_prefix="org.plantd.module.pump1 ")] == [4, 2]
    assert [r["id"] for r in store.query(target_prefix="%")] == []  # no LIKE wildcards
    assert [r["id"] for r in store.query(since=T0 + 10, until=T0 + 30)] == [3, 2]
    assert [r["id"] for r in store.query(limit=2)] == [5, 4]
    assert [r["id"] for r in store.query(limit=2, before_id=4)] == [3, 2]
    assert [r["id"] for r in store.query(principal="bob", action="register")] == [5]
    refused = store.query(action="connect")[0]
    assert refused == {
        "id": 3,
        "time": T0 + 20,
        "principal": "-",
        "action": "connect",
        "target": "tcp://0.0.0.0:9797",
        "result": "denied",
        "detail": "",
        "source": "mdp",
        "count": 7,
        "hash": refused["hash"],
    }


def test_a_reopened_store_continues_the_chain(
    open_store: Callable[..., AuditStore],
) -> None:
    first = open_store()
    first.append([event(time=T0 + i) for i in range(3)])
    first.close()
    again = open_store()
    again.append([event(time=T0 + 3)])
    assert [r["id"] for r in again.query()] == [4, 3, 2, 1]
    assert again.verify() == (True, 4, None)


def test_update_is_refused(
    open_store: Callable[..., AuditStore], raw: Callable[[], sqlite3.Connection]
) -> None:
    open_store().append([event(), event()])
    conn = raw()
    with pytest.raises(sqlite3.IntegrityError, match="append-only: UPDATE refused"):
        conn.execute("UPDATE records SET result = 'ok' WHERE id = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE records SET count = count + 1")


def test_delete_of_records_pruning_did_not_declare_is_refused(
    open_store: Callable[..., AuditStore], raw: Callable[[], sqlite3.Connection]
) -> None:
    store = open_store(max_age=100.0)
    store.append([event(time=T0 - 1000), event(time=T0), event(time=T0)])
    conn = raw()
    with pytest.raises(sqlite3.IntegrityError, match="append-only: DELETE refused"):
        conn.execute("DELETE FROM records WHERE id = 3")
    with pytest.raises(sqlite3.IntegrityError, match="append-only: DELETE refused"):
        conn.execute("DELETE FROM records")  # the whole statement fails, old rows too
    assert store.prune(T0) == (1, 0)
    with pytest.raises(sqlite3.IntegrityError, match="only grows"):
        conn.execute("UPDATE meta SET value = 0 WHERE key = 'prune_through'")
    with pytest.raises(sqlite3.IntegrityError, match="meta: DELETE refused"):
        conn.execute("DELETE FROM meta")
    assert store.count() == 2  # only what pruning removed is gone
    assert store.verify() == (True, 2, None)


def test_prune_by_age_keeps_the_chain_verifiable(
    open_store: Callable[..., AuditStore], clock: Clock
) -> None:
    store = open_store(max_age=3600.0)
    store.append([event(time=T0 + 60 * i) for i in range(120)])  # two hours, one a minute
    clock.now = T0 + 2 * 3600  # the first hour is past max_age
    assert store.prune() == (60, 0)
    assert store.count() == 60
    assert min(r["time"] for r in store.query(limit=1000)) == T0 + 3600
    assert store.verify() == (True, 60, None)
    assert store.prune() == (0, 0)  # nothing more is old
    store.append([event(time=clock.now)])
    assert store.query(limit=1)[0]["id"] == 121
    assert store.verify() == (True, 61, None)
    assert store.status()["pruned"] == 60


def test_prune_by_age_removes_only_a_head_when_the_clock_stepped_back(
    open_store: Callable[..., AuditStore],
) -> None:
    store = open_store(max_age=100.0)
    # The third record was stamped before the second (the wall clock was set back).
    store.append([event(time=T0 - 500), event(time=T0), event(time=T0 - 400)])
    assert store.prune(T0) == (1, 0)  # record 3 is old but waits: no hole in the chain
    assert [r["id"] for r in store.query()] == [3, 2]
    assert store.verify() == (True, 2, None)


def test_pruning_everything_then_appending_continues_the_ids_and_chain(
    open_store: Callable[..., AuditStore],
) -> None:
    store = open_store(max_age=10.0)
    store.append([event(time=T0 + i) for i in range(5)])
    assert store.prune(T0 + 1000) == (5, 0)
    assert store.count() == 0
    assert store.verify() == (True, 0, None)
    store.append([event(time=T0 + 1000)])
    assert [r["id"] for r in store.query()] == [6]
    assert store.verify() == (True, 1, None)


def test_prune_by_size_removes_the_oldest_first(
    open_store: Callable[..., AuditStore], tmp_path: Path
) -> None:
    store = open_store(max_bytes=65_536)
    for batch in range(10):
        store.append([event(time=T0 + batch * 100 + i, detail="x" * 300) for i in range(100)])
    before = store.count()
    by_age, by_size = store.prune(T0 + 1000)
    assert by_age == 0
    assert by_size > 0
    assert store.count() == before - by_size
    ids = sorted(r["id"] for r in store.query(limit=10_000))
    assert ids == list(range(1000 - len(ids) + 1, 1001))  # the newest are kept
    conn = _sqlite.connect(tmp_path / "audit.db", readonly=True)
    try:
        assert used_bytes(conn) <= 65_536
    finally:
        conn.close()
    assert store.verify() == (True, len(ids), None)


@pytest.mark.parametrize(
    ("tamper", "first_bad"),
    [
        ("UPDATE records SET detail = 'nothing to see' WHERE id = 5", 5),
        ("UPDATE records SET count = 1 WHERE id = 7", 7),
        ("UPDATE records SET time = time - 3600 WHERE id = 1", 1),
        ("DELETE FROM records WHERE id = 4", 4),
        ("DELETE FROM records WHERE id = 10", 10),  # the tail: sqlite_sequence remembers it
        ("UPDATE records SET principal = 'mallory', hash = 'x' WHERE id = 3", 3),
    ],
)
def test_verify_finds_the_first_altered_or_missing_record(
    open_store: Callable[..., AuditStore],
    raw: Callable[[], sqlite3.Connection],
    tamper: str,
    first_bad: int,
) -> None:
    store = open_store()
    store.append([event(time=T0 + i, count=3) for i in range(10)])
    conn = raw()
    # Someone with write access to the file can drop the triggers; the chain still tells.
    conn.execute("DROP TRIGGER records_no_update")
    conn.execute("DROP TRIGGER records_no_delete")
    conn.execute(tamper)
    ok, checked, bad = store.verify()
    assert (ok, bad) == (False, first_bad)
    assert checked <= first_bad


def test_a_rehashed_record_breaks_the_next_link(
    open_store: Callable[..., AuditStore], raw: Callable[[], sqlite3.Connection]
) -> None:
    store = open_store()
    store.append([event(time=T0 + i) for i in range(5)])
    record = store.query(before_id=3, limit=1)[0]
    assert record["id"] == 2
    forged = {**record, "result": "ok", "principal": "mallory"}
    previous = store.query(before_id=2, limit=1)[0]["hash"]
    conn = raw()
    conn.execute("DROP TRIGGER records_no_update")
    conn.execute(
        "UPDATE records SET principal = 'mallory', hash = ? WHERE id = 2",
        (chain_hash(previous, forged),),
    )
    assert store.verify() == (False, 3, 3)


def test_a_read_only_connection_reads_while_the_writer_appends(
    open_store: Callable[..., AuditStore], tmp_path: Path
) -> None:
    store = open_store()
    store.append([event(time=T0)])
    reader = _sqlite.connect(tmp_path / "audit.db", readonly=True)
    try:
        assert [r["id"] for r in query_records(reader)] == [1]
        store.append([event(time=T0 + 1)])
        assert [r["id"] for r in query_records(reader, limit=1)] == [2]
        assert verify_chain(reader) == (True, 2, None)
        with pytest.raises(sqlite3.OperationalError):
            reader.execute("INSERT INTO meta (key, value) VALUES ('x', 1)")
    finally:
        reader.close()
