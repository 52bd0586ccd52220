"""The store on its own: no sockets, the object and its SQLite file."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from plantd.state import (
    ChangeEvent,
    CreateScope,
    Delete,
    DeleteScope,
    Set,
    StateDamaged,
    StateError,
    Store,
    Write,
)
from plantd.state._schema import MIGRATIONS

SCOPE = "org.plantd.module.pump1"


def put(scope: str, key: str, value: Any, **kw: Any) -> Set:
    return Set(scope, key, value, json.dumps(value, separators=(",", ":")), **kw)


def set_write(key: str, value: Any, *, request_id: str | None = None, **kw: Any) -> Write:
    return Write("set", (put(SCOPE, key, value, **kw),), request_id, f"fp-{key}-{value}")


class Recorder:
    def __init__(self) -> None:
        self.events: list[ChangeEvent] = []
        self.groups = 0

    def __call__(self, events: list[ChangeEvent]) -> None:
        self.events.extend(events)
        self.groups += 1


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def store(tmp_path: Path, recorder: Recorder) -> Iterator[Store]:
    with Store(tmp_path / "state.db", on_commit=recorder) as the_store:
        the_store.write(Write("create-scope", (CreateScope(SCOPE),)))
        yield the_store


def refusal(store: Store, write: Write) -> StateError:
    with pytest.raises(StateError) as caught:
        store.write(write)
    return caught.value


def test_a_fresh_database_gets_every_migration_once(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "state.db"  # the directory is created
    with Store(path) as first:
        assert first.migrations_applied == ["0001_initial", "0002_database_id"]
        assert first.revision() == 0
    with Store(path) as again:
        assert again.migrations_applied == []
    db = Database(path)
    assert [m.name for m in MIGRATIONS.applied(db)] == ["0001_initial", "0002_database_id"]
    assert {"meta", "scopes", "scope_revisions", "entries", "requests"} <= set(db.table_names())
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_set_get_and_revisions(store: Store, recorder: Recorder) -> None:
    assert store.write(set_write("speed", 12.5)) == {
        "scope": SCOPE,
        "key": "speed",
        "revision": 2,
        "version": 1,
    }
    assert store.write(set_write("speed", {"rpm": 900}))["version"] == 2
    entry = store.get(SCOPE, "speed")
    assert (entry.value, entry.revision, entry.version) == ({"rpm": 900}, 3, 2)
    assert store.revision() == 3
    assert [(e.op, e.key, e.revision, e.prev) for e in recorder.events] == [
        ("create-scope", "", 1, 0),
        ("set", "speed", 2, 1),
        ("set", "speed", 3, 2),
    ]


def test_reads_name_what_is_missing(store: Store) -> None:
    with pytest.raises(StateError, match=r"state.unknown-key: scope '.*pump1' has no key 'x'"):
        store.get(SCOPE, "x")
    with pytest.raises(StateError, match=r"state.unknown-scope: no scope 'nope'"):
        store.get("nope", "x")
    with pytest.raises(StateError, match="unknown-scope"):
        store.list_keys("nope")


def test_writes_to_an_unknown_scope_are_refused_and_take_no_revision(store: Store) -> None:
    error = refusal(store, Write("set", (put("nope", "k", 1),)))
    assert error.code == "state.unknown-scope"
    assert "create it with create-scope" in error.message
    assert store.revision() == 1
    assert store.stats.refused == 1


def test_compare_and_set(store: Store) -> None:
    assert store.write(set_write("k", 1, if_revision=0))["revision"] == 2
    error = refusal(store, set_write("k", 2, if_revision=0))
    assert error.code == "state.conflict"
    assert error.message == (
        f"key 'k' in scope '{SCOPE}' already exists (revision 2); if_revision 0 means it must not"
    )
    error = refusal(store, set_write("k", 2, if_revision=7))
    assert (
        error.message == f"key 'k' in scope '{SCOPE}' has revision 2, not the expected revision 7"
    )
    assert store.write(set_write("k", 3, if_revision=2))["revision"] == 3
    error = refusal(store, set_write("new", 1, if_revision=5))
    assert "does not exist, not the expected revision 5" in error.message
    error = refusal(store, Write("delete", (Delete(SCOPE, "k", if_revision=2),)))
    assert error.code == "state.conflict"
    assert store.write(Write("delete", (Delete(SCOPE, "k", if_revision=3),)))["revision"] == 4


def test_a_batch_is_all_or_nothing(store: Store, recorder: Recorder) -> None:
    store.write(set_write("a", 1))
    ops = (put(SCOPE, "a", 2), put(SCOPE, "b", 2), Delete(SCOPE, "missing"))
    error = refusal(store, Write("batch", ops))
    assert error.code == "state.unknown-key"
    assert error.message.startswith("ops[2]: ")
    assert store.get(SCOPE, "a").value == 1
    with pytest.raises(StateError, match="unknown-key"):
        store.get(SCOPE, "b")
    before = len(recorder.events)
    result = store.write(
        Write("batch", (put(SCOPE, "a", 3), put(SCOPE, "b", 3), Delete(SCOPE, "a")))
    )
    assert result["revision"] == 5
    assert [r["revision"] for r in result["results"]] == [3, 4, 5]
    assert [(e.op, e.key, e.prev) for e in recorder.events[before:]] == [
        ("set", "a", 2),
        ("set", "b", 3),
        ("delete", "a", 4),
    ]


def test_scopes_create_delete_and_the_prev_chain(store: Store, recorder: Recorder) -> None:
    assert store.write(Write("create-scope", (CreateScope(SCOPE),))) == {
        "scope": SCOPE,
        "created": False,
        "revision": 1,
    }
    store.write(set_write("a", 1))
    store.write(Write("create-scope", (CreateScope("other"),)))
    store.write(set_write("b", 1))
    assert store.write(Write("delete-scope", (DeleteScope(SCOPE),))) == {
        "scope": SCOPE,
        "revision": 5,
        "keys": 2,
    }
    with pytest.raises(StateError, match="unknown-scope"):
        store.get(SCOPE, "a")
    assert store.write(Write("create-scope", (CreateScope(SCOPE),)))["revision"] == 6
    chain = [(e.op, e.revision, e.prev) for e in recorder.events if e.scope == SCOPE]
    # The chain of a scope goes on across its deletion and re-creation.
    assert chain == [
        ("create-scope", 1, 0),
        ("set", 2, 1),
        ("set", 4, 2),
        ("delete-scope", 5, 4),
        ("create-scope", 6, 5),
    ]
    listed = store.scopes()
    assert listed["revision"] == 6
    assert [(s["scope"], s["keys"], s["revision"]) for s in listed["scopes"]] == [
        (SCOPE, 0, 6),
        ("other", 0, 3),
    ]
    missing = store.snapshot("never")
    assert (missing.scopes["never"].exists, missing.scopes["never"].revision) == (False, 0)
    error = refusal(store, Write("delete-scope", (DeleteScope("never"),)))
    assert error.code == "state.unknown-scope"


def test_list_pages_by_key_with_a_prefix(store: Store) -> None:
    for key in ["a1", "a2", "a3", "b1", "a~", "a"]:
        store.write(set_write(key, key))
    page = store.list_keys(SCOPE, prefix="a", limit=2)
    assert [k["key"] for k in page["keys"]] == ["a", "a1"]
    assert page["next"] == "a1"
    page = store.list_keys(SCOPE, prefix="a", after=page["next"], limit=2)
    assert [k["key"] for k in page["keys"]] == ["a2", "a3"]
    page = store.list_keys(SCOPE, prefix="a", after=page["next"], limit=2)
    assert [k["key"] for k in page["keys"]] == ["a~"]
    assert page["next"] is None
    assert page["revision"] == 7
    with_values = store.list_keys(SCOPE, values=True, max_bytes=8)  # '"a"' + '"a1"' = 7 bytes
    assert [k["value"] for k in with_values["keys"]] == ["a", "a1"]
    assert with_values["next"] == "a1"  # cut by size, not by the limit


def test_snapshot_is_consistent_and_canonical(store: Store) -> None:
    store.write(set_write("x", [1, 2]))
    store.write(Write("create-scope", (CreateScope("b.c"),)))
    everything = store.snapshot()
    assert everything.revision == 3
    assert set(everything.scopes) == {SCOPE, "b.c"}
    assert everything.scopes[SCOPE].entries["x"].value == [1, 2]
    assert everything.keys() == 1
    assert everything.canonical() == store.snapshot().canonical()
    one = store.snapshot(SCOPE)
    assert list(one.scopes) == [SCOPE]
    assert one.canonical().startswith(b'{"org.plantd.module.pump1":{"exists":true,"keys":{"x"')


def test_a_retried_request_id_gets_the_first_answer(store: Store, tmp_path: Path) -> None:
    first = store.write(set_write("k", 1, request_id="req-1"))
    again = store.write(set_write("k", 1, request_id="req-1"))
    assert again == first
    assert store.revision() == 2  # applied once
    assert store.get(SCOPE, "k").version == 1
    other = Write("set", (put(SCOPE, "k", 2),), "req-1", "another-fingerprint")
    error = refusal(store, other)
    assert error.code == "state.request-id-reused"
    # A failed write records nothing: a retry with the same id is tried afresh.
    error = refusal(store, Write("set", (put("nope", "k", 1),), "req-2", "fp"))
    assert error.code == "state.unknown-scope"
    assert store.write(Write("set", (put(SCOPE, "k2", 1),), "req-2", "fp"))["revision"] == 3


def test_request_ids_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store(path) as store:
        store.write(Write("create-scope", (CreateScope(SCOPE),)))
        first = store.write(set_write("k", 1, request_id="r"))
    with Store(path) as store:
        assert store.write(set_write("k", 1, request_id="r")) == first
        assert store.revision() == 2


def test_old_request_ids_are_forgotten_beyond_window_and_ttl(tmp_path: Path) -> None:
    now = [1000.0]
    with Store(
        tmp_path / "s.db", idempotency_window=10, idempotency_ttl=60, clock=lambda: now[0]
    ) as store:
        store.write(Write("create-scope", (CreateScope(SCOPE),)))
        old = [store.submit(set_write("k", i, request_id=f"old-{i}")) for i in range(1000)]
        concurrent.futures.wait(old)
        now[0] += 61
        new = [store.submit(set_write("k", i, request_id=f"new-{i}")) for i in range(1000)]
        concurrent.futures.wait(new)
    db = sqlite3.connect(tmp_path / "s.db")
    kept = {row[0] for row in db.execute("SELECT request_id FROM requests")}
    db.close()
    assert not any(r.startswith("old-") for r in kept)  # old and outside the window
    assert sum(r.startswith("new-") for r in kept) == 1000  # young: kept whatever the window


def test_concurrent_writes_share_commits(store: Store, recorder: Recorder) -> None:
    barrier = threading.Barrier(8)

    def writer(lane: int) -> list[Any]:
        barrier.wait()
        futures = [store.submit(set_write(f"lane{lane}", n)) for n in range(200)]
        return [f.result(10) for f in futures]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(writer, range(8)))
    revisions = sorted(r["revision"] for lane in results for r in lane)
    assert revisions == list(range(2, 2 + 1600))  # every write numbered once, no holes
    assert store.stats.writes == 1601
    assert store.stats.groups < 1601  # group commit happened
    assert store.stats.largest_group > 1
    assert [e.revision for e in recorder.events] == list(range(1, 1602))  # published in order
    for lane in range(8):
        assert store.get(SCOPE, f"lane{lane}").value == 199  # each lane's last write won


def test_group_commit_respects_its_maximum(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db", group_commit_max=4) as store:
        store.write(Write("create-scope", (CreateScope(SCOPE),)))
        futures = [store.submit(set_write("k", n)) for n in range(100)]
        concurrent.futures.wait(futures)
        assert store.stats.largest_group <= 4


def test_a_refused_write_does_not_spoil_its_group(store: Store) -> None:
    futures = [
        store.submit(set_write("ok1", 1)),
        store.submit(Write("set", (put("nope", "k", 1),))),
        store.submit(set_write("ok2", 2)),
    ]
    assert futures[0].result()["revision"] == 2
    assert isinstance(futures[1].exception(), StateError)
    assert futures[2].result()["revision"] == 3


def test_close_commits_what_is_queued_then_refuses(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.submit(Write("create-scope", (CreateScope(SCOPE),)))
    futures = [store.submit(set_write("k", n)) for n in range(50)]
    store.close()
    assert all(f.result()["revision"] for f in futures)
    late = store.submit(set_write("k", 99))
    error = late.exception()
    assert isinstance(error, StateError)
    assert error.code == "state.unavailable"
    store.close()  # idempotent


def test_a_second_store_on_the_same_file_is_refused(store: Store) -> None:
    with pytest.raises(StateError, match="held by another process"):
        Store(store.path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "state.db"
    bad.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StateDamaged, match=r"state.db: the database is damaged"):
        Store(bad)
    # the lock was released: a good file in its place opens
    bad.unlink()
    Store(bad).close()


def test_on_commit_failures_do_not_lose_writes(tmp_path: Path) -> None:
    def broken(events: list[ChangeEvent]) -> None:
        raise RuntimeError("subscriber bug")

    with Store(tmp_path / "s.db", on_commit=broken) as store:
        assert store.write(Write("create-scope", (CreateScope(SCOPE),)))["created"] is True
        assert store.revision() == 1


def test_reads_belong_to_the_opening_thread(store: Store) -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        error = pool.submit(store.revision).exception()
    assert isinstance(error, sqlite3.ProgrammingError)


async def test_asyncio_writers_are_woken_once_per_group(tmp_path: Path) -> None:
    """``Store.apply`` resolves a commit group's futures in one callback on the loop."""
    with Store(tmp_path / "s.db") as store:
        await store.apply(Write("create-scope", (CreateScope(SCOPE),)))
        results = await asyncio.gather(
            *(store.apply(set_write(f"k{n}", n)) for n in range(200)),
            store.apply(Write("set", (put("nope", "k", 1),))),
            return_exceptions=True,
        )
        assert [r["revision"] for r in results[:200]] == list(range(2, 202))
        assert isinstance(results[200], StateError)
        assert store.stats.groups < 200
    with pytest.raises(StateError, match=r"state\.unavailable: the store is closed"):
        await store.apply(set_write("late", 1))
