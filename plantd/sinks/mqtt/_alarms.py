"""Alarm events as Sparkplug B node metrics (sans-IO: a record in, metrics out).

An alarm transition (a record on ``event.alarm.<alarm>``, docs/sinks.md "Events") becomes a
set of the edge node's own metrics, in the folder ``Alarms/<alarm>/`` (a Sparkplug host such
as Ignition shows ``/`` in a metric's name as folders):

    State         String   normal | unacknowledged | acknowledged | returned
    Transition    String   raised, cleared, acknowledged, shelved, …
    Active        Boolean
    Acknowledged  Boolean
    Shelved       Boolean
    Suppressed    Boolean
    Priority      String   low | medium | high | urgent
    Message       String
    Value         Double   the value that caused the transition (null if not a number)
    Limit         Double   (null if not a number)
    Seq           Int64    the alarm's transition counter

Every metric's datatype is fixed here, whatever a record holds (Sparkplug forbids a change of
datatype): a field of the wrong kind is sent as null. Why node metrics in NBIRTH/NDATA rather
than a device per alarm or a DataSet/Template: NDATA of metrics declared in the NBIRTH is what
every Sparkplug host takes without configuration, and plain scalar metrics are what the
codec writes and a reader decodes with nothing beyond the Tahu ``Metric`` message.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from plantd.bus import SampleValue
from plantd.sinks.mqtt._sparkplug import DataType

__all__ = ["ALARM_METRICS", "ALARM_PREFIX", "alarm_metrics", "alarm_name", "event_time_ms"]

ALARM_PREFIX = "event.alarm."


def _text(value: Any) -> SampleValue:
    return value if isinstance(value, str) else None


def _flag(value: Any) -> SampleValue:
    return value if isinstance(value, bool) else None


def _number(value: Any) -> SampleValue:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _integer(value: Any) -> SampleValue:
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    return None


ALARM_METRICS: tuple[tuple[str, str, DataType, Callable[[Any], SampleValue]], ...] = (
    ("State", "state", DataType.STRING, _text),
    ("Transition", "transition", DataType.STRING, _text),
    ("Active", "active", DataType.BOOLEAN, _flag),
    ("Acknowledged", "acknowledged", DataType.BOOLEAN, _flag),
    ("Shelved", "shelved", DataType.BOOLEAN, _flag),
    ("Suppressed", "suppressed", DataType.BOOLEAN, _flag),
    ("Priority", "priority", DataType.STRING, _text),
    ("Message", "message", DataType.STRING, _text),
    ("Value", "value", DataType.DOUBLE, _number),
    ("Limit", "limit", DataType.DOUBLE, _number),
    ("Seq", "seq", DataType.INT64, _integer),
)
"""``(metric, record field, datatype, conversion)`` for each metric of an alarm."""


def alarm_name(topic: str, fields: dict[str, Any]) -> str | None:
    """The alarm a record on ``topic`` is about (its ``alarm`` field, else the topic's last
    part); None for a topic that is not ``event.alarm.*`` or a name Sparkplug cannot carry."""
    if not topic.startswith(ALARM_PREFIX):
        return None
    name = fields.get("alarm")
    if not isinstance(name, str) or not name:
        name = topic[len(ALARM_PREFIX) :]
    if not name or any(char in name for char in "/+#"):
        return None
    return name


def alarm_metrics(alarm: str, fields: dict[str, Any]) -> list[tuple[str, DataType, SampleValue]]:
    """``(metric name, datatype, value)`` for each metric of ``alarm`` from one record."""
    return [
        (f"Alarms/{alarm}/{metric}", datatype, convert(fields.get(key)))
        for metric, key, datatype, convert in ALARM_METRICS
    ]


def event_time_ms(fields: dict[str, Any], default: int) -> int:
    """The record's ``time`` (Unix seconds) in ms, or ``default`` if it has none."""
    when = fields.get("time")
    if isinstance(when, int | float) and not isinstance(when, bool) and math.isfinite(when):
        return int(when * 1000)
    return default
