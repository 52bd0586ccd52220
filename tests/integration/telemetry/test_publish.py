"""Telemetry on a real bus (a broker process): records arrive on log.<source>.<level> with
their fields, metrics snapshots parse, a flood neither blocks nor grows without bound, and
``logging.publish: off`` sends no record."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from plantd.config import PlantdConfig, load_config
from plantd.telemetry import REGISTRY, start_telemetry
from plantd.testing import bus_log_records
from tests.conftest import Stack

log = logging.getLogger("plantd.test.telemetry")


@pytest.fixture(autouse=True)
def _verbose() -> Iterator[None]:
    old = log.level
    log.setLevel(logging.DEBUG)
    yield
    log.setLevel(old)


def config_of(stack: Stack) -> PlantdConfig:
    return load_config(stack.config_dir)


def message_is(text: str) -> Any:
    return lambda topic, fields: fields.get("message") == text


def sample(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and (labels is None or found.labels == labels):
                return float(found.value)
    return None


def test_records_arrive_with_their_fields(stack: Stack) -> None:
    stack.start_broker()
    config = config_of(stack)
    with (
        bus_log_records(config.bus.backend) as bus,
        start_telemetry(config, "state"),
    ):
        bus.wait_for(message_is("warm-up"), meanwhile=lambda: log.warning("warm-up"))
        log.info("too hot: %.1f", 93.5, extra={"point": "t1", "unit": 3})
        log.debug("below logging.publish (info)")
        try:
            raise ValueError("bad frame")
        except ValueError:
            log.exception("decode failed")
        topic, fields = bus.wait_for(message_is("too hot: 93.5"))
        error_topic, error = bus.wait_for(message_is("decode failed"))
    assert topic == "log.state.info"
    assert fields["level"] == "info"
    assert fields["source"] == "state"
    assert fields["logger"] == "plantd.test.telemetry"
    assert (fields["point"], fields["unit"]) == ("t1", 3)
    assert error_topic == "log.state.error"
    assert "ValueError: bad frame" in error["exc"]
    assert not [t for t, f in bus.items if f["message"].startswith("below")]


@pytest.mark.stack(metrics={"interval": "200ms"})
def test_metrics_snapshots_arrive_every_interval_and_parse(stack: Stack) -> None:
    stack.start_broker()
    config = config_of(stack)
    with (
        bus_log_records(config.bus.backend, ["metrics.state"]) as bus,
        start_telemetry(config, "state", clock=lambda: 1234.5) as telemetry,
    ):
        # Several snapshots, each on its own, by the interval alone.
        bus.wait_for(lambda topic, fields: len(bus.items) >= 3)
    assert telemetry.snapshots >= 3
    topic, snapshot = bus.items[-1]
    assert topic == "metrics.state"
    assert (snapshot["source"], snapshot["time"], snapshot["interval"]) == ("state", 1234.5, 0.2)
    start = sample(snapshot["text"], "plantd_process_start_time_seconds")
    assert start == REGISTRY.get_sample_value("plantd_process_start_time_seconds")
    assert sample(snapshot["text"], "plantd_log_records_dropped_total") is not None
    published = sample(snapshot["text"], "plantd_log_records_published_total", {"level": "info"})
    assert published is not None


@pytest.mark.stack(logging={"publish": "off"}, metrics={"interval": "300s"})
def test_publish_off_sends_no_record(stack: Stack) -> None:
    stack.start_broker()
    config = config_of(stack)
    with (
        bus_log_records(config.bus.backend, ["log.", "metrics."]) as bus,
        start_telemetry(config, "state") as telemetry,
    ):
        assert telemetry.handler is None
        assert telemetry.handler not in logging.getLogger().handlers
        log.error("not on the bus")
        # A snapshot goes out after anything logged before it, on the same socket: once it is
        # here, a record would have been too.
        bus.wait_for(lambda topic, fields: topic == "metrics.state", meanwhile=telemetry.snapshot)
    assert [topic for topic, _ in bus.items if topic.startswith("log.")] == []


FLOOD = 20_000  # twenty times the queue: enough to fill it many times over


def counts() -> tuple[float, float]:
    published = REGISTRY.get_sample_value("plantd_log_records_published_total", {"level": "error"})
    dropped = REGISTRY.get_sample_value("plantd_log_records_dropped_total")
    return published or 0.0, dropped or 0.0


@pytest.mark.slow
@pytest.mark.parametrize("bus", ["no reader", "stopped broker", "no broker"])
@pytest.mark.stack(logging={"publish": "error", "publish_queue": 1000})
def test_a_flood_neither_blocks_nor_grows(stack: Stack, bus: str) -> None:
    if bus == "no broker":
        stack.without_broker()
    else:
        broker = stack.start_broker()
    config = config_of(stack)
    published_before, dropped_before = counts()
    telemetry = start_telemetry(config, "state")
    assert telemetry.handler is not None
    if bus == "stopped broker":
        broker.kill()
    most = 0
    try:
        for n in range(FLOOD):
            log.error("flood %d", n)
            if n % 1000 == 0:
                most = max(most, telemetry.handler.queued)
    finally:
        telemetry.stop()
    published, dropped = counts()
    assert most <= 1000
    assert telemetry.handler.queued == 0  # flushed at stop
    # Every record either went out or was dropped, and counted as such.
    assert (published - published_before) + (dropped - dropped_before) == FLOOD
