"""plantd-control under CURVE, as on the appliance: it proves itself with its own key
(``service.control``), its loop's writes reach the module as an operator's would, and the audit
trail names it for each."""

from __future__ import annotations

import pytest

from plantd.client import Client
from plantd.service import call
from plantd.testing import wait_for_workers
from tests.conftest import Stack
from tests.integration.security.test_secure_stack import start, start_module, wait_for

pytestmark = pytest.mark.stack(security={"mode": "curve"})

MODULE = """
driver: fake
groups:
  - name: main
    interval: 100ms
    points:
      - {name: level, value: 1.5}
      - {name: valve, value: 0.0, writable: true, minimum: 0, maximum: 100}
"""
LOOP = """
loops:
  - name: level
    measurement: m1.level
    output: m1.valve
    setpoint: 2.0
    period: 200ms
    kp: 10
    ti: 5s
    mode: auto
    stale_after: 2s
"""
ALARMS = """
alarms:
  - {name: level-low, point: m1.level, type: low, limit: 2.0, priority: medium}
"""


def test_loop_writes_are_the_control_services_own_and_audited(stack: Stack) -> None:
    stack.start_broker()
    start_module(stack, "m1", MODULE)
    for directory, text in (("control.d", LOOP), ("alarms.d", ALARMS)):
        (stack.config_dir / directory).mkdir()
        (stack.config_dir / directory / "plant.yaml").write_text(text)
    stack.credentials("service.control")  # its key, as `plant keys init` makes it on the box
    start(stack, "control", ["plantd.control", "--config", str(stack.config_dir)])
    wait_for_workers(stack.endpoint, "org.plantd.Control")
    with Client(stack.endpoint, timeout=3, retries=2) as admin:  # this process: an admin

        def control_writes() -> list[tuple[str, str]]:
            found = call(admin, "org.plantd.Audit", "query", {"target": "org.plantd.module.m1"})
            return [
                (r["principal"], r["result"])
                for r in found["records"]
                if r["target"] == "org.plantd.module.m1 write"
            ]

        wait_for(control_writes, what="the loop's writes are audited")
        assert set(control_writes()) == {("service.control", "ok")}
        # Reverse action, the level below its setpoint: the valve opens, in the device.
        wait_for(
            lambda: call(admin, "org.plantd.module.m1", "read")["valve"]["value"] > 0,
            what="the valve opened",
        )
        # The alarm it raised is acknowledged by a person, named in the event.
        wait_for(
            lambda: call(admin, "org.plantd.Alarms", "list", {"state": "unacknowledged"}),
            what="level-low raised",
        )
        acked = call(admin, "org.plantd.Alarms", "ack", {"alarm": "level-low"})
        assert acked[0]["by"].startswith("user.")
