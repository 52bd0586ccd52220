"""The store: one SQLite file, one writer thread with group commit, reads on the owner's thread.

Theory of operation. Two connections, each owned by one thread. The *writer* connection belongs
to a thread of the store's own: :meth:`Store.submit` queues a :class:`Write` and returns a
``concurrent.futures.Future`` (:meth:`Store.apply` is the asyncio form). The writer takes every
write queued since its last commit (up to ``group_commit_max``), opens one ``BEGIN IMMEDIATE``
transaction, applies each write inside a savepoint of its own (a refused write rolls back to it
and fails alone), commits once — WAL with ``synchronous=FULL``, so the commit returns when the
WAL is on disk — and only then calls ``on_commit`` with the group's change events (in revision
order) and resolves the futures (see ``_jobs``: an event loop is woken once per group, not once
per write). One fsync thus acknowledges every write that queued up while the previous one ran:
that is what lifts pipelined writes far above one-at-a-time ones.

If the commit fails (disk full, I/O error) the transaction is rolled back and every write of the
group fails with ``state.io-error``: nothing of it was applied, nothing is acknowledged, and the
next group tries again — so the store recovers by itself when space returns.

The *reader* connection belongs to the thread that opened the store (the service's event loop):
point reads take microseconds, cheaper than a hop to another thread. It sees only committed data
(each read is its own transaction; multi-statement reads take one ``BEGIN`` for consistency).

A lock file (``<database>.lock``, ``flock``) keeps a second store process off the same database:
the writer's numbering of revisions assumes it is the only writer.

Integrity (``_integrity``): the store opens only a database that passes ``quick_check`` and
agrees with its generation marker (``<database>.generation``), which the writer advances after
each commit, before acknowledging its writes. When SQLite says the database is damaged while the
store serves (``SQLITE_CORRUPT``, ``SQLITE_NOTADB``), from a read or from the writer, the request
fails with ``state.damaged`` and ``on_damaged`` is called once: the service stops serving.

Metrics (``_metrics``): each successful group commit is observed once, its duration and its
size (the writes it acknowledged); an open store's files count in the database size.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plantd._sqlite import rollback, transaction
from plantd.service import Json
from plantd.state import _metrics, _reads
from plantd.state._errors import StateDamaged, StateError
from plantd.state._integrity import Marker, is_corruption, open_verified
from plantd.state._jobs import Job, Outcomes
from plantd.state._model import ChangeEvent, Entry, Snapshot
from plantd.state._schema import connect
from plantd.state._writes import Transaction, Write

__all__ = ["OnCommit", "OnDamaged", "Store", "StoreStats", "hold_lock"]

log = logging.getLogger(__name__)

OnCommit = Callable[[list[ChangeEvent]], None]
OnDamaged = Callable[[StateDamaged], None]
_PRUNE_EVERY = 1000  # recorded request ids between two prunings


@dataclass(slots=True)
class StoreStats:
    """Counters the writer keeps (read them from any thread; they are plain ints)."""

    groups: int = 0  # transactions committed
    writes: int = 0  # writes acknowledged
    refused: int = 0  # writes refused (StateError)
    failed_groups: int = 0  # transactions that could not be committed
    largest_group: int = 0
    last_error: str | None = None  # why the last failed commit failed; None once one succeeds
    last_error_at: float | None = None


_STOP = object()


class Store:
    """A durable scoped key/value store in ``path``. Open it on the thread that will read.

    Use as a context manager, or call :meth:`close`: pending writes are committed first.
    """

    def __init__(
        self,
        path: Path,
        *,
        group_commit_max: int = 256,
        idempotency_window: int = 100_000,
        idempotency_ttl: float = 86_400.0,
        on_commit: OnCommit | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.stats = StoreStats()
        self._group_max = group_commit_max
        self._window = idempotency_window
        self._ttl = idempotency_ttl
        self.on_commit = on_commit  # called on the writer thread after each commit
        # Called once, on the thread that found it (reader or writer), when SQLite says the
        # database is damaged; ``damaged`` keeps it (requests then fail with state.damaged).
        self.on_damaged: OnDamaged | None = None
        self.damaged: StateDamaged | None = None
        self._damage_lock = threading.Lock()
        self._marker = Marker(self.path)
        self._database_id = 0
        self._marker_failing = False
        self._clock = clock
        self._queue: queue.SimpleQueue[Job | object] = queue.SimpleQueue()
        self._closed = False
        self._since_prune = 0
        self.migrations_applied: list[str] = []  # by this opening (the writer sets it)
        self._lock_fd = _lock(self.path)
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._writer: sqlite3.Connection | None = None
        self._thread = threading.Thread(target=self._run, name="plantd-state-writer", daemon=True)
        self._thread.start()
        self._started.wait()
        self._raise_start_error()
        try:
            self._reader = connect(self.path, readonly=True)
        except sqlite3.Error as exc:
            self.close()
            raise StateError("state.unavailable", f"cannot open {self.path}: {exc}") from exc
        _metrics.track(self)

    def _raise_start_error(self) -> None:
        error = self._start_error  # set by the writer thread before ``_started``
        if error is not None:
            self._thread.join()
            os.close(self._lock_fd)
            if isinstance(error, StateDamaged):
                raise error
            raise StateError("state.unavailable", f"cannot open {self.path}: {error}") from error

    # -- writes (any thread) ----------------------------------------------------------------

    def submit(self, write: Write) -> concurrent.futures.Future[Json]:
        """Queue ``write``; the future resolves after its commit, or fails with StateError."""
        job = Job(write)
        assert job.future is not None
        self._enqueue(job)
        return job.future

    async def apply(self, write: Write) -> Json:
        """:meth:`submit` for asyncio code: the result once it is on disk. The writer wakes the
        event loop once per commit group, however many of its writes the loop waits for."""
        job = Job(write, asyncio.get_running_loop())
        assert job.loop_future is not None
        self._enqueue(job)
        return await job.loop_future

    def _enqueue(self, job: Job) -> None:
        if self._closed:
            outcomes = Outcomes()
            outcomes.fail(job, StateError("state.unavailable", "the store is closed"))
            outcomes.deliver()
        else:
            self._queue.put(job)

    def write(self, write: Write, timeout: float | None = None) -> Json:
        """Blocking :meth:`submit`: the result, once it is on disk."""
        return self.submit(write).result(timeout)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    # -- reads (the opening thread) ---------------------------------------------------------

    def get(self, scope: str, key: str) -> Entry:
        with self._reading():
            return _reads.get(self._reader, scope, key)

    def list_keys(
        self,
        scope: str,
        *,
        prefix: str = "",
        after: str | None = None,
        limit: int = 100,
        values: bool = False,
        max_bytes: int = 512 * 1024,
    ) -> dict[str, Json]:
        with self._reading():
            return _reads.list_keys(
                self._reader,
                scope,
                prefix=prefix,
                after=after,
                limit=limit,
                values=values,
                max_bytes=max_bytes,
            )

    def scopes(self) -> dict[str, Json]:
        with self._reading():
            return _reads.scopes(self._reader)

    def snapshot(self, scope: str | None = None) -> Snapshot:
        with self._reading():
            return _reads.snapshot(self._reader, scope)

    def revision(self) -> int:
        with self._reading():
            return _reads.revision(self._reader)

    def totals(self) -> tuple[int, int, int]:
        """(global revision, number of scopes, number of keys)."""
        with self._reading():
            return _reads.totals(self._reader)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Turn SQLite's word that the database is damaged into ``state.damaged`` (and tell
        ``on_damaged``); other errors pass as they are."""
        if self.damaged is not None:
            raise _damaged_error(self.damaged)
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise
            with contextlib.suppress(sqlite3.Error):
                rollback(self._reader)
            raise _damaged_error(self._report_damage(exc)) from None

    def _report_damage(self, exc: sqlite3.DatabaseError) -> StateDamaged:
        """Record the first damage found and tell ``on_damaged`` (once)."""
        with self._damage_lock:
            if self.damaged is not None:
                return self.damaged
            self.damaged = StateDamaged(
                self.path, f"the database is damaged: SQLite said {exc} while serving"
            )
        on_damaged = self.on_damaged
        if on_damaged is not None:
            on_damaged(self.damaged)
        return self.damaged

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Commit what is queued, stop the writer, close both connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        _metrics.untrack(self)
        self._queue.put(_STOP)
        self._thread.join()
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.close()
        os.close(self._lock_fd)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            opened = open_verified(self.path, self._marker)
            self._writer = opened.conn
            self.migrations_applied = opened.migrations_applied
            self._database_id = opened.database_id
        except (StateDamaged, sqlite3.Error, OSError) as exc:
            self._start_error = exc
            if self._writer is not None:
                self._writer.close()
            self._started.set()
            return
        self._started.set()
        conn = self._writer
        try:
            while True:
                jobs, stop = self._take()
                if jobs:
                    self._commit_group(conn, jobs)
                if stop:
                    break
        finally:
            conn.close()
            self._marker.close()
            self._fail_leftovers()

    def _take(self) -> tuple[list[Job], bool]:
        """The writes queued since the last commit (blocks for the first)."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        assert isinstance(first, Job)
        jobs = [first]
        while len(jobs) < self._group_max:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return jobs, True
            assert isinstance(item, Job)
            jobs.append(item)
        return jobs, False

    def _commit_group(self, conn: sqlite3.Connection, jobs: Sequence[Job]) -> None:
        outcomes = Outcomes()
        try:
            self._commit(conn, jobs, outcomes)
        finally:
            outcomes.deliver()

    def _commit(self, conn: sqlite3.Connection, jobs: Sequence[Job], outcomes: Outcomes) -> None:
        done: list[tuple[Job, Json, list[ChangeEvent]]] = []
        started = time.monotonic()
        try:
            with transaction(conn):
                start = _reads.revision(conn)
                txn = Transaction(conn, start, self._clock())
                for job in jobs:
                    if not job.start():
                        continue  # its caller gave up before it was applied
                    outcome = self._apply_one(conn, txn, job, outcomes)
                    if outcome is not None:
                        done.append((job, *outcome))
                if txn.revision != start:
                    conn.execute(
                        "UPDATE meta SET value = ? WHERE name = 'revision'", (txn.revision,)
                    )
                self._since_prune += txn.recorded
                if self._since_prune >= _PRUNE_EVERY:
                    self._prune(conn)
            # Committed: on disk (synchronous=FULL) before the marker moves and anyone is told.
            if txn.revision != start:
                self._advance_marker(txn.revision)
            elapsed = time.monotonic() - started
        except sqlite3.Error as exc:
            self._group_failed(conn, jobs, exc, outcomes)
            return
        except Exception as exc:
            # Supervisor edge: a bug must not kill the writer; the group fails, the store lives.
            log.exception("state writer: a group of %d write(s) failed", len(jobs))
            self._group_failed(conn, jobs, exc, outcomes)
            return
        stats = self.stats
        stats.groups += 1
        stats.writes += len(done)
        stats.largest_group = max(stats.largest_group, len(done))
        _metrics.COMMIT_SECONDS.observe(elapsed)
        _metrics.GROUP_COMMIT_SIZE.observe(len(done))
        if stats.last_error is not None:
            log.info("state writer: commits succeed again (after: %s)", stats.last_error)
            stats.last_error = stats.last_error_at = None
        events = [event for _, _, group_events in done for event in group_events]
        on_commit = self.on_commit
        if events and on_commit is not None:
            try:
                on_commit(events)
            except Exception:
                log.exception("state writer: on_commit failed (the writes are committed)")
        for job, result, _ in done:
            outcomes.ok(job, result)

    def _apply_one(
        self, conn: sqlite3.Connection, txn: Transaction, job: Job, outcomes: Outcomes
    ) -> tuple[Json, list[ChangeEvent]] | None:
        """Apply one write in a savepoint; a refused one is rolled back and fails alone."""
        mark, recorded = txn.revision, txn.recorded
        conn.execute("SAVEPOINT write")
        try:
            outcome = txn.apply(job.write)
        except (StateError, sqlite3.Error) as exc:
            if not conn.in_transaction or is_corruption(exc):
                raise  # the error ended the whole transaction, or dooms it: the group fails
            conn.execute("ROLLBACK TO write")
            conn.execute("RELEASE write")
            txn.revision, txn.recorded = mark, recorded
            if isinstance(exc, sqlite3.Error):
                exc = _io_error(exc)
            self.stats.refused += 1
            outcomes.fail(job, exc)
            return None
        conn.execute("RELEASE write")
        return outcome

    def _advance_marker(self, revision: int) -> None:
        """Record the commit in the generation marker before its writes are acknowledged. If
        that fails the writes are still committed: they are acknowledged, and the marker lags
        (a later start can then miss a loss, but never refuse a good database)."""
        try:
            self._marker.advance(self._database_id, revision)
        except OSError as exc:
            if not self._marker_failing:
                log.error("state writer: cannot update %s: %s", self._marker.path, exc)
            self._marker_failing = True
            return
        if self._marker_failing:
            log.info("state writer: %s is updated again", self._marker.path)
            self._marker_failing = False

    def _prune(self, conn: sqlite3.Connection) -> None:
        """Forget request ids beyond the window and older than the ttl (both must hold)."""
        self._since_prune = 0
        conn.execute(
            "DELETE FROM requests WHERE seq <= (SELECT max(seq) FROM requests) - ? AND created < ?",
            (self._window, self._clock() - self._ttl),
        )

    def _group_failed(
        self,
        conn: sqlite3.Connection,
        jobs: Sequence[Job],
        exc: BaseException,
        outcomes: Outcomes,
    ) -> None:
        with contextlib.suppress(sqlite3.Error):
            rollback(conn)  # ``transaction`` did, unless its ROLLBACK failed: try again
        error: BaseException
        if isinstance(exc, sqlite3.DatabaseError) and is_corruption(exc):
            error = _damaged_error(self._report_damage(exc))
        elif isinstance(exc, sqlite3.Error):
            error = _io_error(exc)
        else:
            error = exc
        if self.stats.last_error is None:
            log.error("state writer: commit failed, %d write(s) not applied: %s", len(jobs), error)
        self.stats.failed_groups += 1
        self.stats.last_error = str(error)
        self.stats.last_error_at = self._clock()
        for job in jobs:
            if not outcomes.decided(job):
                outcomes.fail(job, error)

    def _fail_leftovers(self) -> None:
        outcomes = Outcomes()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Job) and item.start():
                outcomes.fail(item, StateError("state.unavailable", "the store is closed"))
        outcomes.deliver()


def _damaged_error(damaged: StateDamaged) -> StateError:
    return StateError("state.damaged", f"{damaged.path}: {damaged.problem}; the service stops")


def _io_error(exc: sqlite3.Error) -> StateError:
    name: Any = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    return StateError(
        "state.io-error", f"the write was not applied: the database said {name}: {exc}"
    )


@contextlib.contextmanager
def hold_lock(path: Path) -> Iterator[None]:
    """Hold the store's lock on ``path`` (StateError if a store holds it) for maintenance."""
    fd = _lock(path)
    try:
        yield
    finally:
        os.close(fd)


def _lock(path: Path) -> int:
    """Hold ``<path>.lock`` for the life of the store; refuse if another process holds it."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StateError("state.unavailable", f"cannot open {path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateError(
            "state.unavailable",
            f"{lock_path} is held by another process: is plantd-state already running on {path}?",
        ) from None
    return fd
