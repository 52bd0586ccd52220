"""``plant health`` against a real broker, ``org.plantd.Health`` served in this process from a
hub fed explicit snapshots; and the exit statuses when nobody can answer."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from plantd.config import load_config
from plantd.logger._health import SERVICE, health_service, judge_hub
from plantd.logger._metrics import MetricsHub
from plantd.service import ServiceWorker
from plantd.testing import wait_for_workers
from tests.conftest import Stack


def plant(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def plant_health(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """``plant health`` in a thread: the Health worker runs on this test's event loop."""
    return await asyncio.to_thread(plant, stack, "health", *args)


@pytest.fixture
async def hub(stack: Stack) -> AsyncIterator[MetricsHub]:
    """A broker, and org.plantd.Health registered at it, judging the hub this yields."""
    stack.start_broker()
    config = load_config(stack.config_dir)
    the_hub = MetricsHub(default_interval=5.0, own=None)  # no disk rule: not this machine's
    worker = ServiceWorker(health_service(judge_hub(the_hub, lambda: ["boiler"])), config)
    serving = asyncio.create_task(worker.run())
    try:
        await asyncio.to_thread(wait_for_workers, stack.endpoint, SERVICE)
        yield the_hub
    finally:
        worker.stop()
        await serving


def report(hub: MetricsHub, source: str, text: str = "") -> None:
    hub.add(source, {"source": source, "interval": 5.0, "text": text})


async def test_healthy_then_degraded_then_failed(hub: MetricsHub, stack: Stack) -> None:
    report(hub, "broker")
    report(hub, "modules", 'plantd_module_connected{module="boiler"} 1\n')
    result = await plant_health(stack)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["SERVICE", "VERDICT", "REASONS"]
    assert [line.split() for line in lines[1:-1]] == [
        ["broker", "ok"],
        ["logger", "ok"],
        ["module.boiler", "ok"],
        ["modules", "ok"],
    ]
    assert lines[-1] == "overall: ok"

    report(hub, "sink.cloud", 'plantd_sink_connected{sink="cloud"} 0\n')
    result = await plant_health(stack)
    assert result.returncode == 1
    assert ["sink.cloud", "degraded", "not", "connected"] in [
        line.split() for line in result.stdout.splitlines()
    ]
    assert result.stdout.splitlines()[-1] == "overall: degraded"

    report(hub, "modules", 'plantd_module_connected{module="boiler"} 0\n')
    result = await plant_health(stack, "--json")
    assert result.returncode == 1
    verdict = json.loads(result.stdout)
    assert (verdict["ok"], verdict["verdict"]) == (False, "failed")
    assert {"name": "module.boiler", "verdict": "failed", "reasons": ["not connected"]} in (
        verdict["services"]
    )


def test_no_logger_is_no_worker_and_says_so(stack: Stack) -> None:
    stack.start_broker()
    result = plant(stack, "health", "--timeout", "0.5", "--retries", "0")
    assert result.returncode == 4  # NO_WORKER
    assert "plantd-logger is not running" in result.stderr
    assert SERVICE in result.stderr


def test_no_broker_is_no_broker(stack: Stack) -> None:
    stack.without_broker()
    result = plant(stack, "health", "--timeout", "0.2", "--retries", "0")
    assert result.returncode == 3  # NO_BROKER
    assert "no broker at" in result.stderr
    assert "plantd-logger" in result.stderr
