"""Reading what the broker (MMI) and each service (``operations``) answer into the catalogue."""

from __future__ import annotations

import json

import pytest

from plantd.proxy._catalogue import (
    OperationInfo,
    ServiceInfo,
    Workers,
    parse_operations,
    parse_services,
    parse_workers,
)
from plantd.service import ServiceDefinition
from plantd.service.echo import ECHO


def frames(value: object) -> list[bytes]:
    return [json.dumps(value).encode()]


def test_services_are_the_names_a_service_may_have_sorted() -> None:
    answer = frames(["org.plantd.State", "org.plantd.module.Echo", "has space", "", 7, "a" * 256])
    assert parse_services(answer) == ["org.plantd.State", "org.plantd.module.Echo"]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ([b"{}"], "expected a list, got dict"),
        ([b"not json"], "not JSON"),
        ([b"[]", b"[]"], "expected one JSON frame, got 2"),
        ([b"\xff"], "not JSON"),
    ],
)
def test_a_services_answer_that_is_not_a_list_of_names_is_refused(
    answer: list[bytes], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_services(answer)


def test_workers_table() -> None:
    answer = frames(
        {
            "org.plantd.State": {"idle": 3, "busy": 1, "queued": 2},
            "gone": {"idle": 0, "busy": 0, "queued": 5},
            "odd": {"idle": -1, "busy": 0, "queued": 0},
            "worse": {"idle": True, "busy": 0, "queued": 0},
            "worst": [1, 2, 3],
        }
    )
    assert parse_workers(answer) == {
        "org.plantd.State": Workers(idle=3, busy=1, queued=2),
        "gone": Workers(idle=0, busy=0, queued=5),
    }
    with pytest.raises(ValueError, match="expected an object"):
        parse_workers(frames([]))


def test_operations_as_a_plantd_service_describes_them() -> None:
    operations = parse_operations(ECHO.describe(), ECHO.name)
    assert [op.name for op in operations] == ["echo", "operations", "stream"]
    stream = operations[2]
    assert stream.streaming is True
    assert stream.access == "read"
    assert stream.summary == stream.doc.splitlines()[0]
    assert operations[0].streaming is False


def test_a_malformed_operation_is_skipped_and_the_others_kept() -> None:
    listed = [
        {"name": "get", "doc": "Read a key.\n\nMore.", "streaming": False, "access": "read"},
        {"name": "Bad Name", "doc": "", "streaming": False, "access": "read"},
        {"name": "set", "doc": 5, "streaming": False, "access": "configure"},
        {"name": "flush", "doc": "", "streaming": "yes", "access": "configure"},
        {"name": "drop", "doc": "", "streaming": False, "access": "superuser"},
        "not an object",
        {"name": "get", "doc": "a second get is ignored", "streaming": True, "access": "admin"},
        {"name": "reset"},  # an old service: no doc, no streaming flag, no access
    ]
    operations = parse_operations(listed, "org.example.Foreign")
    assert operations == (
        OperationInfo("get", "Read a key.\n\nMore.", False, "read"),
        OperationInfo("reset", "", False, "admin"),
    )
    assert operations[0].summary == "Read a key."
    assert operations[1].summary == ""


def test_operations_that_are_not_a_list_are_refused() -> None:
    with pytest.raises(ValueError, match="answered a dict, not a list"):
        parse_operations({"echo": "..."})


def test_a_service_as_listed_by_the_rest_api() -> None:
    definition = ServiceDefinition("org.example.Thing", "A thing.")

    @definition.operation("poke", access="operate")
    async def _poke(params: dict[str, object]) -> object:
        """Poke it."""
        return None

    info = ServiceInfo(
        "org.example.Thing",
        parse_operations(definition.describe()),
        Workers(idle=1, busy=0, queued=0),
    )
    assert info.operation("poke") == OperationInfo("poke", "Poke it.", False, "operate")
    assert info.operation("nope") is None
    assert info.to_json() == {
        "name": "org.example.Thing",
        "workers": {"idle": 1, "busy": 0, "queued": 0},
        "operations": [
            {
                "name": "operations",
                "doc": "List this service's operations.",
                "streaming": False,
                "access": "read",
            },
            {"name": "poke", "doc": "Poke it.", "streaming": False, "access": "operate"},
        ],
    }
    silent = ServiceInfo("org.example.Old", None, note="it does not list its operations")
    assert silent.to_json()["operations"] == []
    assert silent.to_json()["note"] == "it does not list its operations"
    assert silent.operation("anything") is None
