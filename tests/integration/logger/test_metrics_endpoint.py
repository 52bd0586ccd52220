"""The logger's HTTP endpoint: snapshots published on a real bus, gathered by the hub, scraped
over HTTP on the port the system gave it, in both exposition formats; ``/health``."""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from plantd.bus import BusPublisher, BusSubscriber
from plantd.config import load_config
from plantd.logger._health import judge
from plantd.logger._http import (
    MetricsServer,
    endpoints_path,
    read_endpoints,
    serve_metrics,
)
from plantd.logger._metrics import MetricsHub
from plantd.logger._observatory import Observatory
from plantd.logger._system import SystemCollector
from plantd.telemetry import REGISTRY, start_telemetry
from tests.conftest import Stack

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def get(url: str, accept: str | None = None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read()


def snapshot_of(source: str, registry: CollectorRegistry) -> dict[str, Any]:
    text = generate_latest(registry).decode()
    return {"source": source, "time": time.time(), "interval": 5.0, "text": text}


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout} s")
        await asyncio.sleep(0.01)


@pytest.mark.stack(logger={"listen": "127.0.0.1:0"})
async def test_snapshots_from_the_bus_are_served_on_the_recorded_port(stack: Stack) -> None:
    stack.start_broker()
    config = load_config(stack.config_dir)
    hub = MetricsHub(
        default_interval=config.metrics.interval, system=SystemCollector(config.paths.data)
    )
    subscriber = BusSubscriber(config.bus.backend, ["metrics."])
    publisher = BusPublisher(config.bus.frontend)
    consuming = asyncio.create_task(hub.consume(subscriber))

    def health() -> Any:  # the disk rule left out: this machine's disk is not the test's
        return judge(hub.history(), hub.now())

    server = serve_metrics(config, hub.registry, health)
    assert server is not None
    try:
        broker = CollectorRegistry()
        Counter("plantd_broker_requests", "Requests.", ["service"], registry=broker).labels(
            "org.plantd.State"
        ).inc(3)
        state = CollectorRegistry()
        commit = Histogram(
            "plantd_state_commit_seconds", "Commit.", buckets=(0.01, 0.1), registry=state
        )
        commit.observe(0.05)
        assert await publisher.wait_for_subscribers(timeout=10)

        def publish() -> bool:
            publisher.publish_record("metrics.broker", snapshot_of("broker", broker))
            publisher.publish_record("metrics.state", snapshot_of("state", state))
            return {"broker", "state"} <= hub.history().keys()

        await until(publish, "both snapshots gathered")

        recorded = read_endpoints(config.paths.run)
        assert recorded is not None
        assert recorded["metrics"] == f"http://127.0.0.1:{server.port}/metrics"
        assert server.port != 0

        status, kind, body = await asyncio.to_thread(get, recorded["metrics"])
        assert status == 200
        assert kind.startswith("text/plain")
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples
        }
        requests = ("plantd_broker_requests_total", (("service", "org.plantd.State"),))
        assert samples[(requests[0], (*requests[1], ("source", "broker")))] == 3
        bucket = ("plantd_state_commit_seconds_bucket", (("le", "0.1"), ("source", "state")))
        assert samples[bucket] == 1
        assert samples[("plantd_process_up", (("source", "broker"),))] == 1
        assert samples[("plantd_process_up", (("source", "logger"),))] == 1
        data = str(config.paths.data)
        assert samples[("plantd_disk_size_bytes", (("path", data), ("source", "logger")))] > 0

        status, kind, body = await asyncio.to_thread(get, recorded["metrics"], OPENMETRICS)
        assert status == 200
        assert kind.startswith("application/openmetrics-text; version=1.0.0")
        families = {f.name: f for f in openmetrics_families(body.decode())}  # strict parser
        assert families["plantd_state_commit_seconds"].type == "histogram"

        status, kind, body = await asyncio.to_thread(get, recorded["health"])
        assert (status, kind) == (200, "application/json")
        assert json.loads(body)["verdict"] == "ok"

        sink = CollectorRegistry()
        Gauge("plantd_sink_connected", "Up.", ["sink"], registry=sink).labels("cloud").set(0)
        publisher.publish_record("metrics.sink.cloud", snapshot_of("sink.cloud", sink))
        await until(lambda: hub.latest("sink.cloud") is not None, "the sink's snapshot")
        status, _, body = await asyncio.to_thread(get, recorded["health"])
        report = json.loads(body)
        assert (status, report["ok"], report["verdict"]) == (503, False, "degraded")
        assert {"name": "sink.cloud", "verdict": "degraded", "reasons": ["not connected"]} in (
            report["services"]
        )

        status, _, _ = await asyncio.to_thread(get, recorded["metrics"].replace("metrics", "x"))
        assert status == 404
    finally:
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)
        subscriber.close()
        publisher.close()
        await asyncio.to_thread(server.stop)
    assert not endpoints_path(config.paths.run).exists()
    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(urllib.request.urlopen, recorded["metrics"], timeout=5)


