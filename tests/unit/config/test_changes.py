"""section_changes: which changed fields a process takes live, which need a restart."""

from __future__ import annotations

import dataclasses

from plantd.config import section_changes, sections_changed


@dataclasses.dataclass(frozen=True)
class Section:
    limit: int = 1
    endpoint: str = "tcp://a"
    secret: str = "x"


@dataclasses.dataclass(frozen=True)
class Whole:
    one: Section = Section()
    two: Section = Section()


def test_changed_fields_are_split_into_live_and_restart_with_a_line_each() -> None:
    changes = section_changes(
        "broker", Section(), Section(limit=2, endpoint="tcp://b"), lambda key: key == "limit"
    )
    assert changes.live == {"limit": 2}
    assert changes.applied == ["broker.limit: 1 -> 2"]
    assert changes.restart == ["broker.endpoint: 'tcp://a' -> 'tcp://b'"]


def test_values_can_be_left_out_of_the_lines() -> None:
    changes = section_changes("s", Section(), Section(secret="y"), lambda key: True, values=False)
    assert changes.applied == ["s.secret: changed"]
    assert "y" not in repr(changes.applied)


def test_nothing_changed_is_nothing_to_say() -> None:
    changes = section_changes("s", Section(), Section(), lambda key: True)
    assert (changes.live, changes.applied, changes.restart) == ({}, [], [])
    assert sections_changed(Whole(), Whole(two=Section(limit=9)), ["one", "two"]) == [
        "two: changed"
    ]
