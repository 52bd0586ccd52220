"""The log store on real SQLite files: rows from records, filters, retention by age and by
size (a flood of 100,000 records into 1 MiB), and a full disk that does not stop it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from plantd.config import LoggerConfig
from plantd.logger import LogStore, level_number, query_records, to_row
from plantd.logger._store import BATCH_RECORDS, MAX_FIELDS, MAX_MESSAGE, Row, used_bytes
from plantd.telemetry import REGISTRY

T0 = 1_700_000_000.0
MiB = 1 << 20


def row(
    i: int,
    *,
    source: str = "module.boiler",
    level: str = "info",
    message: str | None = None,
    stamp: float | None = None,
) -> Row:
    return to_row(
        f"log.{source}.{level}",
        {
            "time": T0 + i if stamp is None else stamp,
            "level": level,
            "source": source,
            "logger": "plantd.module",
            "message": f"record {i}" if message is None else message,
            "unit": 3,
        },
        0.0,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LogStore]:
    store = LogStore(tmp_path / "logs.db", LoggerConfig(max_age=3600.0))
    yield store
    store.close()


def ids(records: list[dict[str, object]]) -> list[object]:
    return [r["id"] for r in records]


def test_a_row_takes_what_the_record_lacks_from_the_topic() -> None:
    complete = to_row(
        "log.state.warning",
        {"time": T0, "level": "WARNING", "source": "state", "logger": "plantd.state",
         "message": "slow commit", "seconds": 1.5, "exc": "Traceback…"},
        1.0,
    )  # fmt: skip
    assert complete == (
        T0, "state", 2, "plantd.state", "slow commit", '{"exc": "Traceback…", "seconds": 1.5}',
    )  # fmt: skip
    sparse = to_row("log.module.pump1.error", {"time": "yesterday", "level": "loud"}, 5.0)
    assert sparse == (5.0, "module.pump1", 3, "", "", "{}")
    # A lone surrogate (from a JSON "\ud800") could not be stored in SQLite: it is replaced.
    odd = to_row("log.x.info", {"message": "bad \ud800 text", "key": "\udfff"}, 5.0)
    assert odd[4] == "bad ? text"
    assert json.loads(odd[5]) == {"key": "?"}
    huge = to_row("log.x.info", {"message": "m" * 100_000, "exc": "e" * 200_000, "n": 1}, 5.0)
    assert huge[4].startswith("m" * MAX_MESSAGE)
    assert huge[4].endswith(f"… ({100_000 - MAX_MESSAGE} more)")
    assert len(huge[5]) < MAX_FIELDS + 100
    assert json.loads(huge[5])["n"] == 1
    assert [level_number(n) for n in ("debug", "Warn", "FATAL", "nope")] == [0, 2, 4, None]


def test_query_filters(store: LogStore) -> None:
    rows = [row(i, source=("module.boiler", "module.boiler2", "state")[i % 3],
                level=("debug", "info", "warning", "error")[i % 4],
                message=f"record {i}" + (" 100% done_x" if i % 5 == 0 else ""))
            for i in range(60)]  # fmt: skip
    assert store.write(rows) == 60

    def query(**filters: object) -> list[dict[str, object]]:
        return store.read_now(lambda conn: query_records(conn, **filters))  # type: ignore[arg-type,no-any-return]

    newest_first = query(limit=3)
    assert ids(newest_first) == [60, 59, 58]
    assert newest_first[0] == {
        "id": 60, "time": T0 + 59, "source": "state", "level": "error",
        "logger": "plantd.module", "message": "record 59", "fields": {"unit": 3},
    }  # fmt: skip
    assert {r["source"] for r in query(source="module.boiler")} == {"module.boiler"}
    assert {r["source"] for r in query(source="module.")} == {"module.boiler", "module.boiler2"}
    assert {r["source"] for r in query(source="module")} == {"module.boiler", "module.boiler2"}
    assert query(source="modul") == []  # a name, not a prefix, without the dot
    assert {r["level"] for r in query(level=2)} == {"warning", "error"}
    assert len(query(contains="100% DONE_x")) == 12  # % and _ are literal, any case
    assert query(contains="100_") == []
    assert ids(query(since=T0 + 10, until=T0 + 13)) == [13, 12, 11]
    assert ids(query(after_id=55)) == [56, 57, 58, 59, 60]  # following: oldest first
    assert ids(query(after_id=50, limit=2)) == [51, 52]
    assert ids(query(before_id=4)) == [3, 2, 1]
    assert ids(query(after_id=10, before_id=14)) == [11, 12, 13]
    assert ids(query(source="state", level=3, contains="record 1")) == [12]


def test_retention_by_age_uses_the_clock(tmp_path: Path) -> None:
    now = [T0 + 100.0]
    store = LogStore(tmp_path / "logs.db", LoggerConfig(max_age=60.0), clock=lambda: now[0])
    try:
        store.write([row(i) for i in range(100)])  # T0 … T0+99
        pruned = REGISTRY.get_sample_value("plantd_logger_records_pruned_total") or 0.0
        assert store.prune() == 40  # older than T0+40
        assert store.prune() == 0
        now[0] += 30.0
        assert store.prune() == 30
        assert store.prune(now=T0 + 1000.0) == 30
        assert store.read_now(query_records) == []
        assert REGISTRY.get_sample_value("plantd_logger_records_pruned_total") == pruned + 100
        assert store.stats.pruned_by_age == 100
        # ids are never reused: a follower's after_id stays right after everything went.
        store.write([row(200)])
        assert ids(store.read_now(query_records)) == [101]
    finally:
        store.close()


@pytest.mark.slow
def test_a_flood_keeps_the_file_within_max_bytes(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    store = LogStore(path, LoggerConfig(max_bytes=MiB))
    stored = REGISTRY.get_sample_value("plantd_logger_records_total", {"level": "warning"})
    pruned = REGISTRY.get_sample_value("plantd_logger_records_pruned_total") or 0.0
    message = "poll of group fast failed: timeout after 0.5 s talking to unit 3 on /dev/ttyUSB0"
    try:
        empty = store.read_now(used_bytes)
        batch_bytes = 0
        largest = 0
        for number in range(100):
            first = number * BATCH_RECORDS
            batch = [
                row(i, level="warning", message=f"{message} #{i}")
                for i in range(first, first + BATCH_RECORDS)
            ]
            assert store.write(batch) == BATCH_RECORDS
            if number == 0:
                batch_bytes = store.read_now(used_bytes) - empty  # one batch worth
            largest = max(largest, path.stat().st_size)
        assert largest <= MiB + batch_bytes, (largest, batch_bytes)
        assert store.stats.used_bytes <= MiB
        assert store.stats.stored == 100_000
        held = store.read_now(lambda conn: conn.execute("SELECT count(*) FROM records").fetchone())
        assert store.stats.pruned_by_size == 100_000 - held[0]
        assert held[0] > 1000  # the newest are there, and plenty of them
        newest = store.read_now(lambda conn: query_records(conn, limit=1))[0]
        assert newest["id"] == 100_000
        assert (
            REGISTRY.get_sample_value("plantd_logger_records_total", {"level": "warning"})
            == (stored or 0.0) + 100_000
        )
        assert REGISTRY.get_sample_value("plantd_logger_records_pruned_total") == pruned + (
            100_000 - held[0]
        )
        database_bytes = REGISTRY.get_sample_value("plantd_logger_database_bytes")
        assert database_bytes is not None
        assert database_bytes <= MiB
    finally:
        store.close()
    assert path.stat().st_size <= MiB + batch_bytes


def test_a_full_disk_loses_the_batch_and_the_store_goes_on(store: LogStore) -> None:
    store.write([row(i) for i in range(1000)])
    pages = store.read_now(lambda conn: conn.execute("PRAGMA page_count").fetchone()[0])
    # SQLITE_FULL, as on a full disk: the file may not grow past where it is now.
    store._writer.call(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages + 2}"))
    assert store.write([row(i, message="x" * 200) for i in range(1000, 3000)]) == 0
    assert (store.stats.failed_batches, store.stats.lost) == (1, 2000)
    assert "full" in (store.stats.last_error or "")
    # The oldest tenth went to make room; a batch that fits is stored again.
    assert store.write([row(5000)]) == 1
    assert store.stats.last_error is None
    held = store.read_now(lambda conn: query_records(conn, limit=10_000))
    assert ids(held)[:1] == [1001]  # a rolled-back batch takes no ids
    assert len(held) == 1 + 1000 - store.stats.pruned_by_size


def test_an_unstorable_row_costs_its_batch_only(store: LogStore) -> None:
    bad: Row = (T0, "x", 1, "l", {"not": "text"}, "{}")  # type: ignore[assignment]
    assert store.write([row(1), bad]) == 0
    assert store.write([row(2)]) == 1
    assert [r["message"] for r in store.read_now(query_records)] == ["record 2"]


def test_reopening_keeps_records_and_incremental_vacuum(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    store = LogStore(path, LoggerConfig())
    store.write([row(1)])
    store.close()
    store = LogStore(path, LoggerConfig())
    try:
        assert store.write([row(2)]) == 1
        assert ids(store.read_now(query_records)) == [2, 1]
    finally:
        store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    finally:
        conn.close()
