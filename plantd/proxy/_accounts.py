"""The proxy's own credentials: web passwords, API tokens and browser sessions (``proxy.db``).

Who a person *is* and what they may do comes from the key ring (``_people``); this store only
holds the proofs that someone is that person, and only as hashes, so a copy of the file gives
nobody a way in:

``passwords(principal, hash, salt, n, r, p, changed)``
    scrypt (``hashlib.scrypt``) with a random salt per password and its cost parameters stored
    beside it, so the cost can be raised later without breaking the passwords set before.
``tokens(id, hash, principal, name, created, expires, last_used)``
    API tokens, ``pdt_<id>_<secret>``: ``hash`` is the SHA-256 of the whole string. A token is
    256 random bits, so a fast hash is enough (nobody can guess one to test against it), and a
    lookup by hash costs one index probe, not an scrypt.
``sessions(id, hash, principal, csrf, created, last_seen)``
    Browser sessions, keyed by the SHA-256 of the cookie's secret. A session ends
    ``session_idle`` after its last request and ``session_max`` after it began, whichever is
    first (``proxy.session_idle``/``session_max``); setting a new password ends every session
    of that person.

All times are wall times from the injected :class:`~plantd.clock.Clock` (they outlive the
process). ``last_seen`` and ``last_used`` are written at most every :data:`TOUCH_EVERY`
seconds (less for a short ``session_idle``), not on every request: each write is a
``synchronous=FULL`` commit, which an SD card pays for. An idle session may therefore end up
to that much early, never late.

The connection is owned by one thread (``plantd._dbthread``); the methods here block until
their job is done, and ``check_password``/``set_password`` do their scrypt work on the
caller's thread, not the database's, so the proxy runs them in ``asyncio.to_thread``. The
file is created mode 0600 (SQLite gives its ``-wal``/``-shm`` files the same mode), and when
root creates it (``plant proxy passwd`` on the appliance) it is given to the owner of its
directory, the service user that runs the proxy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from plantd._dbthread import DatabaseThread
from plantd._sqlite import connect_migrated, transaction
from plantd.clock import Clock
from plantd.config import PlantdConfig

__all__ = [
    "MIGRATIONS",
    "MIN_PASSWORD_LENGTH",
    "TOKEN_PREFIX",
    "TOUCH_EVERY",
    "Accounts",
    "SessionInfo",
    "TokenInfo",
    "check_password_rules",
]

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # scrypt does not care, but nobody needs more and a body stays small
TOKEN_PREFIX = "pdt_"
TOUCH_EVERY = 60.0  # seconds between writes of a session's last_seen / a token's last_used

# scrypt's cost: 2**14 × 8 × 128 bytes = 16 MiB and some 50 ms on a Raspberry Pi 4 per check.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_DEFAULT_COST = (SCRYPT_N, SCRYPT_R, SCRYPT_P)
_SCRYPT_LENGTH = 32
_SALT_LENGTH = 16
_MAXMEM = 64 * 1024 * 1024

_TOKEN_COLUMNS = "id, principal, name, created, expires, last_used"
_DEFAULT_IDLE = 8 * 3600.0
_DEFAULT_MAX = 7 * 24 * 3600.0

MIGRATIONS = Migrations("plantd.proxy.accounts")


@MIGRATIONS(name="0001_initial")
def _initial(db: Database) -> None:
    db.execute(
        "CREATE TABLE passwords (principal TEXT PRIMARY KEY, hash BLOB NOT NULL, "
        "salt BLOB NOT NULL, n INTEGER NOT NULL, r INTEGER NOT NULL, p INTEGER NOT NULL, "
        "changed REAL NOT NULL) WITHOUT ROWID"
    )
    db.execute(
        "CREATE TABLE tokens (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, "
        "principal TEXT NOT NULL, name TEXT NOT NULL, created REAL NOT NULL, expires REAL, "
        "last_used REAL)"
    )
    db.execute("CREATE INDEX tokens_principal ON tokens (principal)")
    db.execute(
        "CREATE TABLE sessions (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, "
        "principal TEXT NOT NULL, csrf TEXT NOT NULL, created REAL NOT NULL, "
        "last_seen REAL NOT NULL)"
    )
    db.execute("CREATE INDEX sessions_principal ON sessions (principal)")


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """An API token as stored (never its secret)."""

    id: str
    principal: str
    name: str
    created: float
    expires: float | None  # wall time; None: never
    last_used: float | None

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A browser session as stored (never its secret); ``expires`` is when it ends if no
    request comes before."""

    id: str
    principal: str
    csrf: str
    created: float
    last_seen: float
    expires: float


