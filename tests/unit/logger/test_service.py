"""``org.plantd.Logger`` through ``dispatch`` with a fake request: no sockets, a real store.
(The service over a real broker: tests/integration/logger/test_logger_process.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plantd.config import LoggerConfig
from plantd.errors import ServiceError
from plantd.logger import SERVICE, LogStore, logger_service, to_row
from plantd.service import decode_reply, dispatch, encode_call
from plantd.worker import Request

T0 = 1_700_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LogStore]:
    store = LogStore(tmp_path / "logs.db", LoggerConfig())
    store.write(
        [
            to_row(f"log.{source}.{level}", {"time": T0 + i, "message": f"m{i}"}, 0.0)
            for i, (source, level) in enumerate(
                [("state", "info"), ("module.a", "warning"), ("module.b", "error")] * 5
            )
        ]
    )
    yield store
    store.close()


async def ask(store: LogStore, operation: str, params: dict[str, Any] | None = None) -> Any:
    async def status() -> dict[str, Any]:
        return {"records": 15}

    request = Request(b"client", encode_call(operation, params), lambda frames: None)
    return decode_reply(await dispatch(logger_service(status, store.read), request), SERVICE)


def test_the_service_is_read_access() -> None:
    async def status() -> dict[str, Any]:
        return {}

    definition = logger_service(status, lambda job: status())
    assert definition.name == SERVICE == "org.plantd.Logger"
    assert sorted(definition.operations) == ["query", "status"]
    assert {op.access for op in definition.operations.values()} == {"read"}


async def test_query_pages_and_follows(store: LogStore) -> None:
    page = await ask(store, "query", {"limit": 4, "level": "warning"})
    assert [r["id"] for r in page["records"]] == [15, 14, 12, 11]
    assert page["more"] is True
    page = await ask(store, "query", {"after_id": 12, "source": "module."})
    assert [r["id"] for r in page["records"]] == [14, 15]
    assert page["more"] is False
    page = await ask(store, "query", {"since": T0 + 3, "until": T0 + 5, "level": "WARN"})
    assert [(r["id"], r["level"], r["source"]) for r in page["records"]] == [
        (5, "warning", "module.a")
    ]
    assert await ask(store, "status") == {"records": 15}


@pytest.mark.parametrize(
    ("params", "complaint"),
    [
        ({"limit": 0}, "params.limit: expected 1 to 10000, got 0"),
        ({"limit": "5"}, "params.limit: expected int"),
        ({"level": "loud"}, "params.level: expected one of debug, info, warning"),
        ({"level": 3}, "params.level: expected str"),
        ({"since": "10m"}, "params.since: expected int or float"),
        ({"until": float("inf")}, "params.until: expected a finite number"),
        ({"source": ["a"]}, "params.source"),
        ({"contains": 1}, "params.contains"),
        ({"after_id": -1}, "params.after_id"),
        ({"before_id": 1.5}, "params.before_id"),
    ],
)
async def test_bad_params_are_refused_naming_the_param(
    store: LogStore, params: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ServiceError) as caught:
        await ask(store, "query", params)
    assert caught.value.code == "bad-request"
    assert complaint in caught.value.message
