"""Logging: configured once per process, at its entry point, to stdout.

Library code only fetches a logger (``logging.getLogger(__name__)``); it never configures one.
journald picks stdout up when plantd runs under systemd, so records carry no timestamp there
(journald adds its own) unless asked for.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Literal, TextIO

__all__ = ["JsonFormatter", "configure_logging"]

LogFormat = Literal["text", "json"]

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_JOURNAL_TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"

_configured = False


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message and any ``extra`` fields."""

    _STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._STANDARD:
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(
    level: str = "info",
    fmt: LogFormat = "text",
    *,
    stream: TextIO | None = None,
    under_journal: bool = False,
) -> None:
    """Configure the root logger once; later calls only adjust the level.

    ``under_journal`` drops the timestamp from text records (journald stamps them itself).
    """
    global _configured
    root = logging.getLogger()
    root.setLevel(level.upper())
    if _configured:
        return
    handler = logging.StreamHandler(stream or sys.stdout)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(_JOURNAL_TEXT_FORMAT if under_journal else _TEXT_FORMAT)
        )
    root.handlers[:] = [handler]
    _configured = True
