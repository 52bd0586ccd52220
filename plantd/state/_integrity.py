"""Is the database on disk the one whose writes the service acknowledged? Checked at every start.

Theory of operation. SQLite cannot tell a database that lost acknowledged writes from a new one:
a 0-byte or deleted ``state.db`` opens as an empty database, and a deleted or damaged WAL is
"recovered" by dropping every frame from the first one it cannot verify, acknowledged commits
with them. So the store keeps a *marker* beside the database, ``<database>.generation``, naming
the database's identity (a random id written into its ``meta`` table when it was created) and
the last revision whose commit returned. The writer advances it after each commit that changed
the revision and before any write of that commit is acknowledged: the marker never names a
revision that is not on disk, and every acknowledged revision is at or below it.

At start (:func:`open_verified`), before SQLite touches the file:

- no marker: a new installation (or one from before markers): the database is created or
  adopted as it is, and the marker written;
- a marker, but the database is missing or 0 bytes: refused;
- then ``PRAGMA quick_check`` (a damaged page, or a file that is not a database): refused;
- a database with another id than the marker's (another file put in its place), or a revision
  below the marker's (committed changes are missing: the WAL was deleted or damaged): refused.

A refusal is :class:`StateDamaged`; ``plantd-state`` exits :data:`DAMAGED_EXIT_STATUS`, which
systemd does not restart (restarting cannot help). :func:`accept_loss` is the way out, once a
person has decided to go on with what is left (docs/state.md, "Damaged or missing database").

The marker is two fixed-size text records, written alternately with ``pwrite`` and
``fdatasync``, each with a CRC: a torn write spoils one record and leaves the other, older one
(which still bounds everything acknowledged before it). It is created whole, in a temporary file
renamed into place.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from plantd.state._errors import StateDamaged
from plantd.state._schema import connect, fsync_directory, migrate

__all__ = [
    "Marker",
    "MarkerRecord",
    "Opened",
    "accept_loss",
    "is_corruption",
    "marker_path",
    "open_verified",
]

log = logging.getLogger(__name__)

_SLOT = 128  # bytes per record; the file is two of them
_RECORD = re.compile(
    r"plantd-state-generation v1 database=([0-9a-f]{16}) revision=(\d+) crc=([0-9a-f]{8})"
)
# SQLite's primary result codes that mean the file's content is wrong (not a transient failure
# such as a full disk, SQLITE_FULL, or an I/O error, SQLITE_IOERR).
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


def marker_path(database: Path) -> Path:
    return database.with_name(database.name + ".generation")


def is_corruption(exc: BaseException) -> bool:
    """Whether SQLite said the database's content is damaged ("database disk image is
    malformed", "file is not a database")."""
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.DatabaseError)
        and code is not None
        and code & 0xFF
        in (
            _SQLITE_CORRUPT,
            _SQLITE_NOTADB,
        )
    )


@dataclass(frozen=True, slots=True)
class MarkerRecord:
    database_id: int
    revision: int

    def encode(self) -> bytes:
        body = f"plantd-state-generation v1 database={self.database_id:016x} "
        body += f"revision={self.revision}"
        line = f"{body} crc={zlib.crc32(body.encode()):08x}"
        return line.encode().ljust(_SLOT - 1) + b"\n"

    @classmethod
    def decode(cls, raw: bytes) -> MarkerRecord | None:
        """The record in ``raw``, or None if it is torn or not a record."""
        match = _RECORD.fullmatch(raw.decode("ascii", "replace").strip())
        if match is None:
            return None
        body = raw.decode("ascii").strip().rsplit(" crc=", 1)[0]
        if f"{zlib.crc32(body.encode()):08x}" != match[3]:
            return None
        return cls(int(match[1], 16), int(match[2]))


