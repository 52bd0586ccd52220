"""``plantd.logs.configure_logging``: the one place a process sets up logging."""

from __future__ import annotations

import io
import json
import logging
import sys
import types
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from plantd import logs
from plantd.testing import capture_logs


@pytest.fixture
def fresh_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setattr(logs, "_configured", False)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class Tag(logging.Filter):
    """Adds a field to every record, as the module host's ModuleLogField does."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.tag = "boiler"
        return True


@pytest.mark.usefixtures("fresh_logging")
def test_filters_go_on_the_handlers_and_add_their_fields() -> None:
    out = io.StringIO()
    logs.configure_logging("info", "json", stream=out, filters=[Tag()])
    logging.getLogger("plantd.test").info("hello")
    assert '"tag": "boiler"' in out.getvalue()


@pytest.mark.usefixtures("fresh_logging")
def test_a_second_call_keeps_the_handler_and_sets_the_level() -> None:
    first, second = io.StringIO(), io.StringIO()
    logs.configure_logging("info", "text", stream=first)
    logs.configure_logging("warning", "json", stream=second)
    log = logging.getLogger("plantd.test")
    log.info("not shown")
    log.warning("shown")
    assert "shown" in first.getvalue()
    assert "not shown" not in first.getvalue()
    assert second.getvalue() == ""


# Structured fields: ``extra=`` on a record, everywhere it goes.


@pytest.mark.parametrize(
    ("name", "field"),
    [("point", "PLANTD_POINT"), ("unit", "PLANTD_UNIT"), ("error-code", "PLANTD_ERROR_CODE"),
     ("PLANTD_MODULE", "PLANTD_MODULE"), ("Plantd_x", "PLANTD_PLANTD_X"),
     ("größe", "PLANTD_GR_SSE"), ("x" * 57, "PLANTD_" + "X" * 57), ("x" * 58, None)],
)  # fmt: skip
def test_journal_field_names(name: str, field: str | None) -> None:
    assert logs.journal_field(name) == field


def test_a_record_for_the_journal_carries_its_fields_as_plantd_fields() -> None:
    record = logging.makeLogRecord(
        {"msg": "t=%s", "args": (1,), "levelno": 30, "point": "t1", "unit": 3,
         "PLANTD_MODULE": "boiler"}
    )  # fmt: skip
    assert logs.record_fields(record) == {"point": "t1", "unit": 3, "module": "boiler"}
    assert logs.journal_extras(record) == {
        "PLANTD_POINT": "t1", "PLANTD_UNIT": "3", "PLANTD_MODULE": "boiler",
    }  # fmt: skip
    copy = logs.journal_record(record)
    assert copy.__dict__["PLANTD_POINT"] == "t1"
    assert "point" not in copy.__dict__  # journald would drop a lower-case name anyway
    assert copy.getMessage() == "t=1"
    assert (copy.levelno, copy.name, copy.lineno) == (record.levelno, record.name, record.lineno)


class JournalLike(logging.Handler):
    """What python-systemd ≥ 234's JournalHandler does: every attribute of the record is a
    field of the entry (journald keeps the valid names)."""

    sent: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def __init__(self, **fields: str) -> None:
        super().__init__()
        self.fields = fields

    def emit(self, record: logging.LogRecord) -> None:
        valid = {k: v for k, v in record.__dict__.items() if k.isupper()}
        JournalLike.sent.append((self.format(record), {**self.fields, **valid}))


@pytest.mark.usefixtures("fresh_logging")
def test_under_journald_extras_are_native_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    package: Any = types.ModuleType("systemd")
    journal: Any = types.ModuleType("systemd.journal")
    journal.JournalHandler = JournalLike
    package.journal = journal
    monkeypatch.setitem(sys.modules, "systemd", package)
    monkeypatch.setitem(sys.modules, "systemd.journal", journal)
    JournalLike.sent.clear()
    logs.configure_logging("info", "json", under_journal=True, fields={"PLANTD_SERVICE": "m"})
    logging.getLogger("plantd.test").warning("hot", extra={"point": "t1", "unit": 3})
    ((text, fields),) = JournalLike.sent
    assert fields["PLANTD_POINT"] == "t1"
    assert fields["PLANTD_UNIT"] == "3"
    assert fields["PLANTD_SERVICE"] == "m"
    assert '"point": "t1"' in text  # the JSON text is the record's own, as on stdout


def test_capture_logs_collects_records_with_their_fields() -> None:
    log = logging.getLogger("plantd.test.capture")
    with capture_logs("info", "plantd.test") as records:
        log.debug("not this")
        log.info("read %d points", 4, extra={"device": "x", "point": "t1"})
    assert records == [
        {"level": "info", "logger": "plantd.test.capture", "message": "read 4 points",
         "point": "t1", "device": "x"},
    ]  # fmt: skip


def test_json_logs_name_the_module_as_the_bus_does() -> None:
    record = logging.makeLogRecord(
        {"msg": "connected", "levelno": 20, "levelname": "INFO", "PLANTD_MODULE": "boiler"}
    )
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["module"] == "boiler"
    assert "PLANTD_MODULE" not in line
