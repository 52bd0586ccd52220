"""Logging: configured once per process, at its entry point, to stdout — or to the journal.

Library code only fetches a logger (``logging.getLogger(__name__)``); it never configures one.
journald picks stdout up when plantd runs under systemd, so records carry no timestamp there
(journald adds its own) unless asked for.

Under journald (``JOURNAL_STREAM`` set: ``under_journal``) with ``systemd.journal`` importable
(Debian's python3-systemd; the appliance image has it), records go to the journal natively
instead: each with its PRIORITY (so ``journalctl -p warning`` works), LOGGER, CODE_* fields and
the process's own fields such as ``PLANTD_SERVICE=state`` or ``PLANTD_MODULE=boiler``
(``journalctl PLANTD_MODULE=boiler``). Without the package, stdout as before.

A record's structured fields — what ``extra=`` (or a filter) put on it — travel with it
everywhere: as JSON keys with ``format: json``, as native journal fields named
``PLANTD_<NAME>`` under journald (``extra={"point": "t1"}`` → ``PLANTD_POINT=t1``, so
``journalctl PLANTD_POINT=t1`` finds it; :func:`journal_field`), and on the bus
(:mod:`plantd.telemetry`, :func:`record_fields`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Literal, TextIO

__all__ = [
    "JsonFormatter",
    "configure_logging",
    "journal_extras",
    "journal_field",
    "journal_fields",
    "record_fields",
]

LogFormat = Literal["text", "json"]

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_JOURNAL_TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"
_NATIVE_JOURNAL_FORMAT = "%(name)s: %(message)s"  # the level is the record's PRIORITY there

_configured = False

# What every LogRecord has; anything else on a record is a structured field of it.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_JOURNAL_PREFIX = "PLANTD_"
_JOURNAL_INVALID = re.compile(r"[^A-Z0-9_]", re.ASCII)
_JOURNAL_NAME_MAX = 64  # journald ignores longer field names


def record_fields(record: logging.LogRecord) -> dict[str, object]:
    """The structured fields of ``record``: the attributes ``extra=`` or a filter put on it
    (``point``, ``unit``…). One a filter named as its journal field (``PLANTD_MODULE``) is
    given its plain name (``module``), so that JSON logs and the bus say ``module`` as the
    journal says ``PLANTD_MODULE``."""
    return {
        key.removeprefix(_JOURNAL_PREFIX).lower() if key.startswith(_JOURNAL_PREFIX) else key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD
    }


def journal_field(name: str) -> str | None:
    """The journal field a structured field goes out as: ``point`` → ``PLANTD_POINT``,
    ``error-code`` → ``PLANTD_ERROR_CODE``; a name that is one already (``PLANTD_MODULE``)
    stays. None for a name journald would not take (too long)."""
    if name.startswith(_JOURNAL_PREFIX) and not _JOURNAL_INVALID.search(name):
        field = name
    else:
        field = _JOURNAL_PREFIX + _JOURNAL_INVALID.sub("_", name.upper())
    return field if len(field) <= _JOURNAL_NAME_MAX else None


def journal_extras(record: logging.LogRecord) -> dict[str, str]:
    """``record``'s structured fields as journal fields (:func:`journal_field`), values as text."""
    extras: dict[str, str] = {}
    for key, value in record_fields(record).items():
        field = journal_field(key)
        if field is not None:
            extras[field] = value if isinstance(value, str) else str(value)
    return extras


