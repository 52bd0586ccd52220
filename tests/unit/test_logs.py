"""``plantd.logs.configure_logging``: the one place a process sets up logging."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from plantd import logs


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