def check_password_rules(principal: str, password: str) -> None:
    """Raise ValueError naming the rule ``password`` breaks, if any."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"a password may have at most {MAX_PASSWORD_LENGTH} characters")
    lowered = password.strip().lower()
    if lowered in (principal.lower(), principal.removeprefix("user.").lower()):
        raise ValueError("a password may not be the user's name")


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=_SCRYPT_LENGTH
    )


class Accounts:
    """The proxy's credential store at ``path`` (created if missing)."""

    def __init__(
        self,
        path: Path,
        clock: Clock,
        *,
        session_idle: float = _DEFAULT_IDLE,
        session_max: float = _DEFAULT_MAX,
    ) -> None:
        if session_idle <= 0 or session_max <= 0:
            raise ValueError("session_idle and session_max must be positive")
        self.path = path
        self._clock = clock
        self._idle = session_idle
        self._max = session_max
        self._touch_every = min(TOUCH_EVERY, session_idle / 10)
        _create_private(path)
        self._db = DatabaseThread("plantd-proxy-accounts", self._open)
        # Burnt on a check for a person without a password, so that the answer takes as long.
        self._decoy_salt = secrets.token_bytes(_SALT_LENGTH)

    @classmethod
    def from_config(cls, config: PlantdConfig, clock: Clock) -> Accounts:
        """The store ``proxy.database`` names, with ``proxy.session_idle``/``session_max``."""
        proxy = config.proxy
        return cls(
            proxy.database_path(config.paths),
            clock,
            session_idle=proxy.session_idle,
            session_max=proxy.session_max,
        )

    def _open(self) -> sqlite3.Connection:
        return connect_migrated(self.path, MIGRATIONS)

    def close(self) -> None:
        """Close the database (idempotent)."""
        self._db.close()

    # -- passwords ----------------------------------------------------------------------------

    def set_password(self, principal: str, password: str) -> None:
        """Set ``principal``'s password (ValueError naming the rule it breaks) and end every
        session of theirs."""
        check_password_rules(principal, password)
        salt = secrets.token_bytes(_SALT_LENGTH)
        digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        now = self._clock.now()

        def job(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "INSERT OR REPLACE INTO passwords (principal, hash, salt, n, r, p, changed) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (principal, digest, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, now),
                )
                conn.execute("DELETE FROM sessions WHERE principal = ?", (principal,))

        self._db.call(job)

    def check_password(self, principal: str, password: str) -> bool:
        """Whether ``password`` is ``principal``'s. Takes as long for a person without a
        password (or nobody at all) as for a wrong one: the scrypt work is done either way and
        the comparison is constant-time."""
        row = self._db.call(
            lambda conn: conn.execute(
                "SELECT hash, salt, n, r, p FROM passwords WHERE principal = ?", (principal,)
            ).fetchone()
        )
        if row is None:
            stored, salt, n, r, p = bytes(_SCRYPT_LENGTH), self._decoy_salt, *_DEFAULT_COST
        else:
            stored, salt, n, r, p = row
        if len(password) > MAX_PASSWORD_LENGTH:
            password = password[:MAX_PASSWORD_LENGTH]  # still wrong: no stored one is longer
            row = None
        digest = _scrypt(password, bytes(salt), int(n), int(r), int(p))
        return hmac.compare_digest(digest, bytes(stored)) and row is not None

    def has_password(self, principal: str) -> bool:
        return self._db.call(
            lambda conn: (
                conn.execute("SELECT 1 FROM passwords WHERE principal = ?", (principal,)).fetchone()
                is not None
            )
        )

    def remove_password(self, principal: str) -> bool:
        """Remove ``principal``'s password and end their sessions; False if they had none."""

        def job(conn: sqlite3.Connection) -> bool:
            with transaction(conn):
                gone = conn.execute("DELETE FROM passwords WHERE principal = ?", (principal,))
                conn.execute("DELETE FROM sessions WHERE principal = ?", (principal,))
            return gone.rowcount > 0

        return self._db.call(job)

    # -- API tokens -------------------------------------------------------------------------

    def create_token(
        self, principal: str, name: str, expires_in: float | None
    ) -> tuple[str, TokenInfo]:
        """A new token for ``principal``: its secret (shown once, never stored) and its info.
        ``expires_in`` seconds from now, or never (None)."""
        if not name.strip():
            raise ValueError("a token needs a name (what it is for)")
        if expires_in is not None and expires_in <= 0:
            raise ValueError(f"a token's lifetime must be positive, got {expires_in:g} s")
        token_id = secrets.token_hex(8)
        secret = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        now = self._clock.now()
        info = TokenInfo(
            token_id,
            principal,
            name.strip(),
            now,
            None if expires_in is None else now + expires_in,
            None,
        )

        def job(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "INSERT INTO tokens (id, hash, principal, name, created, expires, "
                    "last_used) VALUES (?, ?, ?, ?, ?, ?, NULL)",
                    (info.id, _sha256(secret), principal, info.name, now, info.expires),
                )

        self._db.call(job)
        return secret, info

    def token(self, secret: str) -> TokenInfo | None:
        """The live token whose secret this is (its ``last_used`` brought up to date), or None:
        unknown, revoked or expired."""
        if not secret.startswith(TOKEN_PREFIX):
            return None
        now = self._clock.now()
        touch_every = self._touch_every

        def job(conn: sqlite3.Connection) -> TokenInfo | None:
            row = conn.execute(
                f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE hash = ?", (_sha256(secret),)
            ).fetchone()
            if row is None:
                return None
            info = TokenInfo(*row)
            if info.expired(now):
                return None
            if info.last_used is None or now - info.last_used >= touch_every:
                with transaction(conn):
                    conn.execute("UPDATE tokens SET last_used = ? WHERE id = ?", (now, info.id))
                info = dataclasses.replace(info, last_used=now)
            return info

        return self._db.call(job)

    def tokens(self, principal: str | None = None) -> list[TokenInfo]:
        """Every token (expired ones too, until revoked), or ``principal``'s, oldest first."""
        query = f"SELECT {_TOKEN_COLUMNS} FROM tokens"
        params: tuple[str, ...] = ()
        if principal is not None:
            query += " WHERE principal = ?"
            params = (principal,)
        rows = self._db.call(
            lambda conn: conn.execute(query + " ORDER BY created, id", params).fetchall()
        )
        return [TokenInfo(*row) for row in rows]

    def revoke_token(self, token_id: str) -> bool:
        """Delete the token ``token_id``; False if there is none."""

        def job(conn: sqlite3.Connection) -> bool:
            with transaction(conn):
                return conn.execute("DELETE FROM tokens WHERE id = ?", (token_id,)).rowcount > 0

        return self._db.call(job)

    # -- browser sessions -------------------------------------------------------------------

    def open_session(self, principal: str) -> tuple[str, SessionInfo]:
        """A new session for ``principal``: the cookie's secret and the session. Sessions that
        have ended are deleted on the way."""
        secret = secrets.token_urlsafe(32)
        now = self._clock.now()
        info = SessionInfo(
            secrets.token_hex(8),
            principal,
            secrets.token_urlsafe(32),
            now,
            now,
            self._expiry(now, now),
        )

        def job(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "DELETE FROM sessions WHERE last_seen <= ? OR created <= ?",
                    (now - self._idle, now - self._max),
                )
                conn.execute(
                    "INSERT INTO sessions (id, hash, principal, csrf, created, last_seen) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (info.id, _sha256(secret), principal, info.csrf, now, now),
                )

        self._db.call(job)
        return secret, info

    def session(self, secret: str) -> SessionInfo | None:
        """The live session whose cookie this is (seen now), or None: unknown, closed, idle
        for ``session_idle`` or older than ``session_max`` (then it is deleted)."""
        now = self._clock.now()
        touch_every = self._touch_every

        def job(conn: sqlite3.Connection) -> SessionInfo | None:
            row = conn.execute(
                "SELECT id, principal, csrf, created, last_seen FROM sessions WHERE hash = ?",
                (_sha256(secret),),
            ).fetchone()
            if row is None:
                return None
            session_id, principal, csrf, created, last_seen = row
            if now >= self._expiry(created, last_seen):
                with transaction(conn):
                    conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
                return None
            if now - last_seen >= touch_every:
                with transaction(conn):
                    conn.execute(
                        "UPDATE sessions SET last_seen = ? WHERE id = ?", (now, session_id)
                    )
                last_seen = now
            expires = self._expiry(created, last_seen)
            return SessionInfo(session_id, principal, csrf, created, last_seen, expires)

        return self._db.call(job)

    def close_session(self, secret: str) -> bool:
        """End the session whose cookie this is; False if there was none."""

        def job(conn: sqlite3.Connection) -> bool:
            with transaction(conn):
                deleted = conn.execute("DELETE FROM sessions WHERE hash = ?", (_sha256(secret),))
            return deleted.rowcount > 0

        return self._db.call(job)

    def close_sessions(self, principal: str) -> int:
        """End every session of ``principal``; how many there were."""

        def job(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                deleted = conn.execute("DELETE FROM sessions WHERE principal = ?", (principal,))
            return deleted.rowcount

        return self._db.call(job)

    def _expiry(self, created: float, last_seen: float) -> float:
        return min(last_seen + self._idle, created + self._max)


def _create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it is missing (SQLite would use the umask);
    created by root, it goes to the owner of its directory (the service user)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        if os.geteuid() == 0:
            parent = path.parent.stat()
            os.fchown(fd, parent.st_uid, parent.st_gid)
    finally:
        os.close(fd)
