"""The proxy's credential store (plantd.proxy._accounts) on a real SQLite file and a manual
clock: passwords, API tokens, sessions and their expiry."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from plantd.proxy._accounts import TOUCH_EVERY, Accounts
from plantd.testing import ManualClock

HOUR = 3600.0
IDLE = 8 * HOUR
MAX = 7 * 24 * HOUR


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "proxy.db"


@pytest.fixture
def accounts(db_path: Path, clock: ManualClock) -> Iterator[Accounts]:
    store = Accounts(db_path, clock, session_idle=IDLE, session_max=MAX)
    try:
        yield store
    finally:
        store.close()


def dump(path: Path) -> bytes:
    """Everything the file and its WAL hold, as bytes (to look for secrets in)."""
    data = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


# -- the file -------------------------------------------------------------------------------------


def test_the_file_is_created_private_in_wal_mode(accounts: Accounts, db_path: Path) -> None:
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    accounts.set_password("user.alice", "correct horse")
    wal = db_path.with_name("proxy.db-wal")
    assert stat.S_IMODE(wal.stat().st_mode) == 0o600
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_what_is_stored_survives_a_reopen(db_path: Path, clock: ManualClock) -> None:
    first = Accounts(db_path, clock)
    first.set_password("user.alice", "correct horse")
    secret, _ = first.create_token("user.alice", "ci", None)
    first.close()
    first.close()  # idempotent
    again = Accounts(db_path, clock)
    try:
        assert again.check_password("user.alice", "correct horse")
        info = again.token(secret)
        assert info is not None
        assert info.principal == "user.alice"
    finally:
        again.close()


# -- passwords ------------------------------------------------------------------------------------


def test_a_password_checks_and_a_wrong_one_does_not(accounts: Accounts) -> None:
    assert not accounts.has_password("user.alice")
    accounts.set_password("user.alice", "correct horse")
    assert accounts.has_password("user.alice")
    assert accounts.check_password("user.alice", "correct horse")
    assert not accounts.check_password("user.alice", "correct horsE")
    assert not accounts.check_password("user.alice", "")
    assert not accounts.check_password("user.alice", "x" * 5000)
    assert not accounts.check_password("user.bob", "correct horse")  # nobody's password
    assert not accounts.check_password("user.nobody", "")


def test_passwords_are_stored_as_salted_scrypt_only(accounts: Accounts, db_path: Path) -> None:
    accounts.set_password("user.alice", "same password")
    accounts.set_password("user.bob", "same password")
    assert b"same password" not in dump(db_path)
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT hash, salt, n, r, p FROM passwords").fetchall()
    assert len(rows) == 2
    assert rows[0][0] != rows[1][0]
    assert rows[0][1] != rows[1][1]
    assert [tuple(row[2:]) for row in rows] == [(2**14, 8, 1)] * 2
    hash_, salt, n, r, p = rows[0]
    candidates = [
        hashlib.scrypt(b"same password", salt=salt, n=n, r=r, p=p, dklen=32, maxmem=2**26)
    ]
    assert bytes(hash_) in candidates


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short", "at least 10 characters"),
        ("123456789", "at least 10 characters"),
        ("alice-smith", "not be the user's name"),
        ("ALICE-SMITH", "not be the user's name"),
        ("user.alice-smith", "not be the user's name"),
        ("x" * 1025, "at most 1024 characters"),
    ],
)
def test_a_password_that_breaks_a_rule_is_refused_naming_it(
    accounts: Accounts, password: str, rule: str
) -> None:
    with pytest.raises(ValueError, match=rule):
        accounts.set_password("user.alice-smith", password)
    assert not accounts.has_password("user.alice-smith")


def test_a_new_password_replaces_the_old_and_ends_the_sessions(accounts: Accounts) -> None:
    accounts.set_password("user.alice", "first password")
    alice, _ = accounts.open_session("user.alice")
    bob, _ = accounts.open_session("user.bob")
    accounts.set_password("user.alice", "second password")
    assert not accounts.check_password("user.alice", "first password")
    assert accounts.check_password("user.alice", "second password")
    assert accounts.session(alice) is None
    assert accounts.session(bob) is not None


def test_removing_a_password_ends_the_sessions(accounts: Accounts) -> None:
    accounts.set_password("user.alice", "first password")
    secret, _ = accounts.open_session("user.alice")
    assert accounts.remove_password("user.alice")
    assert not accounts.remove_password("user.alice")
    assert not accounts.check_password("user.alice", "first password")
    assert accounts.session(secret) is None


# -- tokens ---------------------------------------------------------------------------------------


def test_a_token_authenticates_until_revoked(accounts: Accounts, db_path: Path) -> None:
    secret, info = accounts.create_token("user.alice", "grafana", None)
    assert secret.startswith(f"pdt_{info.id}_")
    assert (info.principal, info.name, info.expires, info.last_used) == (
        "user.alice",
        "grafana",
        None,
        None,
    )
    found = accounts.token(secret)
    assert found is not None
    assert found.id == info.id
    assert found.last_used is not None
    assert secret.encode() not in dump(db_path)  # only its hash is kept
    assert accounts.token(secret + "x") is None
    assert accounts.token("pdt_" + info.id + "_forged") is None
    assert accounts.token("not a token") is None
    assert accounts.revoke_token(info.id)
    assert not accounts.revoke_token(info.id)
    assert accounts.token(secret) is None


async def test_a_token_expires(accounts: Accounts, clock: ManualClock) -> None:
    secret, info = accounts.create_token("user.alice", "ci", 90 * 24 * HOUR)
    assert info.expires == info.created + 90 * 24 * HOUR
    await clock.advance(90 * 24 * HOUR - 1)
    assert accounts.token(secret) is not None
    await clock.advance(1)
    assert accounts.token(secret) is None
    listed = accounts.tokens("user.alice")
    assert [token.id for token in listed] == [info.id]  # listed (as expired) until revoked
    assert listed[0].expired(clock.now())


async def test_last_used_is_written_at_most_every_minute(
    accounts: Accounts, clock: ManualClock
) -> None:
    secret, _ = accounts.create_token("user.alice", "ci", None)
    first = accounts.token(secret)
    assert first is not None
    assert first.last_used == clock.now()
    await clock.advance(TOUCH_EVERY - 1)
    assert accounts.tokens()[0].last_used == first.last_used
    again = accounts.token(secret)
    assert again is not None
    assert again.last_used == first.last_used
    await clock.advance(1)
    assert accounts.token(secret) is not None
    assert accounts.tokens()[0].last_used == clock.now()


async def test_tokens_are_listed_by_person_oldest_first(
    accounts: Accounts, clock: ManualClock
) -> None:
    _, one = accounts.create_token("user.alice", "one", None)
    await clock.advance(1)
    _, two = accounts.create_token("user.bob", "two", 60)
    await clock.advance(1)
    _, three = accounts.create_token("user.alice", "three", None)
    assert [t.id for t in accounts.tokens()] == [one.id, two.id, three.id]
    assert [t.id for t in accounts.tokens("user.alice")] == [one.id, three.id]
    assert accounts.tokens("user.carol") == []


@pytest.mark.parametrize(("name", "expires_in"), [("", None), ("  ", None), ("x", 0), ("x", -5)])
def test_a_token_needs_a_name_and_a_positive_lifetime(
    accounts: Accounts, name: str, expires_in: float | None
) -> None:
    with pytest.raises(ValueError, match=r"name|positive"):
        accounts.create_token("user.alice", name, expires_in)
    assert accounts.tokens() == []


# -- sessions -------------------------------------------------------------------------------------


def test_a_session_lives_while_used_and_ends_when_closed(
    accounts: Accounts, clock: ManualClock, db_path: Path
) -> None:
    secret, info = accounts.open_session("user.alice")
    assert info.expires == info.created + IDLE
    found = accounts.session(secret)
    assert found is not None
    assert (found.id, found.principal, found.csrf) == (info.id, "user.alice", info.csrf)
    assert secret.encode() not in dump(db_path)
    assert accounts.session("somebody else's") is None
    assert accounts.close_session(secret)
    assert not accounts.close_session(secret)
    assert accounts.session(secret) is None


async def test_a_session_ends_after_session_idle_without_requests(
    accounts: Accounts, clock: ManualClock, db_path: Path
) -> None:
    secret, _ = accounts.open_session("user.alice")
    await clock.advance(IDLE - 1)
    seen = accounts.session(secret)
    assert seen is not None
    assert seen.last_seen == clock.now()
    assert seen.expires == clock.now() + IDLE
    await clock.advance(IDLE - 1)
    assert accounts.session(secret) is not None
    await clock.advance(IDLE)
    assert accounts.session(secret) is None
    with sqlite3.connect(db_path) as conn:  # deleted, not only refused
        assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (0,)


async def test_a_session_ends_after_session_max_however_busy(
    accounts: Accounts, clock: ManualClock
) -> None:
    secret, info = accounts.open_session("user.alice")
    while clock.now() + HOUR < info.created + MAX:
        await clock.advance(HOUR)
        assert accounts.session(secret) is not None
    last = accounts.session(secret)
    assert last is not None
    assert last.expires == info.created + MAX
    await clock.advance(info.created + MAX - clock.now())
    assert accounts.session(secret) is None


def test_sessions_of_a_person_close_together(accounts: Accounts) -> None:
    one, _ = accounts.open_session("user.alice")
    two, _ = accounts.open_session("user.alice")
    other, _ = accounts.open_session("user.bob")
    assert accounts.close_sessions("user.alice") == 2
    assert accounts.session(one) is None
    assert accounts.session(two) is None
    assert accounts.session(other) is not None


async def test_ended_sessions_are_swept_when_a_new_one_opens(
    accounts: Accounts, clock: ManualClock, db_path: Path
) -> None:
    accounts.open_session("user.alice")
    await clock.advance(IDLE)
    accounts.open_session("user.bob")
    with sqlite3.connect(db_path) as conn:
        assert [row[0] for row in conn.execute("SELECT principal FROM sessions")] == ["user.bob"]


def test_bad_durations_are_refused(db_path: Path, clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="positive"):
        Accounts(db_path, clock, session_idle=0)
