"""plantd.logs under journald: native records through systemd.journal.JournalHandler when the
package is importable (a stand-in here: it has no wheels; the image test sees the real one),
with the fields that name the process; stdout as before otherwise."""

from __future__ import annotations

import io
import logging
import sys
import types
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from plantd import logs


class FakeJournalHandler(logging.Handler):
    instances: ClassVar[list[FakeJournalHandler]] = []

    def __init__(self, **fields: str) -> None:
        super().__init__()
        self.fields = fields
        self.records: list[tuple[str, int]] = []
        FakeJournalHandler.instances.append(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((self.format(record), record.levelno))


@pytest.fixture
def fresh_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setattr(logs, "_configured", False)
    FakeJournalHandler.instances.clear()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def journal_package(monkeypatch: pytest.MonkeyPatch) -> None:
    package = types.ModuleType("systemd")
    journal: Any = types.ModuleType("systemd.journal")
    journal.JournalHandler = FakeJournalHandler
    package.journal = journal  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "systemd", package)
    monkeypatch.setitem(sys.modules, "systemd.journal", journal)


@pytest.mark.parametrize(
    ("argv", "fields"),
    [
        (["/opt/plantd/venv/bin/plantd-broker", "--config", "/etc/plantd"],
         {"SYSLOG_IDENTIFIER": "plantd-broker", "PLANTD_SERVICE": "broker"}),
        (["/opt/plantd/venv/bin/plantd-state"],
         {"SYSLOG_IDENTIFIER": "plantd-state", "PLANTD_SERVICE": "state"}),
        (["/opt/plantd/venv/bin/plant", "--config", "/etc/plantd", "module", "run", "boiler"],
         {"SYSLOG_IDENTIFIER": "plantd-module@boiler", "PLANTD_SERVICE": "module",
          "PLANTD_MODULE": "boiler"}),
        (["plant", "--json", "sink", "run", "upstream"],
         {"SYSLOG_IDENTIFIER": "plantd-sink@upstream", "PLANTD_SERVICE": "sink",
          "PLANTD_SINK": "upstream"}),
        (["plant", "serve", "echo"], {"SYSLOG_IDENTIFIER": "plant", "PLANTD_SERVICE": "plant"}),
    ],
)  # fmt: skip
def test_journal_fields_name_the_process(argv: list[str], fields: dict[str, str]) -> None:
    assert logs.journal_fields(argv) == fields


@pytest.mark.usefixtures("fresh_logging", "journal_package")
def test_under_journald_records_go_to_the_journal_natively(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "argv", ["/opt/plantd/venv/bin/plantd-state"])
    logs.configure_logging("info", "text", under_journal=True)
    logging.getLogger("plantd.state").warning("disk %s", "full")
    (handler,) = FakeJournalHandler.instances
    assert handler.fields == {"SYSLOG_IDENTIFIER": "plantd-state", "PLANTD_SERVICE": "state"}
    # The level travels as the record's priority; the text says who and what.
    assert handler.records == [("plantd.state: disk full", logging.WARNING)]


@pytest.mark.usefixtures("fresh_logging", "journal_package")
def test_explicit_fields_and_json() -> None:
    logs.configure_logging("debug", "json", under_journal=True, fields={"PLANTD_SERVICE": "x"})
    logging.getLogger("plantd.x").debug("hello", extra={"point": "level"})
    (handler,) = FakeJournalHandler.instances
    assert handler.fields == {"PLANTD_SERVICE": "x"}
    text, level = handler.records[0]
    assert '"message": "hello"' in text
    assert '"point": "level"' in text
    assert level == logging.DEBUG


@pytest.mark.usefixtures("fresh_logging")
def test_without_the_package_stdout_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "systemd.journal", None)  # import fails
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    logs.configure_logging("info", "text", under_journal=True)
    logging.getLogger("plantd.broker").info("ready")
    assert stream.getvalue() == "INFO plantd.broker: ready\n"  # no timestamp: journald's


@pytest.mark.usefixtures("fresh_logging", "journal_package")
def test_not_under_journald_stdout_with_timestamps(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    logs.configure_logging("info", "text", under_journal=False)
    logging.getLogger("plantd.broker").info("ready")
    assert FakeJournalHandler.instances == []
    assert stream.getvalue().endswith("INFO    plantd.broker: ready\n")
