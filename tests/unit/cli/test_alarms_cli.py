"""``plant alarms`` and ``plant control``: their arguments, and the text they print (pure
functions of the service's answers and an explicit ``now``)."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

import pytest

from plantd.cli import build_parser
from plantd.cli._alarms_cmd import (
    alarm_table,
    history_table,
    parse_shelve_duration,
    sort_alarms,
    stamp,
    transition_line,
)
from plantd.cli._control_cmd import change_lines, control_tables, finite_number
from plantd.errors import UsageError

NOW = dt.datetime(2026, 5, 4, 12, 0, 0).timestamp()  # local time, as the output is


def alarm(name: str, priority: str, state: str, time: float | None, **more: Any) -> dict[str, Any]:
    active = state in ("unacknowledged", "acknowledged")
    record = {
        "alarm": name, "point": "tank.level", "type": "high", "priority": priority,
        "message": f"{name} message", "state": state, "active": active,
        "acknowledged": state in ("normal", "acknowledged"), "shelved": False,
        "shelved_until": None, "suppressed": False, "transition": None, "value": 4.7,
        "limit": 4.5, "time": time, "sample_time": time, "by": "", "comment": "", "seq": 1,
    }  # fmt: skip
    record.update(more)
    return record


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


# -- arguments --------------------------------------------------------------------------------


def test_plain_alarms_lists_and_filters_may_come_before_or_after_list() -> None:
    bare = parse("alarms")
    assert (bare.alarms_command, bare.active, bare.priority, bare.timeout) == (
        None, False, None, None,
    )  # fmt: skip
    assert bare.run is parse("alarms", "list").run
    before = parse("alarms", "--active", "--timeout", "5", "list")
    after = parse("alarms", "list", "--active", "--timeout", "5")
    for args in (before, after):
        assert (args.active, args.unacknowledged, args.timeout) == (True, False, 5.0)
    assert parse("alarms", "--priority", "urgent").priority == "urgent"
    with pytest.raises(SystemExit):
        parse("alarms", "--priority", "critical")


def test_json_is_taken_at_every_level() -> None:
    assert parse("--json", "alarms").json is True
    assert parse("alarms", "--json").json is True
    assert parse("alarms", "ack", "x", "--json").json is True
    assert parse("control", "reset", "i", "--json").json is True
    assert parse("control").json is False


def test_action_arguments() -> None:
    ack = parse("alarms", "ack", "a", "b", "--comment", "seen")
    assert (ack.names, ack.all, ack.comment, ack.timeout) == (["a", "b"], False, "seen", None)
    assert parse("alarms", "--timeout", "2", "ack", "--all").timeout == 2.0
    shelve = parse("alarms", "shelve", "a", "--for", "15m", "--reason", "work")
    assert (shelve.name, shelve.duration, shelve.reason) == ("a", "15m", "work")
    with pytest.raises(SystemExit):
        parse("alarms", "shelve", "a")  # --for is required
    history = parse("alarms", "history")
    assert (history.name, history.since, history.until, history.limit) == (None, "1h", None, 100)
    watch = parse("alarms", "watch", "a", "--count", "3")
    assert (watch.name, watch.count) == ("a", 3)

    mode = parse("control", "mode", "level", "manual", "--output", "25")
    assert (mode.loop, mode.mode, mode.output) == ("level", "manual", 25.0)
    with pytest.raises(SystemExit):
        parse("control", "mode", "level", "cascade")
    assert parse("control", "setpoint", "level", "2.5").value == 2.5
    assert parse("control", "reset", "overflow").interlock == "overflow"
    assert parse("control").control_command is None


def test_numbers_must_be_finite() -> None:
    assert finite_number("-1e3") == -1000.0
    for bad in ("nan", "inf", "-inf", "ten"):
        with pytest.raises(argparse.ArgumentTypeError):
            finite_number(bad)
    with pytest.raises(SystemExit):
        parse("control", "output", "level", "nan")


def test_shelve_durations() -> None:
    assert parse_shelve_duration("90s") == 90
    assert parse_shelve_duration("15m") == 900
    assert parse_shelve_duration("2h") == 7200
    assert parse_shelve_duration("30d") == 30 * 86400
    for bad, why in (("soon", "expected a duration"), ("0s", "more than 0"), ("31d", "30d")):
        with pytest.raises(UsageError, match=why):
            parse_shelve_duration(bad)


# -- alarms output ------------------------------------------------------------------------------


def test_most_urgent_first() -> None:
    records = [
        alarm("low-new", "low", "unacknowledged", NOW),
        alarm("high-normal", "high", "normal", None),
        alarm("high-acked", "high", "acknowledged", NOW - 10),
        alarm("high-returned", "high", "returned", NOW - 20),
        alarm("high-unack-old", "high", "unacknowledged", NOW - 100),
        alarm("high-unack-new", "high", "unacknowledged", NOW - 5),
        alarm("urgent-normal", "urgent", "normal", None),
    ]
    assert [r["alarm"] for r in sort_alarms(records)] == [
        "urgent-normal", "high-unack-new", "high-unack-old", "high-returned", "high-acked",
        "high-normal", "low-new",
    ]  # fmt: skip


def test_times_are_local_and_dated_unless_today() -> None:
    assert stamp(NOW - 3600, NOW) == "11:00:00"
    assert stamp(NOW - 86400, NOW) == "2026-05-03 12:00:00"
    assert stamp(None, NOW) == "-"


def test_the_alarm_table() -> None:
    records = [
        alarm("tank-high", "high", "acknowledged", NOW - 60, shelved=True),
        alarm("pump", "urgent", "normal", None, value=False, limit=None, message="x" * 80),
    ]
    lines = alarm_table(records, NOW).splitlines()
    assert lines[0].split() == [
        "PRIORITY", "STATE", "ALARM", "POINT", "VALUE", "LIMIT", "SINCE", "MESSAGE",
    ]  # fmt: skip
    assert lines[1].split() == [
        "high", "acknowledged,shelved", "tank-high", "tank.level", "4.7", "4.5", "11:59:00",
        "tank-high", "message",
    ]  # fmt: skip
    assert lines[2].split()[:7] == ["urgent", "normal", "pump", "tank.level", "false", "-", "-"]
    assert lines[2].endswith("x" * 59 + "…")  # long messages are cut
    # Columns line up: each starts where its header does.
    assert lines[1].index("tank-high") == lines[0].index("ALARM") == lines[2].index("pump")


def test_history_and_watch_lines() -> None:
    event = alarm(
        "tank-high", "high", "acknowledged", NOW - 1, transition="acknowledged", by="user.ada",
        comment="on it",
    )  # fmt: skip
    header, row = history_table([event], NOW).splitlines()
    assert header.split() == ["TIME", "ALARM", "TRANSITION", "STATE", "VALUE", "PRIORITY", "BY"]
    assert row.split() == [
        "11:59:59", "tank-high", "acknowledged", "acknowledged", "4.7", "high", "by", "user.ada",
        "'on", "it'",
    ]  # fmt: skip
    assert transition_line(event, NOW) == (
        "11:59:59  HIGH  tank-high  acknowledged -> acknowledged  value=4.7  limit=4.5  "
        "by user.ada 'on it'  tank-high message"
    )
    raised = alarm("t", "low", "unacknowledged", NOW, transition="raised", limit=None, value=None)
    assert transition_line(raised, NOW) == (
        "12:00:00  LOW  t  raised -> unacknowledged  value=-  t message"
    )


# -- control output -----------------------------------------------------------------------------


def test_the_control_tables() -> None:
    answer = {
        "loops": [
            {
                "name": "level", "mode": "tracking", "operator_mode": "auto", "pv": 3.25,
                "pv_quality": "uncertain", "setpoint": 3.0, "working_setpoint": 3.1,
                "output": 42.5, "output_point": "tank.valve", "interlock": "overflow",
                "last_write_time": NOW - 2, "last_write_error": "module.unavailable: timeout",
            },
            {
                "name": "flow", "mode": "failed", "operator_mode": "auto", "pv": None,
                "pv_quality": None, "setpoint": 5, "working_setpoint": 5, "output": None,
                "output_point": "pump.speed", "interlock": None, "last_write_time": None,
                "last_write_error": None,
            },
        ],
        "interlocks": [
            {
                "name": "overflow", "state": "tripped", "output": "tank.valve",
                "safe_value": 0, "reset": "manual", "when": "tank.level > 4.8",
                "tripped_at": NOW - 30,
            }
        ],
        "calc": [
            {"name": "volume", "expr": "tank.level * 12", "unit": "m3", "point": "calc.volume"},
            {"name": "v2", "expr": "calc.volume * 2", "unit": "", "value": 78.0},
        ],
    }  # fmt: skip
    loops, interlocks, calcs = control_tables(answer, NOW).split("\n\n")
    assert loops.splitlines() == [
        "LOOP   MODE                 PV                SETPOINT     OUTPUT              LAST WRITE",
        "level  tracking (overflow)  3.25 (uncertain)  3 (now 3.1)  42.5 -> tank.valve  "
        "11:59:58 failed: module.unavailable: timeout",
        "flow   failed (set auto)    -                 5            - -> pump.speed     -",
    ]
    assert interlocks.splitlines()[1] == (
        "overflow   tripped since 11:59:30  tank.valve  0           manual: tank.level > 4.8"
    )
    assert calcs.splitlines() == [
        "CALCULATION  VALUE  EXPR",
        "calc.volume  -      tank.level * 12",
        "calc.v2      78     calc.volume * 2",
    ]
    assert control_tables({"loops": [], "interlocks": [], "calc": []}, NOW) == (
        "(no loops, interlocks or calculations configured)"
    )


def test_change_lines() -> None:
    events = [
        {
            "name": "level", "kind": "loop", "transition": "mode", "time": NOW, "mode": "manual",
            "output": 25.0, "setpoint": 3.0, "reason": None, "by": "user.ada",
        },
        {
            "name": "overflow", "kind": "interlock", "transition": "reset", "time": NOW,
            "state": "normal", "output": "tank.pump", "safe_value": False, "reason": None,
            "by": "local",
        },
    ]  # fmt: skip
    assert change_lines(events) == [
        "loop level: mode (mode manual, setpoint 3, output 25) by user.ada",
        "interlock overflow: reset (state normal) by local",
    ]
    assert change_lines([]) == []