class Marker:
    """``<database>.generation``: read it, create it whole, then advance it in place."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = marker_path(database)
        self._fd: int | None = None
        self._slot = 0
        self.revision = -1  # what the file says once opened for advancing

    def read(self) -> MarkerRecord | None:
        """The newest valid record; None if there is no marker; StateDamaged if neither record
        can be read."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateDamaged(self.database, f"cannot read {self.path}: {exc}") from exc
        records = [MarkerRecord.decode(raw[i : i + _SLOT]) for i in range(0, 2 * _SLOT, _SLOT)]
        valid = [record for record in records if record is not None]
        if not valid:
            raise StateDamaged(
                self.database, f"{self.path} holds no valid record (the marker is damaged)"
            )
        return max(valid, key=lambda record: record.revision)

    def create(self, record: MarkerRecord) -> None:
        """Write the marker whole (both records): a temporary file, fsynced, renamed."""
        self.close()
        temporary = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, record.encode() * 2)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        fsync_directory(self.path.parent)

    def open(self, record: MarkerRecord) -> None:
        """Keep the file open to advance it; ``record`` is what it holds."""
        self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        self.revision = record.revision
        self._slot = 0

    def advance(self, database_id: int, revision: int) -> None:
        """Record that ``revision`` is committed: overwrite the older record, then fdatasync
        (the other record stays whole if this write is torn)."""
        assert self._fd is not None, "open() the marker first"
        os.pwrite(self._fd, MarkerRecord(database_id, revision).encode(), self._slot * _SLOT)
        os.fdatasync(self._fd)
        self._slot ^= 1
        self.revision = revision

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def database_id(conn: sqlite3.Connection) -> int | None:
    """The id in ``meta`` (None for a database that has none yet)."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE name = 'database_id'").fetchone()
    except sqlite3.OperationalError:  # no meta table: a database not created yet
        return None
    return int(row[0]) if row is not None else None


def _revision(conn: sqlite3.Connection) -> int:
    try:
        row = conn.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0]) if row is not None else 0


def _check_file(path: Path, record: MarkerRecord | None, marker: Path) -> None:
    """Refuse a missing or empty database that the marker says existed (before SQLite would
    quietly create an empty one)."""
    if record is None:
        return
    said = f"{marker.name} says it held revision {record.revision}"
    if not path.exists():
        raise StateDamaged(path, f"the database does not exist, but {said}: it was deleted")
    if path.stat().st_size == 0:
        raise StateDamaged(path, f"the database is empty (0 bytes), but {said}: it was truncated")


def _quick_check(conn: sqlite3.Connection, path: Path) -> None:
    try:
        rows = conn.execute("PRAGMA quick_check(5)").fetchall()
    except sqlite3.DatabaseError as exc:
        raise StateDamaged(
            path, f"the database is damaged: PRAGMA quick_check failed: {exc}"
        ) from exc
    problems = [str(row[0]) for row in rows]
    if problems != ["ok"]:
        said = " ".join("; ".join(problems).split())  # one line: it may span several
        raise StateDamaged(path, f"the database is damaged: PRAGMA quick_check says {said}")


def _check_identity(
    conn: sqlite3.Connection, path: Path, record: MarkerRecord, marker: Path
) -> None:
    found = database_id(conn)
    if found is not None and found != record.database_id:
        raise StateDamaged(
            path,
            f"the database is database {found:016x}, but {marker.name} names database "
            f"{record.database_id:016x}: another file was put in its place",
        )
    revision = _revision(conn)  # 0 when even the tables were only in the lost WAL
    if found is None or revision < record.revision:
        raise StateDamaged(
            path,
            f"the database is at revision {revision}, but {marker.name} says revision "
            f"{record.revision} was committed: {record.revision - revision} acknowledged "
            f"change(s) are missing (was its write-ahead log {path.name}-wal deleted or damaged?)",
        )


def _connect_checked(path: Path) -> sqlite3.Connection:
    try:
        conn = connect(path)
    except sqlite3.DatabaseError as exc:
        if is_corruption(exc):
            raise StateDamaged(path, f"the database is damaged: SQLite says {exc}") from exc
        raise
    return conn


@dataclass(frozen=True, slots=True)
class Opened:
    conn: sqlite3.Connection  # the writer's
    database_id: int
    migrations_applied: list[str]


def open_verified(path: Path, marker: Marker) -> Opened:
    """The writer's connection to ``path``, migrated, once the database passed the checks
    above; ``marker`` is then open for :meth:`Marker.advance`. Raises :class:`StateDamaged`, or
    ``sqlite3.Error``/``OSError`` when the file cannot be opened at all."""
    record = marker.read()
    _check_file(path, record, marker.path)
    conn = _connect_checked(path)
    try:
        _quick_check(conn, path)
        if record is not None:
            _check_identity(conn, path, record, marker.path)
        applied = migrate(conn)
        current = MarkerRecord(_identity(conn), _revision(conn))  # the first read makes the WAL
        fsync_directory(path.parent)  # …whose directory entry must be durable
        if record is None:
            marker.create(current)
            log.info("new generation marker %s (revision %d)", marker.path, current.revision)
            record = current
        marker.open(record)
        if current.revision != record.revision:
            marker.advance(current.database_id, current.revision)
    except BaseException:
        conn.close()
        marker.close()
        raise
    return Opened(conn, current.database_id, applied)


def _identity(conn: sqlite3.Connection) -> int:
    found = database_id(conn)
    assert found is not None, "the migrations give every database an id"
    return found


def accept_loss(path: Path) -> str:
    """Let the service start again with what is left of ``path``; returns what was done.

    A database that SQLite finds damaged is moved aside (with its WAL and shared-memory files,
    renamed ``<name>.damaged-<time>``), so the service starts with an empty one; otherwise the
    database is kept as it is. Either way the marker is removed, and the next start writes a new
    one. Run it only while the service is stopped (the caller holds the store's lock)."""
    marker = marker_path(path)
    done: list[str] = []
    moved = path.exists() and path.stat().st_size > 0 and _damaged(path)
    if moved:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            source = path.with_name(path.name + suffix)
            if source.exists():
                target = path.with_name(f"{path.name}.damaged-{stamp}{suffix}")
                os.replace(source, target)
                done.append(f"moved {source} to {target}")
    if marker.exists():
        marker.unlink()
        done.append(f"removed {marker}")
    fsync_directory(path.parent)
    if not done:
        return f"nothing to do: {path} has no marker to remove and is not damaged"
    kept = "" if moved else f"; {path} is kept as it is"
    return "; ".join(done) + kept


def _damaged(path: Path) -> bool:
    """Whether SQLite finds ``path`` damaged. Other failures (permissions…) propagate: they
    are no reason to move a database aside."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)  # writes nothing to it
    with contextlib.closing(conn):
        try:
            rows = conn.execute("PRAGMA quick_check(1)").fetchall()
        except sqlite3.DatabaseError as exc:
            if is_corruption(exc):
                return True
            raise
    return [str(row[0]) for row in rows] != ["ok"]
