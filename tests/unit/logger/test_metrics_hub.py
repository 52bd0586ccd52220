"""The metrics hub: snapshots from several sources merged into one registry, a ``source``
label on every sample, staleness on an injected clock, malformed snapshots survived."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from plantd.bus import BusMessage, Quality, Record, Sample
from plantd.logger._metrics import FORGET_AFTER, MetricsHub, parse_snapshot
from plantd.testing import ManualClock

INTERVAL = 5.0


def record(registry: CollectorRegistry, *, openmetrics: bool = False) -> dict[str, Any]:
    """What a process publishes on ``metrics.<source>``."""
    text = (openmetrics_latest if openmetrics else generate_latest)(registry).decode()
    return {"source": "x", "time": time.time(), "interval": INTERVAL, "text": text}


def message(source: str, fields: dict[str, Any]) -> BusMessage:
    return BusMessage(f"metrics.{source}", Record(fields))


def process_registry(level_counts: dict[str, int]) -> CollectorRegistry:
    registry = CollectorRegistry()
    published = Counter(
        "plantd_log_records_published", "Records sent.", ["level"], registry=registry
    )
    for level, count in level_counts.items():
        published.labels(level).inc(count)
    return registry


def hub_with(clock: ManualClock, own: CollectorRegistry | None = None) -> MetricsHub:
    return MetricsHub(default_interval=INTERVAL, clock=clock, own=own)


def scrape(hub: MetricsHub) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The hub's exposition, parsed back: (sample name, labels) -> value."""
    text = generate_latest(hub.registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


def test_two_sources_of_one_family_are_kept_apart_by_their_source_label() -> None:
    hub = hub_with(ManualClock())
    hub.receive(message("broker", record(process_registry({"info": 3}))))
    hub.receive(message("state", record(process_registry({"info": 5, "error": 1}))))

    values = scrape(hub)
    name = "plantd_log_records_published_total"
    assert values[(name, labels(level="info", source="broker"))] == 3
    assert values[(name, labels(level="info", source="state"))] == 5
    assert values[(name, labels(level="error", source="state"))] == 1
    # one family, both sources in it
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(hub.registry).decode())
    }
    sources = {s.labels["source"] for s in families["plantd_log_records_published"].samples}
    assert sources == {"broker", "state"}
    assert values[("plantd_process_up", labels(source="broker"))] == 1
    assert values[("plantd_process_up", labels(source="state"))] == 1
    assert values[("plantd_metrics_snapshot_age_seconds", labels(source="state"))] == 0


def test_created_gauges_of_the_text_format_go_back_into_their_family() -> None:
    hub = hub_with(ManualClock(), own=None)
    hub.receive(message("broker", record(process_registry({"info": 1}))))
    text = openmetrics_latest(hub.registry).decode()
    families = {f.name: f for f in openmetrics_families(text)}
    assert "plantd_log_records_published_created" not in families
    names = {s.name for s in families["plantd_log_records_published"].samples}
    assert names == {"plantd_log_records_published_total", "plantd_log_records_published_created"}


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text-format", "openmetrics"])
def test_histograms_survive_the_merge_in_both_exposition_formats(openmetrics: bool) -> None:
    hub = hub_with(ManualClock(), own=None)
    for source, observations in (("state", (0.001, 0.02)), ("historian", (0.5,))):
        registry = CollectorRegistry()
        histogram = Histogram(
            "plantd_commit_seconds", "One commit.", buckets=(0.01, 0.1, 1.0), registry=registry
        )
        for seconds in observations:
            histogram.observe(seconds)
        hub.receive(message(source, record(registry, openmetrics=openmetrics)))

    # OpenMetrics out: the strict parser checks bucket order, counts and sums per label set
    families = {f.name: f for f in openmetrics_families(openmetrics_latest(hub.registry).decode())}
    histogram = families["plantd_commit_seconds"]
    assert histogram.type == "histogram"
    got = {(s.name, s.labels.get("le"), s.labels["source"]): s.value for s in histogram.samples}
    assert got[("plantd_commit_seconds_bucket", "0.01", "state")] == 1
    assert got[("plantd_commit_seconds_bucket", "0.1", "state")] == 2
    assert got[("plantd_commit_seconds_count", None, "state")] == 2
    assert got[("plantd_commit_seconds_bucket", "0.1", "historian")] == 0
    assert got[("plantd_commit_seconds_bucket", "1.0", "historian")] == 1
    assert got[("plantd_commit_seconds_sum", None, "historian")] == 0.5


