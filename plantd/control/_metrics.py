"""``plantd-control``'s metrics, in :data:`plantd.telemetry.REGISTRY` (docs/observability.md).

Counted where the work is done once per unit: a calculation per evaluation, an alarm event
per transition, a write per module call, a loop period's lateness per step.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from plantd.telemetry import REGISTRY

__all__ = ["ALARM_EVENTS", "CALCULATIONS", "LOOP_LATENESS", "WRITES"]

CALCULATIONS = Counter(
    "plantd_control_calculations",
    "Calculated points evaluated and published on data.calc.*.",
    registry=REGISTRY,
)
ALARM_EVENTS = Counter(
    "plantd_control_alarm_events",
    "Alarm transitions published on event.alarm.*, by transition (raised, cleared, …).",
    ["transition"],
    registry=REGISTRY,
)
WRITES = Counter(
    "plantd_control_writes",
    "Writes of loops and interlocks to modules, by result (ok, failed).",
    ["result"],
    registry=REGISTRY,
)
# A loop step runs within a millisecond or two of its time on an idle Pi; tens of
# milliseconds mean the process is starved.
LOOP_LATENESS = Histogram(
    "plantd_control_loop_lateness_seconds",
    "How late a loop period ran after its scheduled time.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    registry=REGISTRY,
)
