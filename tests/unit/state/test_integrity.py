"""The store refuses a database that lost acknowledged writes or is damaged (issue 12, items 5-6).

Real SQLite files, the real Store. A deleted or damaged WAL is made by copying the database and
its marker while a store holds them open (the WAL's frames are not checkpointed yet): exactly
what a kill -9 followed by losing ``state.db-wal`` leaves. tests/integration/state/
test_integrity.py does the same to the real service process.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from plantd.state import CreateScope, Set, StateDamaged, StateError, Store, Write
from plantd.state._integrity import MarkerRecord, accept_loss, marker_path

SCOPE = "plant.integrity"
PAGE = 4096


def fill(store: Store, keys: int, value: str = "v") -> None:
    store.write(Write("create-scope", (CreateScope(SCOPE),)))
    for start in range(0, keys, 100):
        ops = tuple(
            Set(SCOPE, f"k{n:05d}", f"{value}{n}", json.dumps(f"{value}{n}"))
            for n in range(start, min(start + 100, keys))
        )
        store.write(Write("batch", ops))


def corrupt_middle_page(path: Path) -> None:
    """Overwrite a leaf page in the middle of the keys with bytes no b-tree page can hold (a
    key's page: other pages, such as recorded results, are not read by every request)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        pages = [
            row[0]
            for row in db.execute(
                "SELECT pageno FROM dbstat WHERE name = 'entries' AND pagetype = 'leaf' "
                "ORDER BY pageno"
            )
        ]
    assert len(pages) > 8, "too few pages of keys to damage one in the middle"
    with path.open("r+b") as file:
        file.seek((pages[len(pages) // 2] - 1) * PAGE)
        file.write(b"\xa5" * PAGE)


def read_every_value(store: Store) -> None:
    after = None
    while True:
        page = store.list_keys(SCOPE, after=after, limit=1000, values=True, max_bytes=10**9)
        if page["next"] is None:
            return
        after = str(page["next"])


def copy_without_checkpoint(store: Store, target: Path, *, wal: bool) -> Path:
    """The database and its marker as a kill -9 leaves them, with or without the WAL."""
    target.mkdir()
    copied = target / store.path.name
    suffixes = ["", ".generation"] + (["-wal"] if wal else [])
    for suffix in suffixes:
        shutil.copyfile(f"{store.path}{suffix}", f"{copied}{suffix}")
    return copied


def test_a_new_installation_starts_and_writes_a_marker(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store(path) as store:
        fill(store, 10)
        revision = store.revision()
    record = MarkerRecord.decode(marker_path(path).read_bytes()[:128])
    records = [MarkerRecord.decode(line) for line in marker_path(path).read_bytes().splitlines()]
    assert record is not None
    assert max(r.revision for r in records if r is not None) == revision
    with Store(path) as again:  # and it opens again, unchanged
        assert again.revision() == revision


def test_a_database_from_before_markers_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store(path) as store:
        fill(store, 10)
    marker_path(path).unlink()
    with Store(path) as store:
        assert store.get(SCOPE, "k00003").value == "v3"
    assert marker_path(path).exists()


def test_an_emptied_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store(path) as store:
        fill(store, 300)
    os.truncate(path, 0)
    with pytest.raises(StateDamaged, match=r"state.db: the database is empty \(0 bytes\), but "):
        Store(path)
    assert path.stat().st_size == 0  # refused before SQLite wrote a new database there


def test_a_deleted_database_is_refused_but_a_fresh_directory_starts(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store(path) as store:
        fill(store, 300)
    path.unlink()
    with pytest.raises(StateDamaged, match=r"does not exist, but state.db.generation says"):
        Store(path)
    assert not path.exists()
    with Store(tmp_path / "other" / "state.db") as fresh:
        assert fresh.revision() == 0


@pytest.mark.parametrize("checkpointed", [False, True])
def test_a_lost_wal_is_refused(tmp_path: Path, checkpointed: bool) -> None:
    with Store(tmp_path / "live" / "state.db") as store:
        fill(store, 300)
        if checkpointed:  # the file holds the first 300 keys, the WAL only the later ones
            with sqlite3.connect(store.path) as other:
                other.execute("PRAGMA wal_checkpoint(PASSIVE)")
            store.write(Write("set", (Set(SCOPE, "later", 1, "1"),)))
        copied = copy_without_checkpoint(store, tmp_path / "crashed", wal=False)
    expected = r"at revision 301, but .* revision 302 was committed" if checkpointed else ""
    with pytest.raises(StateDamaged, match=expected + r".*acknowledged change\(s\) are missing"):
        Store(copied)


def test_a_damaged_wal_is_refused(tmp_path: Path) -> None:
    with Store(tmp_path / "live" / "state.db") as store:
        fill(store, 300)
        copied = copy_without_checkpoint(store, tmp_path / "crashed", wal=True)
    wal = Path(f"{copied}-wal")
    with wal.open("r+b") as file:  # SQLite drops every frame from the first bad checksum on
        file.seek(wal.stat().st_size // 2)
        file.write(b"\x5a" * 64)
    with pytest.raises(StateDamaged, match=r"acknowledged change\(s\) are missing"):
        Store(copied)


def test_another_database_in_place_is_refused(tmp_path: Path) -> None:
    path, other = tmp_path / "state.db", tmp_path / "other" / "state.db"
    for each in (path, other):
        with Store(each) as store:
            fill(store, 10)
    shutil.copyfile(other, path)
    with pytest.raises(StateDamaged, match="another file was put in its place"):
        Store(path)


def test_a_damaged_page_is_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store(path) as store:
        fill(store, 3000)
    corrupt_middle_page(path)
    with pytest.raises(StateDamaged, match=r"the database is damaged: PRAGMA quick_check"):
        Store(path)


def test_a_torn_marker_record_falls_back_to_the_other(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store(path) as store:
        fill(store, 10)
    marker = marker_path(path)
    raw = bytearray(marker.read_bytes())
    raw[40] ^= 1  # one record torn: the other still bounds what was acknowledged
    marker.write_bytes(bytes(raw))
    Store(path).close()
    raw = bytearray(marker.read_bytes())
    raw[128 + 40] ^= 1  # and now the other
    marker.write_bytes(bytes(raw))
    with pytest.raises(StateDamaged, match="holds no valid record"):
        Store(path)


def test_damage_found_while_serving_stops_with_state_damaged(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store(path) as store:
        fill(store, 3000)
    store = Store(path)  # passes quick_check; its reader has read no page yet
    found: list[StateDamaged] = []
    store.on_damaged = found.append
    try:
        corrupt_middle_page(path)
        with pytest.raises(StateError) as raised:
            read_every_value(store)
        assert raised.value.code == "state.damaged"
        assert "state.db: the database is damaged: SQLite said" in raised.value.message
        with pytest.raises(StateError, match=r"state\.damaged"):  # and every read after it
            store.get(SCOPE, "k00001")
        assert len(found) == 1
        assert found[0] is store.damaged
    finally:
        store.close()


def test_accept_loss_keeps_an_intact_database_and_removes_the_marker(tmp_path: Path) -> None:
    with Store(tmp_path / "live" / "state.db") as store:
        fill(store, 300)
        copied = copy_without_checkpoint(store, tmp_path / "crashed", wal=False)
    done = accept_loss(copied)
    assert "removed" in done
    assert "is kept as it is" in done
    with Store(copied) as store:  # what was checkpointed, and a new marker
        assert store.revision() >= 0
    assert marker_path(copied).exists()


def test_accept_loss_moves_a_damaged_database_aside(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store(path) as store:
        fill(store, 3000)
    corrupt_middle_page(path)
    done = accept_loss(path)
    assert "moved" in done
    moved = tmp_path.glob("state.db.damaged-*")
    [aside] = [p for p in moved if not p.name.endswith(("-wal", "-shm"))]
    assert aside.stat().st_size > 0
    with Store(path) as store:
        assert store.revision() == 0


def test_a_file_that_is_not_sqlite_is_damaged_not_unavailable(tmp_path: Path) -> None:
    bad = tmp_path / "state.db"
    bad.write_bytes(b"this is not SQLite" * 300)
    with pytest.raises(StateDamaged, match="file is not a database"):
        Store(bad)
    with pytest.raises(sqlite3.DatabaseError):  # SQLite's own view of it, for the record
        sqlite3.connect(bad).execute("PRAGMA quick_check").fetchall()