async def test_a_silent_source_drops_out_then_its_up_goes_too() -> None:
    clock = ManualClock()
    hub = hub_with(clock, own=None)
    hub.receive(message("broker", record(process_registry({"info": 1}))))
    hub.receive(message("state", record(process_registry({"info": 2}))))
    series = ("plantd_log_records_published_total", labels(level="info", source="broker"))

    await clock.advance(3 * INTERVAL)  # exactly three intervals: still fresh
    hub.receive(message("state", record(process_registry({"info": 2}))))
    values = scrape(hub)
    assert values[("plantd_process_up", labels(source="broker"))] == 1
    assert values[series] == 1

    await clock.advance(0.5)
    values = scrape(hub)
    assert values[("plantd_process_up", labels(source="broker"))] == 0
    assert values[("plantd_metrics_snapshot_age_seconds", labels(source="broker"))] == 15.5
    assert series not in values  # a dead process's counters are not current
    assert values[("plantd_process_up", labels(source="state"))] == 1

    await clock.advance(FORGET_AFTER)
    values = scrape(hub)
    assert ("plantd_process_up", labels(source="broker")) not in values
    assert ("plantd_process_up", labels(source="state")) not in values

    hub.receive(message("broker", record(process_registry({"info": 7}))))  # back
    values = scrape(hub)
    assert values[("plantd_process_up", labels(source="broker"))] == 1
    assert values[series] == 7


def test_a_snapshot_interval_decides_its_freshness() -> None:
    snapshot = parse_snapshot(
        "sink.cloud", {"text": "", "interval": 60}, arrived=100.0, default_interval=INTERVAL
    )
    assert (snapshot.fresh(280.0), snapshot.fresh(280.1)) == (True, False)
    fallback = parse_snapshot(
        "x", {"text": "", "interval": "often"}, arrived=0.0, default_interval=2
    )
    assert fallback.interval == 2


def test_malformed_snapshots_are_counted_logged_once_and_the_last_good_one_stays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = hub_with(ManualClock(), own=None)
    good = hub.receive(message("broker", record(process_registry({"info": 4}))))
    assert good is not None
    caplog.set_level(logging.WARNING, logger="plantd.logger._metrics")
    bad = [
        message("broker", {"text": "plantd_x{le=0.1 1\n"}),  # not the text format
        message("broker", {"text": 'plantd_x{a="1"} one\n'}),
        message("broker", {"interval": 5}),  # no text
        message("broker", {"text": 42, "interval": 5}),
        BusMessage("metrics.broker", Sample(1.0, 0.0, Quality.GOOD, 1, 1)),
        message("broker", {"text": "# TYPE x counter\nx_total 1\n# EOF\nafter the end\n"}),
    ]
    for each in bad:
        assert hub.receive(each) is None
    assert hub.malformed == len(bad)
    warnings = [r for r in caplog.records if "ignored a metrics snapshot" in r.getMessage()]
    assert len(warnings) == 1
    assert hub.latest("broker") is not None
    assert (
        scrape(hub)[("plantd_log_records_published_total", labels(level="info", source="broker"))]
        == 4
    )
    malformed = ("plantd_logger_metrics_malformed_total", labels(source="logger"))
    assert scrape(hub)[malformed] == hub.malformed


def test_the_logger_reads_its_own_registry_live_and_ignores_its_echo_on_the_bus() -> None:
    own = CollectorRegistry()
    gauge = Gauge("plantd_logger_database_bytes", "Size.", registry=own)
    gauge.set(4096)
    hub = hub_with(ManualClock(), own=own)
    assert hub.receive(message("logger", record(process_registry({"info": 1})))) is None
    values = scrape(hub)
    assert values[("plantd_logger_database_bytes", labels(source="logger"))] == 4096
    assert values[("plantd_process_up", labels(source="logger"))] == 1
    assert not any(name.startswith("plantd_log_records_published") for name, _ in values)
    gauge.set(8192)
    assert scrape(hub)[("plantd_logger_database_bytes", labels(source="logger"))] == 8192


def test_a_family_two_sources_type_differently_keeps_the_first_type() -> None:
    hub = hub_with(ManualClock(), own=None)
    as_gauge = CollectorRegistry()
    Gauge("plantd_thing", "A gauge here.", registry=as_gauge).set(1)
    as_counter = CollectorRegistry()
    Counter("plantd_thing", "A counter there.", registry=as_counter).inc()
    hub.receive(message("a", record(as_gauge)))
    hub.receive(message("b", record(as_counter)))
    values = scrape(hub)
    assert values[("plantd_thing", labels(source="a"))] == 1
    assert ("plantd_thing_total", labels(source="b")) not in values
    assert hub.conflicts == 1
