"""``plantd._sqlite.transaction``: the one way every store begins, commits and rolls back."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from plantd._sqlite import connect, rollback, transaction


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[sqlite3.Connection, sqlite3.Connection]]:
    """A writer connection and a second one on the same file (the way the stores open them)."""
    path = tmp_path / "t.sqlite"
    writer = connect(path)
    writer.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    other = connect(path)
    other.execute("PRAGMA busy_timeout = 0")  # a lock held elsewhere fails at once
    yield writer, other
    other.close()
    writer.close()


def in_transaction(conn: sqlite3.Connection) -> bool:
    """Asked afresh each time (mypy would otherwise keep what an earlier assert narrowed)."""
    return conn.in_transaction


def rows(conn: sqlite3.Connection) -> list[int]:
    return [x for (x,) in conn.execute("SELECT x FROM t ORDER BY x")]


def test_commits_when_the_body_ends(db: tuple[sqlite3.Connection, sqlite3.Connection]) -> None:
    writer, other = db
    with transaction(writer):
        writer.execute("INSERT INTO t VALUES (1)")
        writer.execute("INSERT INTO t VALUES (2)")
        assert in_transaction(writer)
        assert rows(other) == []  # not visible before the commit
    assert not in_transaction(writer)
    assert rows(other) == [1, 2]


@pytest.mark.parametrize(
    "error", [ValueError("bad"), sqlite3.OperationalError("io"), KeyboardInterrupt()]
)
def test_rolls_back_on_any_exception_and_reraises_it(
    db: tuple[sqlite3.Connection, sqlite3.Connection], error: BaseException
) -> None:
    writer, other = db

    def insert_then_fail() -> None:
        with transaction(writer):
            writer.execute("INSERT INTO t VALUES (1)")
            raise error

    with pytest.raises(type(error)) as raised:
        insert_then_fail()
    assert raised.value is error
    assert not in_transaction(writer)
    assert rows(writer) == rows(other) == []
    with transaction(writer):  # the connection is usable again
        writer.execute("INSERT INTO t VALUES (3)")
    assert rows(other) == [3]


def test_rolls_back_when_a_task_is_cancelled_inside(
    db: tuple[sqlite3.Connection, sqlite3.Connection],
) -> None:
    writer, other = db
    entered = asyncio.Event()

    async def body() -> None:
        with transaction(writer):
            writer.execute("INSERT INTO t VALUES (1)")
            entered.set()
            await asyncio.Future()  # never done: only the cancel ends it

    async def main() -> None:
        task = asyncio.create_task(body())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert not in_transaction(writer)
    assert rows(other) == []


def test_a_failed_commit_rolls_back_and_raises(
    db: tuple[sqlite3.Connection, sqlite3.Connection],
) -> None:
    writer, other = db
    writer.execute("PRAGMA foreign_keys = ON")
    writer.execute(
        "CREATE TABLE child (parent INTEGER REFERENCES t (x) DEFERRABLE INITIALLY DEFERRED)"
    )

    def insert_an_orphan() -> None:
        with transaction(writer):
            writer.execute("INSERT INTO t VALUES (1)")
            writer.execute("INSERT INTO child VALUES (99)")  # checked only at COMMIT

    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        insert_an_orphan()
    assert not in_transaction(writer)  # SQLite keeps it open after such a COMMIT: rolled back
    assert rows(other) == []


def test_immediate_takes_the_write_lock_at_once(
    db: tuple[sqlite3.Connection, sqlite3.Connection],
) -> None:
    writer, other = db
    with transaction(writer):
        with pytest.raises(sqlite3.OperationalError, match="locked"), transaction(other):
            pass
        assert not in_transaction(other)
    with transaction(writer, immediate=False):  # deferred: a read snapshot, no lock yet
        rows(writer)
        with transaction(other):
            other.execute("INSERT INTO t VALUES (5)")
        assert rows(writer) == []  # the snapshot does not move
    assert rows(writer) == [5]


def test_nesting_is_refused_clearly_and_leaves_the_outer_transaction_alone(
    db: tuple[sqlite3.Connection, sqlite3.Connection],
) -> None:
    writer, other = db
    with transaction(writer):
        writer.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(sqlite3.ProgrammingError, match="do not nest"), transaction(writer):
            pytest.fail("the nested body must not run")
        assert in_transaction(writer)
        writer.execute("INSERT INTO t VALUES (2)")
    assert rows(other) == [1, 2]


def test_rollback_is_a_no_op_outside_a_transaction(
    db: tuple[sqlite3.Connection, sqlite3.Connection],
) -> None:
    writer, _ = db
    rollback(writer)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")
    rollback(writer)
    assert not in_transaction(writer)
    assert rows(writer) == []
