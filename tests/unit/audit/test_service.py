"""``org.plantd.Audit`` through ``dispatch`` with a fake request: no sockets, a real file."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from plantd.audit import AUDIT_SERVICE, AuditEvent, AuditStore, audit_service
from plantd.config import AuditConfig
from plantd.errors import ServiceError
from plantd.service import decode_reply, dispatch, encode_call
from plantd.worker import Request

T0 = 1_700_000_000.0


async def ask(path: Path, operation: str, params: dict[str, Any] | None = None) -> Any:
    request = Request(b"client", encode_call(operation, params), lambda frames: None)
    return decode_reply(await dispatch(audit_service(path), request), AUDIT_SERVICE)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    with AuditStore(path, AuditConfig()) as store:
        store.append(
            [
                AuditEvent(f"p{i % 3}", "call", f"svc{i % 2} op", "ok", time=T0 + i)
                for i in range(30)
            ]
            + [AuditEvent("-", "connect", "tcp://0.0.0.0:9797", "denied", time=T0 + 30, count=9)]
        )
    return path


def test_the_service_has_its_name_and_operations(path: Path) -> None:
    definition = audit_service(path)
    assert definition.name == AUDIT_SERVICE == "org.plantd.Audit"
    assert sorted(definition.operations) == ["query", "status", "verify"]
    # Who did what is sensitive: every operation needs admin, as the built-in policy says.
    assert {op.access for op in definition.operations.values()} == {"admin"}


async def test_query_filters_and_pages_back(path: Path) -> None:
    page = await ask(path, "query", {"principal": "p1", "limit": 4})
    assert [r["id"] for r in page["records"]] == [29, 26, 23, 20]
    assert page["more"] is True
    page = await ask(path, "query", {"principal": "p1", "limit": 4, "before_id": 20})
    assert [r["id"] for r in page["records"]] == [17, 14, 11, 8]
    page = await ask(path, "query", {"principal": "p1", "before_id": 8})
    assert ([r["id"] for r in page["records"]], page["more"]) == ([5, 2], False)
    page = await ask(path, "query", {"since": T0 + 10, "until": T0 + 12.5})
    assert [r["id"] for r in page["records"]] == [13, 12, 11]
    page = await ask(path, "query", {"target": "svc1", "action": "call", "limit": 100})
    assert len(page["records"]) == 15
    page = await ask(path, "query", {"result": "denied"})
    assert [(r["principal"], r["count"]) for r in page["records"]] == [("-", 9)]
    page = await ask(path, "query", {"since": None, "principal": None})
    assert len(page["records"]) == 31


@pytest.mark.parametrize(
    ("params", "complaint"),
    [
        ({"limit": 0}, "params.limit: expected 1 to 10000, got 0"),
        ({"limit": 10_001}, "params.limit"),
        ({"limit": "10"}, "params.limit: expected int"),
        ({"since": "10m"}, "params.since: expected int or float"),
        ({"until": True}, "params.until"),
        ({"principal": 7}, "params.principal: expected str"),
        ({"target": ["a"]}, "params.target"),
        ({"before_id": 0}, "params.before_id"),
        ({"before_id": 1.5}, "params.before_id"),
    ],
)
async def test_bad_params_are_refused_naming_the_param(
    path: Path, params: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ServiceError) as caught:
        await ask(path, "query", params)
    assert caught.value.code == "bad-request"
    assert complaint in caught.value.message


async def test_verify_reports_the_chain(path: Path) -> None:
    assert await ask(path, "verify") == {"ok": True, "checked": 31, "first_bad_id": None}
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER records_no_update")
        conn.execute("UPDATE records SET result = 'ok' WHERE id = 31")
    finally:
        conn.close()
    assert await ask(path, "verify") == {"ok": False, "checked": 31, "first_bad_id": 31}


async def test_status_counts_records_and_events(path: Path) -> None:
    status = await ask(path, "status")
    assert status["count"] == 31
    assert status["events"] == 39
    assert (status["oldest"], status["newest"]) == (T0, T0 + 30)
    assert status["pruned"] == 0
    assert status["bytes"] > 0
    assert status["database"] == str(path)


async def test_before_the_first_record_everything_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "none.db"
    assert await ask(path, "query") == {"records": [], "more": False}
    assert await ask(path, "verify") == {"ok": True, "checked": 0, "first_bad_id": None}
    assert (await ask(path, "status"))["count"] == 0
    assert not path.exists()  # reading never creates the file


async def test_an_unreadable_file_is_reported_as_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ServiceError) as caught:
        await ask(path, "query")
    assert caught.value.code == "audit.unavailable"
    assert str(path) in caught.value.message
