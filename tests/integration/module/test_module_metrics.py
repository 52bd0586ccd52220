"""The module metrics of a Modbus module polling a simulated line of two units: every request
is timed (plantd_module_request_seconds), and a unit that falls silent is counted as
quarantined, with its circuit open, while the other unit is read on."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest
from plantd_drivers.modbus import ModbusDriver, ModbusModule

from hil.modbus import Device, Simulator, TcpServer
from plantd.bus import Quality
from plantd.module import parse_module_file
from plantd.telemetry import REGISTRY
from tests.conftest import Stack
from tests.drivers.module_harness import running_module, write_module

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]

MODULE = """
driver: modbus
defaults:
  max_silence: 100ms
connection:
  host: 127.0.0.1
  port: {port}
  timeout: 100ms
  retries: 0
  backoff_initial: 2s
  backoff_max: 5s
groups:
  - name: one
    interval: 50ms
    unit: 1
    table: input
    points:
      - {{name: level, address: 0, type: uint16}}
  - name: two
    interval: 50ms
    unit: 2
    table: input
    points:
      - {{name: flow, address: 0, type: uint16}}
"""


def _device(value: int) -> Device:
    device = Device()
    device.map("input", 0, 1)
    device.set_registers("input", 0, [value])
    return device


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"module": "line", **labels}) or 0.0


async def _until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Return once ``condition()`` holds; AssertionError naming ``what`` after ``timeout`` s."""
    try:
        async with asyncio.timeout(timeout):
            for _ in itertools.count():
                if condition():
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not within {timeout:g} s: {what}") from None


async def test_requests_are_timed_and_a_silent_unit_is_quarantined(stack: Stack) -> None:
    sim = Simulator({1: _device(42), 2: _device(7)})
    async with TcpServer(sim) as server:
        path = write_module(stack.config_dir / "modules.d", MODULE.format(port=server.port), "line")
        module = parse_module_file(path, ModbusModule)
        async with running_module(stack, module, ModbusDriver(module)) as running:
            await running.sample("data.line.flow", Quality.GOOD)
            count = "plantd_module_request_seconds_count"
            before = _value(count)
            await _until(lambda: _value(count) >= before + 10, "requests are timed")
            assert _value("plantd_module_request_seconds_sum") > 0
            assert _value("plantd_module_units_quarantined") == 0
            assert _value("plantd_module_unit_circuit_state", unit="2", state="closed") == 1
            assert _value("plantd_module_requests_per_poll", group="one") == 1
            assert _value("plantd_module_connected") == 1

            timeouts = _value("plantd_module_errors_total", kind="timeout")
            sim.fail(2, "silent")
            await _until(
                lambda: _value("plantd_module_units_quarantined") == 1, "unit 2 quarantined"
            )
            assert _value("plantd_module_unit_circuit_state", unit="2", state="closed") == 0
            assert (
                _value("plantd_module_unit_circuit_state", unit="2", state="open")
                + _value("plantd_module_unit_circuit_state", unit="2", state="half_open")
                == 1
            )
            assert _value("plantd_module_unit_circuit_state", unit="1", state="closed") == 1
            assert _value("plantd_module_errors_total", kind="timeout") > timeouts
            await running.sample("data.line.flow", Quality.BAD)
            assert _value("plantd_module_bad_points") == 1
            # unit 1 is read on, and its requests timed
            now = _value(count)
            await _until(lambda: _value(count) >= now + 10, "unit 1's requests go on")
            assert _value("plantd_module_connected") == 1
