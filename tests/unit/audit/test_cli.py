"""``plant audit``: the --since/--until forms and the parser's shape (no broker needed)."""

from __future__ import annotations

import argparse
import datetime as dt
import json

import pytest

from plantd.cli._audit_cmd import _table, parse_when, register
from plantd.errors import UsageError

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds_ago"),
    [("10m", 600), ("1h", 3600), ("2d", 172_800), ("90s", 90), ("1.5h", 5400), ("30", 30)],
)
def test_durations_count_back_from_now(text: str, seconds_ago: float) -> None:
    assert parse_when("--since", text, NOW) == NOW - seconds_ago


def test_iso_times_are_local_unless_they_name_a_zone() -> None:
    assert parse_when("--since", "2023-11-14T22:13:20+00:00", NOW) == NOW
    assert parse_when("--since", "2023-11-14T22:13:20Z", NOW) == NOW
    local = dt.datetime(2024, 5, 1, 12, 0).timestamp()
    assert parse_when("--until", "2024-05-01T12:00", NOW) == local
    assert parse_when("--until", "2024-05-01 12:00:00", NOW) == local


@pytest.mark.parametrize("text", ["yesterday", "10 minutes", "1w", "", "2024-13-01", "-5m"])
def test_a_bad_value_is_named_with_its_option(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_when("--since", text, NOW)
    assert str(caught.value).startswith("--since: ")
    assert repr(text) in str(caught.value)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser()
    top.add_argument("--json", action="store_true")
    register(top.add_subparsers(dest="command", required=True))
    return top


@pytest.mark.parametrize(
    ("argv", "run", "since", "limit"),
    [
        (["audit"], "_list", None, 100),
        (["audit", "--since", "1h", "--limit", "5"], "_list", "1h", 5),
        (["audit", "list", "--since", "2d"], "_list", "2d", 100),
        (["audit", "--since", "1h", "list"], "_list", "1h", 100),
        (["audit", "verify"], "_verify", None, 100),
        (["audit", "status"], "_status", None, 100),
        (["audit", "follow", "--action", "call", "--count", "3"], "_follow", None, 100),
    ],
)
def test_plant_audit_lists_by_default(
    argv: list[str], run: str, since: str | None, limit: int
) -> None:
    args = parser().parse_args(argv)
    assert args.run.__name__ == run
    assert (args.since, args.limit) == (since, limit)


def test_list_options_and_json_after_the_subcommand() -> None:
    args = parser().parse_args(
        ["audit", "list", "--principal", "alice", "--action", "call", "--result", "denied",
         "--target", "org.plantd.State", "--until", "5m", "--timeout", "2", "--json"]
    )  # fmt: skip
    assert (args.principal, args.action, args.result, args.target) == (
        "alice",
        "call",
        "denied",
        "org.plantd.State",
    )
    assert (args.until, args.timeout, args.json) == ("5m", 2.0, True)


def test_the_table_prints_oldest_first_and_says_when_more_match() -> None:
    newest_first = [
        {"id": 2, "time": NOW, "principal": "alice", "action": "call", "target": "svc set",
         "result": "ok", "count": 1, "detail": "x" * 100},
        {"id": 1, "time": NOW - 5, "principal": "-", "action": "connect", "target": "tcp://*:1",
         "result": "denied", "count": 1234, "detail": "unknown key"},
    ]  # fmt: skip
    lines = _table(newest_first, more=True).splitlines()
    assert lines[0].split() == [
        "TIME", "PRINCIPAL", "ACTION", "TARGET", "RESULT", "COUNT", "DETAIL",
    ]  # fmt: skip
    assert lines[1].split()[1:6] == ["-", "connect", "tcp://*:1", "denied", "1234"]
    assert lines[2].split()[1:6] == ["alice", "call", "svc", "set", "ok"]
    assert lines[2].endswith("…")
    assert "older records match" in lines[3]
    assert _table([], more=False) == "(no audit records match)"


def test_a_followed_record_is_left_out_by_principal_and_result_filters() -> None:
    from plantd.cli._audit_cmd import _audit_line

    record = {"time": 0.0, "principal": "user.ada", "action": "call", "result": "denied",
              "target": "org.plantd.State set", "detail": "x"}  # fmt: skip
    args = argparse.Namespace(principal="user.bob", result=None, json=False)
    assert _audit_line(args, record) is None
    args = argparse.Namespace(principal=None, result="ok", json=False)
    assert _audit_line(args, record) is None
    args = argparse.Namespace(principal="user.ada", result="denied", json=True)
    assert _audit_line(args, record) == json.dumps(record, sort_keys=True)
    args = argparse.Namespace(principal=None, result=None, json=False)
    line = _audit_line(args, record)
    assert line is not None
    assert "user.ada  call  org.plantd.State set  denied  ×1  x" in line