def test_the_server_stops_cleanly_and_compresses_for_a_scraper_that_asks() -> None:
    registry = CollectorRegistry()
    Counter("plantd_thing", "Things.", registry=registry).inc()
    hub = MetricsHub(default_interval=5.0, own=registry)
    with MetricsServer(hub.registry, lambda: judge({}, hub.now()), "127.0.0.1", 0) as server:
        url = server.url("/metrics")
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            text = gzip.decompress(response.read()).decode()
        assert 'plantd_thing_total{source="logger"} 1.0' in text
        status, _, body = get(server.url("/health"))
        assert status == 503  # no broker snapshot: failed
        assert {"name": "broker", "verdict": "failed", "reasons": ["not reporting"]} in (
            json.loads(body)["services"]
        )
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=5)


async def test_served_as_a_task_it_stops_when_cancelled() -> None:
    hub = MetricsHub(default_interval=5.0, own=None)
    server = MetricsServer(hub.registry, lambda: judge({}, hub.now()), "127.0.0.1", 0).start()
    serving = asyncio.create_task(server.serve())
    status, _, body = await asyncio.to_thread(get, server.url("/metrics"))
    assert status == 200
    assert b'plantd_process_up{source="logger"} 1.0' in body
    url = server.url("/metrics")
    serving.cancel()
    await asyncio.gather(serving, return_exceptions=True)
    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(urllib.request.urlopen, url, timeout=5)


def test_a_busy_port_is_an_error_naming_it() -> None:
    hub = MetricsHub(default_interval=5.0, own=None)
    with MetricsServer(hub.registry, lambda: judge({}, hub.now()), "127.0.0.1", 0) as first:
        second = MetricsServer(hub.registry, lambda: judge({}, hub.now()), "127.0.0.1", first.port)
        with pytest.raises(OSError, match=f"cannot serve metrics on 127.0.0.1:{first.port}"):
            second.start()


@pytest.mark.stack(logger={"listen": "127.0.0.1:0"}, metrics={"interval": "200ms"})
async def test_the_observatory_gathers_what_telemetry_publishes(stack: Stack) -> None:
    """The whole path: a process's telemetry thread → the bus → the hub → /metrics, /health
    and ``plant health``; stopped, the endpoint and its file are gone."""
    stack.start_broker()
    config = load_config(stack.config_dir)
    observatory = Observatory(config, thermal_zone=stack.config_dir / "no-thermal-zone")
    running = asyncio.create_task(observatory.run())
    try:
        await asyncio.wait_for(observatory.connected.wait(), timeout=15)
        with start_telemetry(config, "state"):
            await until(lambda: observatory.hub.latest("state") is not None, "a state snapshot")
            assert observatory.server is not None
            recorded = read_endpoints(config.paths.run)
            assert recorded is not None
            status, _, body = await asyncio.to_thread(get, recorded["metrics"])
            assert status == 200
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(body.decode())
                for s in family.samples
            }
            start = REGISTRY.get_sample_value("plantd_process_start_time_seconds")
            assert samples[("plantd_process_start_time_seconds", (("source", "state"),))] == start
            assert samples[("plantd_process_up", (("source", "state"),))] == 1

            command = ["plantd.cli", "--config", str(stack.config_dir), "health", "--json"]
            result = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", *command],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            services = {s["name"]: s for s in json.loads(result.stdout)["services"]}
            assert services["state"] == {"name": "state", "verdict": "ok", "reasons": []}
            assert services["logger"]["verdict"] == "ok"
    finally:
        observatory.stop()
        await running
    assert not endpoints_path(config.paths.run).exists()
    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(urllib.request.urlopen, recorded["metrics"], timeout=5)
