"""The ``postgres:`` section of a PostgreSQL sink file (``type: postgres``); every key is in
docs/sinks.md."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from plantd.config import Check, Duration, Gt, KeyPath
from plantd.sinks._config import SinkConfig

__all__ = ["PostgresConfig", "PostgresSinkConfig"]

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}", re.ASCII)


def _identifier_problem(text: str) -> str | None:
    if _IDENTIFIER.fullmatch(text):
        return None
    return f"expected a lower-case SQL identifier (letters, digits, '_'), got {text!r}"


@dataclass(frozen=True, kw_only=True)
class PostgresConfig:
    dsn: str = "host=127.0.0.1 port=5432 dbname=plantd"
    """A libpq connection string (``host=… port=… dbname=… user=…``) or a URI."""
    password_file: Path | None = None
    schema: Annotated[str, Check(_identifier_problem)] = "public"
    table: Annotated[str, Check(_identifier_problem)] = "plantd_samples"
    events_table: Annotated[str, Check(_identifier_problem)] = "plantd_events"
    """Where event records go (the sink's ``events`` key), one row each."""
    timescale: Literal["auto", "require", "never"] = "auto"
    """``auto``: a hypertable if the timescaledb extension is installed in the database;
    ``require``: refuse to run without it; ``never``: a plain table even with it."""
    source: str | None = None
    """The ``source`` column of every row; default: the sink's name."""
    connect_timeout: Annotated[float, Duration, Gt(0)] = 10.0

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if self.events_table == self.table:
            yield ("events_table",), "must differ from table (samples and events have their own)"


@dataclass(frozen=True, kw_only=True)
class PostgresSinkConfig(SinkConfig):
    type: Literal["postgres"]
    postgres: PostgresConfig = field(default_factory=PostgresConfig)
