"""The PostgreSQL sink against the machine's PostgreSQL (127.0.0.1:5432), through a TCP proxy
the test controls: "down" closes the proxy's listener and cuts every connection, "up" listens
again. Per-test tables with unique names, dropped afterwards. TimescaleDB: the hypertable path
is tested only where the extension exists; the plain indexed table everywhere."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import psycopg
import pytest

from plantd.testing import wait_for_workers
from tests.conftest import Stack
from tests.integration.sinks._helpers import (
    BusRecorder,
    TcpProxy,
    contiguous,
    counter_module,
    plant_json,
    plant_process,
    start_historian,
    start_sink,
    wait_until,
    write_file,
)

DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres"
OUTAGE = 15.0


def connect() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432 ({exc})")


@pytest.fixture
def tables() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    with connect() as conn:
        for name in names:
            conn.execute(f'DROP TABLE IF EXISTS public."{name}"')


def pg_sink(port: int, table: str, timescale: str = "auto") -> str:
    return f"""
type: postgres
reconnect_initial: 200ms
reconnect_max: 1s
queue: {{drain_rate: 5000}}
repair: {{timeout: 30s}}
events: []  # samples only here (tests/integration/sinks/test_events.py has the events)
postgres:
  dsn: "host=127.0.0.1 port={port} dbname=test user=postgres"
  table: {table}
  timescale: {timescale}
  connect_timeout: 2s
"""


def rows(table: str) -> list[tuple[str, int]]:
    with connect() as conn:
        return [(str(p), int(s)) for p, s in conn.execute(f"SELECT point, seq FROM {table}")]


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.stack(historian={"batch_interval": 0.5})
def test_postgres_down_then_up_loses_nothing(stack: Stack, tables: list[str]) -> None:
    connect().close()
    suffix = secrets.token_hex(4)
    plain, killed = f"plantd_test_plain_{suffix}", f"plantd_test_killed_{suffix}"
    tables += [plain, killed]
    proxy = TcpProxy(("127.0.0.1", 5432))
    stack.start_broker()
    recorder = BusRecorder(stack.settings["bus"]["backend"])
    try:
        start_historian(stack)
        write_file(stack, "sinks.d", "plain", pg_sink(proxy.port, plain))
        write_file(stack, "sinks.d", "killed", pg_sink(proxy.port, killed))
        start_sink(stack, "plain")
        killed_sink = start_sink(stack, "killed")
        time.sleep(0.5)
        write_file(stack, "modules.d", "flow", counter_module(10))
        module = plant_process(stack, "module-flow", "module", "run", "flow")
        wait_for_workers(stack.endpoint, "org.plantd.module.flow")
        assert wait_until(lambda: len(rows(killed)) > 200, 15)

        proxy.down()
        time.sleep(OUTAGE / 2)
        killed_sink.kill()
        time.sleep(3)
        killed_sink.start()
        wait_for_workers(stack.endpoint, "org.plantd.sink.killed")
        time.sleep(OUTAGE / 2 - 3)
        assert plant_json(stack, "sink", "status", "plain")["queue"]["entries"] > 500
        proxy.up()
        time.sleep(3)
        assert module.terminate() == 0
        published = recorder.keys()
        assert len(published) > 100 * OUTAGE

        for name, table in (("plain", plain), ("killed", killed)):
            complete = wait_until(lambda t=table: set(rows(t)) >= published, 30)
            stored = rows(table)
            status = plant_json(stack, "sink", "status", name)
            print(
                f"sink {name}: {len(published)} published, {len(stored)} rows, "
                f"{len(published - set(stored))} missing, counters {status['counters']}"
            )
            assert complete
            gaps = contiguous(set(stored))
            assert all(not missing for missing in gaps.values()), gaps  # no gap in any point
            assert len(stored) == len(set(stored))  # ON CONFLICT DO NOTHING: each row once
            assert (status["counters"]["dropped"], status["counters"]["lost"]) == (0, 0)
            assert status["upstream"]["hypertable"] is _timescale_installed()
        assert plant_json(stack, "sink", "status", "killed")["counters"]["repaired"] > 0
    finally:
        recorder.close()
        proxy.close()


def _timescale_installed() -> bool:
    with connect() as conn:
        return (
            conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
            is not None
        )


def test_the_plain_table_schema(stack: Stack, tables: list[str]) -> None:
    """Without TimescaleDB (``timescale: never`` here, whatever is installed): a plain table
    with the documented columns and the unique index on (point, epoch, seq, time)."""
    table = f"plantd_test_schema_{secrets.token_hex(4)}"
    tables.append(table)
    stack.start_broker()
    write_file(stack, "sinks.d", "pg", pg_sink(5432, table, timescale="never"))
    start_sink(stack, "pg")
    assert wait_until(lambda: plant_json(stack, "sink", "status", "pg")["connected"], 10)
    with connect() as conn:
        columns = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = %s ORDER BY ordinal_position",
            (table,),
        ).fetchall()
        index = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s", (table,)
        ).fetchone()
    assert columns == [
        ("time", "timestamp with time zone"), ("point", "text"), ("value", "double precision"),
        ("value_text", "text"), ("quality", "smallint"), ("epoch", "bigint"), ("seq", "bigint"),
        ("source", "text"),
    ]  # fmt: skip
    assert index is not None
    assert "UNIQUE INDEX" in index[0]
    assert '(point, epoch, seq, "time")' in index[0]


def test_the_hypertable_path(stack: Stack, tables: list[str]) -> None:
    if not _timescale_installed():
        pytest.skip("the timescaledb extension is not installed in database 'test'")
    table = f"plantd_test_hyper_{secrets.token_hex(4)}"
    tables.append(table)
    stack.start_broker()
    write_file(stack, "sinks.d", "pg", pg_sink(5432, table, timescale="require"))
    start_sink(stack, "pg")
    assert wait_until(lambda: plant_json(stack, "sink", "status", "pg")["connected"], 10)
    assert plant_json(stack, "sink", "status", "pg")["upstream"]["hypertable"] is True
