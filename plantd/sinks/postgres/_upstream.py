"""The PostgreSQL / TimescaleDB upstream (psycopg 3): batches by COPY, idempotent inserts.

Schema (created if missing, in ``postgres.schema``; docs/sinks.md shows it):

    CREATE TABLE <table> (
        time timestamptz NOT NULL,       -- the sample's source timestamp
        point text NOT NULL,             -- module.point
        value double precision,          -- numbers and booleans (1/0); NULL otherwise
        value_text text,                 -- text, JSON arrays/objects; NULL for numbers
        quality smallint NOT NULL,       -- 0 good, 1 uncertain, 2 bad
        epoch bigint NOT NULL,           -- the publisher's epoch and per-topic seq
        seq bigint NOT NULL,
        source text NOT NULL             -- postgres.source, default the sink's name
    );
    CREATE UNIQUE INDEX <table>_key ON <table> (point, epoch, seq, time);

With TimescaleDB installed in the database (``timescale: auto``), the table is made a
hypertable on ``time``; otherwise it stays a plain table with that index (which also serves
queries by point and time). A delivery batch (every sample of it, live and backlog) is
COPied into a temporary table in one COPY and moved with ``INSERT … ON CONFLICT DO NOTHING``
in one transaction: a batch sent again after a lost COMMIT acknowledgement adds nothing, so
the table holds each sample once; how many rows were already there is reported as duplicates.

Event records (the sink's ``events`` key) go to ``postgres.events_table``, one row each:

    CREATE TABLE <events_table> (
        time timestamptz NOT NULL,       -- the record's ``time``, else when the sink queued it
        topic text NOT NULL,             -- event.alarm.<alarm>
        kind text NOT NULL,              -- alarm (the topic's second part)
        subject text NOT NULL,           -- <alarm> (the rest)
        seq bigint,                      -- the record's ``seq``, if it has one
        fields jsonb NOT NULL,           -- the whole record
        source text NOT NULL,
        digest text NOT NULL             -- sha256 of the record's canonical JSON
    );
    CREATE UNIQUE INDEX <events_table>_key ON <events_table> (source, topic, time, digest);

inserted with ``ON CONFLICT DO NOTHING`` in one transaction per delivery: a record sent again
is the same row, so it is stored once (and counted as a duplicate). A plain table always
(events are few; no hypertable).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from plantd.sinks import Outgoing, OutgoingEvent, UpstreamUnavailable, event_json, split_topic
from plantd.sinks.postgres._config import PostgresSinkConfig

__all__ = ["PostgresUpstream"]

log = logging.getLogger(__name__)

_COLUMNS = ("time", "point", "value", "value_text", "quality", "epoch", "seq", "source")
_STAGING = "plantd_staging"


class PostgresUpstream:
    def __init__(self, sink: PostgresSinkConfig) -> None:
        self.sink = sink
        self.settings = sink.postgres
        self.source = self.settings.source or sink.name
        self._password: str | None = None
        if self.settings.password_file is not None:
            self._password = self.settings.password_file.read_text().strip()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.hypertable: bool | None = None
        self.connects = 0
        self.rows = 0
        self.event_rows = 0
        self._points: dict[str, str] = {}  # bus topic -> "module.point"
        columns = sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
        self._copy = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(_STAGING), columns)
        self._move = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
            self.table, columns, columns, sql.Identifier(_STAGING)
        )

    @property
    def events_table(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(
            sql.Identifier(self.settings.schema), sql.Identifier(self.settings.events_table)
        )

    @property
    def table(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(
            sql.Identifier(self.settings.schema), sql.Identifier(self.settings.table)
        )

    async def connect(self) -> None:
        settings = self.settings
        extra: dict[str, Any] = {"connect_timeout": max(1, int(settings.connect_timeout))}
        if self._password is not None:
            extra["password"] = self._password
        try:
            conn = await psycopg.AsyncConnection.connect(
                settings.dsn, autocommit=False, application_name=f"plantd-sink-{self.sink.name}",
                **extra,
            )  # fmt: skip
        except psycopg.Error as exc:
            raise UpstreamUnavailable(f"PostgreSQL: {_first_line(exc)}") from exc
        try:
            await self._prepare(conn)
        except psycopg.Error as exc:
            await conn.close()
            raise UpstreamUnavailable(f"PostgreSQL: {_first_line(exc)}") from exc
        self._conn = conn
        self.connects += 1

    async def _prepare(self, conn: psycopg.AsyncConnection[Any]) -> None:
        settings = self.settings
        async with conn.transaction():
            await conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (time timestamptz NOT NULL, "
                    "point text NOT NULL, value double precision, value_text text, "
                    "quality smallint NOT NULL, epoch bigint NOT NULL, seq bigint NOT NULL, "
                    "source text NOT NULL)"
                ).format(self.table)
            )
            await conn.execute(
                sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} (point, epoch, seq, time)")
                .format(sql.Identifier(f"{settings.table}_key"), self.table)
            )  # fmt: skip
            cursor = await conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
            installed = await cursor.fetchone() is not None
            if settings.timescale == "require" and not installed:
                raise psycopg.errors.FeatureNotSupported(
                    "timescale: require, but the timescaledb extension is not installed in the "
                    "database (CREATE EXTENSION timescaledb)"
                )
            if installed and settings.timescale != "never":
                await conn.execute(
                    "SELECT create_hypertable(%s, 'time', if_not_exists => TRUE, "
                    "migrate_data => TRUE)",
                    (f"{settings.schema}.{settings.table}",),
                )
            self.hypertable = installed and settings.timescale != "never"
            if self.sink.events:
                await self._prepare_events(conn)
            await conn.execute(
                sql.SQL(
                    "CREATE TEMPORARY TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS"
                ).format(sql.Identifier(_STAGING), self.table)
            )

    async def _prepare_events(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """The events table and its unique index (only for a sink that forwards events)."""
        settings = self.settings
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (time timestamptz NOT NULL, "
                "topic text NOT NULL, kind text NOT NULL, subject text NOT NULL, seq bigint, "
                "fields jsonb NOT NULL, source text NOT NULL, digest text NOT NULL)"
            ).format(self.events_table)
        )
        await conn.execute(
            sql.SQL(
                "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} (source, topic, time, digest)"
            ).format(sql.Identifier(f"{settings.events_table}_key"), self.events_table)
        )

    async def deliver(self, batch: Sequence[Outgoing]) -> int:
        conn = self._conn
        if conn is None or conn.closed:
            raise UpstreamUnavailable("PostgreSQL: not connected")
        rows = [self._row(item) for item in batch]
        try:
            async with conn.transaction(), conn.cursor() as cursor:
                async with cursor.copy(self._copy) as copy:
                    write = copy.write_row
                    for row in rows:
                        await write(row)
                await cursor.execute(self._move)
                inserted = max(cursor.rowcount, 0)
        except psycopg.Error as exc:
            raise UpstreamUnavailable(f"PostgreSQL: {_first_line(exc)}") from exc
        self.rows += inserted
        return len(batch) - inserted

    async def deliver_events(self, events: Sequence[OutgoingEvent]) -> int:
        """Insert event records in one transaction (idempotent); returns those already there."""
        conn = self._conn
        if conn is None or conn.closed:
            raise UpstreamUnavailable("PostgreSQL: not connected")
        insert = sql.SQL(
            "INSERT INTO {} (time, topic, kind, subject, seq, fields, source, digest) "
            "VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s) ON CONFLICT DO NOTHING"
        ).format(self.events_table)
        inserted = 0
        try:
            async with conn.transaction(), conn.cursor() as cursor:
                for event in events:
                    await cursor.execute(insert, self._event_row(event))
                    inserted += max(cursor.rowcount, 0)
        except psycopg.Error as exc:
            raise UpstreamUnavailable(f"PostgreSQL: {_first_line(exc)}") from exc
        self.event_rows += inserted
        return len(events) - inserted

    def _event_row(self, event: OutgoingEvent) -> tuple[Any, ...]:
        fields = event.fields
        when = fields.get("time")
        if not (isinstance(when, int | float) and not isinstance(when, bool)) or not (
            math.isfinite(when) and 0 <= when < 253e9  # what a datetime holds
        ):
            when = event.queued
        seq = fields.get("seq")
        if not (type(seq) is int and -(2**63) <= seq < 2**63):
            seq = None
        _, _, rest = event.topic.partition(".")
        kind, _, subject = rest.partition(".")
        text = event_json(fields)
        canonical = json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        stamp = dt.datetime.fromtimestamp(when, dt.UTC)
        return (stamp, event.topic, kind, subject, seq, text, self.source, digest)

    def _row(self, item: Outgoing) -> tuple[Any, ...]:
        sample = item.sample
        point = self._points.get(item.topic)
        if point is None:
            module, name = split_topic(item.topic)
            point = self._points[item.topic] = f"{module}.{name}"
        value = sample.value
        number: float | None = None
        text: str | None = None
        if type(value) is float:  # the common case first
            number = value
        elif isinstance(value, bool):
            number = 1.0 if value else 0.0
        elif isinstance(value, int | float) and not (isinstance(value, int) and abs(value) > 2**53):
            number = float(value)
        elif isinstance(value, str):
            text = value
        elif value is not None:
            text = json.dumps(value, separators=(",", ":"))
        stamp = dt.datetime.fromtimestamp(sample.timestamp, dt.UTC)
        return (
            stamp, point, number, text, int(sample.quality), sample.epoch, sample.seq,
            self.source,
        )  # fmt: skip

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except psycopg.Error:
                log.debug("sink %s: close failed", self.sink.name, exc_info=True)

    def status(self) -> dict[str, Any]:
        return {
            "table": f"{self.settings.schema}.{self.settings.table}",
            "hypertable": self.hypertable,
            "connected": self._conn is not None and not self._conn.closed,
            "connects": self.connects,
            "rows_inserted": self.rows,
            "events_table": f"{self.settings.schema}.{self.settings.events_table}",
            "event_rows_inserted": self.event_rows,
        }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