def journal_record(record: logging.LogRecord) -> logging.LogRecord:
    """A copy of ``record`` for python-systemd's JournalHandler, whose structured fields are
    journal fields (:func:`journal_extras`) instead.

    The JournalHandler of python-systemd ≥ 234 sends every attribute of a record as a field;
    journald drops lower-case names (``point``) silently, and a value that is not text may
    fail to encode. So the copy carries ``PLANTD_POINT="t1"`` and no ``point``.
    """
    attributes = {k: v for k, v in record.__dict__.items() if k in _STANDARD}
    attributes.update(journal_extras(record))
    return logging.makeLogRecord(attributes)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(record_fields(record))
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def journal_fields(argv: Sequence[str]) -> dict[str, str]:
    """The fields that name a plantd process in the journal, from its command line.

    ``plantd-broker`` → ``PLANTD_SERVICE=broker``; ``plant … module run NAME`` →
    ``PLANTD_SERVICE=module``, ``PLANTD_MODULE=NAME`` (likewise ``sink run NAME``). The
    ``SYSLOG_IDENTIFIER`` (what ``journalctl`` shows before each line) is the program's name,
    or ``plantd-module@NAME`` as the unit is called.
    """
    program = os.path.basename(argv[0]) if argv else ""
    if program.startswith("plantd-"):
        return {"SYSLOG_IDENTIFIER": program, "PLANTD_SERVICE": program.removeprefix("plantd-")}
    words = [word for word in argv[1:] if not word.startswith("-")]
    for kind in ("module", "sink"):
        if kind in words:
            rest = words[words.index(kind) + 1 :]
            if len(rest) >= 2 and rest[0] == "run":
                return {
                    "SYSLOG_IDENTIFIER": f"plantd-{kind}@{rest[1]}",
                    "PLANTD_SERVICE": kind,
                    f"PLANTD_{kind.upper()}": rest[1],
                }
    return {"SYSLOG_IDENTIFIER": program or "plant", "PLANTD_SERVICE": program or "plant"}


def _journal_handler(fields: Mapping[str, str]) -> logging.Handler | None:
    try:
        from systemd.journal import JournalHandler  # type: ignore[import-not-found]
    except ImportError:
        return None

    class _PlantdJournalHandler(JournalHandler):  # type: ignore[misc]
        """Sends a record's structured fields as ``PLANTD_*`` journal fields; the text is
        the original record's (``format: json`` shows ``"point"``, as on stdout)."""

        _original: logging.LogRecord | None = None

        def emit(self, record: logging.LogRecord) -> None:
            self._original = record  # emit runs under the handler's lock: one at a time
            try:
                super().emit(journal_record(record))
            finally:
                self._original = None

        def format(self, record: logging.LogRecord) -> str:
            text: str = super().format(self._original or record)
            return text

    handler: logging.Handler = _PlantdJournalHandler(**fields)
    return handler


class _StreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler for a process whose stdout may be a pipe (``plant sim run | head``):
    once its reader is gone, records go to /dev/null and the process is asked to stop
    (SIGTERM, an orderly stop), as SIGPIPE would end a program that does not ignore it —
    instead of a "Logging error" traceback at every record while it runs on."""

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, BrokenPipeError):
            super().handleError(record)
            return
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        if not self._reader_gone:
            self._reader_gone = True
            os.kill(os.getpid(), signal.SIGTERM)

    _reader_gone = False


def configure_logging(
    level: str = "info",
    fmt: LogFormat = "text",
    *,
    stream: TextIO | None = None,
    under_journal: bool = False,
    fields: Mapping[str, str] | None = None,
    filters: Sequence[logging.Filter] = (),
) -> None:
    """Configure the root logger once; later calls only adjust the level (and add ``filters``).

    ``under_journal`` sends records to the journal natively when ``systemd.journal`` is
    importable, with ``fields`` on each (default: :func:`journal_fields` of ``sys.argv``), and
    otherwise drops the timestamp from text records (journald stamps them itself). ``filters``
    go on the root's handlers, to add fields to records (the module host's ``PLANTD_MODULE``).
    """
    root = logging.getLogger()
    root.setLevel(level.upper())
    if not _configured:
        _configure_root(root, fmt, stream=stream, under_journal=under_journal, fields=fields)
    for handler in root.handlers:
        for record_filter in filters:
            handler.addFilter(record_filter)


def _configure_root(
    root: logging.Logger,
    fmt: LogFormat,
    *,
    stream: TextIO | None,
    under_journal: bool,
    fields: Mapping[str, str] | None,
) -> None:
    global _configured
    handler: logging.Handler | None = None
    if under_journal and stream is None:
        handler = _journal_handler(journal_fields(sys.argv) if fields is None else fields)
    if handler is not None:
        text_format = _NATIVE_JOURNAL_FORMAT
    else:
        handler = _StreamHandler(stream or sys.stdout)
        text_format = _JOURNAL_TEXT_FORMAT if under_journal else _TEXT_FORMAT
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(text_format))
    root.handlers[:] = [handler]
    _configured = True
