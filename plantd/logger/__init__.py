"""The log store: every plantd process's log records (published on ``log.<source>.<level>``)
kept in one SQLite file with retention by age and size, searched and followed over MDP
(``org.plantd.Logger``) and ``plant logs``.

See ``docs/observability.md``.
"""

from __future__ import annotations

from plantd.logger._logger import PREFIX, Logger, run_logger
from plantd.logger._service import SERVICE, logger_service
from plantd.logger._store import LogStore, level_number, query_records, to_row

__all__ = [
    "PREFIX",
    "SERVICE",
    "LogStore",
    "Logger",
    "level_number",
    "logger_service",
    "query_records",
    "run_logger",
    "to_row",
]
