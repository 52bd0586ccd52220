"""BusLogHandler, alone: what a record says on the bus, the bounded queue and its exact drop
count, and the publishing thread's own records kept out."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from plantd.telemetry import REGISTRY, BusLogHandler
from plantd.telemetry._handler import level_name, log_fields

log = logging.getLogger("plantd.test.telemetry")


def dropped() -> float:
    return REGISTRY.get_sample_value("plantd_log_records_dropped_total") or 0.0


@pytest.fixture
def handler() -> Iterator[BusLogHandler]:
    handler = BusLogHandler("state", "INFO", 1000)
    log.addHandler(handler)
    old = log.level
    log.setLevel(logging.DEBUG)
    yield handler
    log.removeHandler(handler)
    log.setLevel(old)


def test_a_record_goes_out_with_its_fields(handler: BusLogHandler) -> None:
    log.warning("too hot: %s", 93.5, extra={"point": "t1", "unit": 3, "obj": object()})
    log.debug("below the publish level")
    ((topic, fields),) = handler.take()
    assert topic == "log.state.warning"
    assert fields["message"] == "too hot: 93.5"
    assert (fields["level"], fields["source"], fields["logger"]) == (
        "warning", "state", "plantd.test.telemetry",
    )  # fmt: skip
    assert (fields["point"], fields["unit"]) == ("t1", 3)
    assert isinstance(fields["obj"], str)  # not JSON: as text
    assert isinstance(fields["time"], float)
    assert handler.take() == []


def test_an_exception_travels_as_text(handler: BusLogHandler) -> None:
    try:
        raise ValueError("bad frame")
    except ValueError:
        log.exception("decode failed")
    ((topic, fields),) = handler.take()
    assert topic == "log.state.error"
    assert "ValueError: bad frame" in fields["exc"]


def test_the_route_names_another_source() -> None:
    record = logging.makeLogRecord({"msg": "polling", "levelno": 20, "PLANTD_MODULE": "boiler"})
    handler = BusLogHandler(
        "modules",
        "INFO",
        10,
        route=lambda r: f"module.{r.PLANTD_MODULE}",  # type: ignore[attr-defined]
    )
    handler.handle(record)
    ((topic, fields),) = handler.take()
    assert topic == "log.module.boiler.info"
    assert (fields["source"], fields["module"]) == ("module.boiler", "boiler")


def test_a_flood_keeps_the_newest_and_counts_every_drop() -> None:
    handler = BusLogHandler("state", "INFO", 1000)
    before = dropped()
    for n in range(100_000):
        handler.handle(logging.makeLogRecord({"msg": "n=%d", "args": (n,), "levelno": 20}))
    assert handler.queued == 1000
    assert dropped() - before == 99_000
    taken = handler.take()
    assert [fields["message"] for _, fields in taken][:2] == ["n=99000", "n=99001"]
    assert taken[-1][1]["message"] == "n=99999"


def test_records_of_the_ignored_thread_stay_out(handler: BusLogHandler) -> None:
    handler.ignore_thread(threading.get_ident())
    log.error("the publisher's own trouble")
    assert handler.take() == []
    handler.ignore_thread(None)
    log.error("anyone else's")
    assert len(handler.take()) == 1


@pytest.mark.parametrize(
    ("levelno", "name"),
    [(5, "debug"), (10, "debug"), (15, "info"), (20, "info"), (30, "warning"),
     (40, "error"), (50, "critical"), (60, "critical")],
)  # fmt: skip
def test_levels(levelno: int, name: str) -> None:
    assert level_name(levelno) == name


def test_structured_fields_do_not_replace_the_base_ones() -> None:
    record = logging.makeLogRecord(
        {"msg": "x", "levelno": 20, "source": "forged", "_private": 1, "PLANTD_SINK": "up"}
    )
    fields = log_fields(record, "state")
    assert fields["source"] == "state"
    assert "_private" not in fields
    assert fields["sink"] == "up"
