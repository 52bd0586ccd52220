"""The org.plantd.State operations through the service convention, without sockets: frames in,
reply frames out (``plantd.service.dispatch``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import plantd.state
from plantd.service import ServiceDefinition, decode_reply, dispatch, encode_call
from plantd.state import ERROR_CODES, SERVICE_NAME, Limits, Store, build_definition
from plantd.worker import Request

SCOPE = "org.plantd.module.pump1"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "state.db") as the_store:
        yield the_store


@pytest.fixture
def state(store: Store) -> ServiceDefinition:
    return build_definition(store, Limits(max_key_bytes=32, max_value_bytes=256), part_bytes=300)


async def raw(state: ServiceDefinition, body: list[bytes]) -> list[list[bytes]]:
    """Every reply body the operation sends: PARTIALs, then the FINAL."""
    parts: list[list[bytes]] = []
    final = await dispatch(state, Request(b"client", body, parts.append))
    return [*parts, final]


async def call(state: ServiceDefinition, operation: str, **params: Any) -> Any:
    replies = await raw(state, encode_call(operation, params))
    return decode_reply(replies[-1])


async def error(state: ServiceDefinition, operation: str, **params: Any) -> tuple[str, str]:
    replies = await raw(state, encode_call(operation, params))
    reply = json.loads(replies[-1][0])
    assert reply["ok"] is False, reply
    return reply["error"]["code"], reply["error"]["message"]


async def test_every_operation_is_listed_with_its_documentation(state: ServiceDefinition) -> None:
    listed = await call(state, "operations")
    names = [op["name"] for op in listed]
    assert names == sorted(
        [
            "batch",
            "compare-and-set",
            "create-scope",
            "delete",
            "delete-scope",
            "get",
            "health",
            "list",
            "list-scopes",
            "operations",
            "set",
            "snapshot",
        ]
    )
    for op in listed:
        assert op["doc"], op["name"]
    assert [op["name"] for op in listed if op["streaming"]] == ["snapshot"]
    assert state.name == SERVICE_NAME


async def test_a_session_of_operations(state: ServiceDefinition) -> None:
    assert (await call(state, "create-scope", scope=SCOPE))["created"] is True
    done = await call(state, "set", scope=SCOPE, key="speed", value=12.5, request_id="r1")
    assert done == {"scope": SCOPE, "key": "speed", "revision": 2, "version": 1}
    assert await call(state, "set", scope=SCOPE, key="speed", value=12.5, request_id="r1") == done
    got = await call(state, "get", scope=SCOPE, key="speed")
    assert got == {"scope": SCOPE, "key": "speed", "value": 12.5, "revision": 2, "version": 1}
    cas = await call(state, "compare-and-set", scope=SCOPE, key="speed", value=13, if_revision=2)
    assert cas["revision"] == 3
    batch = await call(
        state,
        "batch",
        ops=[
            {"op": "set", "scope": SCOPE, "key": "mode", "value": "auto"},
            {"op": "delete", "scope": SCOPE, "key": "speed", "if_revision": 3},
        ],
    )
    assert batch["revision"] == 5
    listed = await call(state, "list", scope=SCOPE, values=True)
    assert listed["keys"] == [{"key": "mode", "revision": 4, "version": 1, "value": "auto"}]
    scopes = await call(state, "list-scopes")
    assert scopes["scopes"][0]["keys"] == 1
    health = await call(state, "health")
    assert health["status"] == "ok"
    assert (health["revision"], health["scopes"], health["keys"]) == (5, 1, 1)
    assert health["writes"] == 5  # acknowledged, the answer to the retried request id too
    assert (await call(state, "delete", scope=SCOPE, key="mode"))["revision"] == 6
    assert (await call(state, "delete-scope", scope=SCOPE))["keys"] == 0


async def test_snapshot_streams_parts_within_the_budget(
    state: ServiceDefinition, store: Store
) -> None:
    await call(state, "create-scope", scope=SCOPE)
    await call(state, "create-scope", scope="empty")
    for n in range(10):
        await call(state, "set", scope=SCOPE, key=f"k{n}", value="x" * 100)
    replies = await raw(state, encode_call("snapshot", {}))
    parts = [decode_reply(reply) for reply in replies]
    assert parts[-1] == {"revision": 12, "scopes": 2, "keys": 10}
    pump = [p for p in parts[:-1] if p["scope"] == SCOPE]
    assert len(pump) > 1  # 10 values of ~100 bytes do not fit a 300-byte part
    assert sum(len(p["keys"]) for p in pump) == 10
    assert all(len(json.dumps(p)) < 700 for p in pump)
    empty = [p for p in parts[:-1] if p["scope"] == "empty"]
    assert empty == [{"scope": "empty", "exists": True, "revision": 2, "keys": {}}]
    assembled = plantd.state.snapshot_from_parts(parts)
    assert assembled.revision == 12
    assert assembled.canonical() == store.snapshot().canonical()
    missing = [decode_reply(r) for r in await raw(state, encode_call("snapshot", {"scope": "no"}))]
    assert missing[0] == {"scope": "no", "exists": False, "revision": 0, "keys": {}}


@pytest.mark.parametrize(
    ("operation", "params", "code", "message"),
    [
        ("get", {"scope": SCOPE}, "bad-request", "params.key is required"),
        ("get", {"scope": SCOPE, "key": 5}, "bad-request", "params.key: expected str, got int"),
        ("get", {"scope": "a b", "key": "k"}, "state.invalid-scope", "scope 'a b' is not dotted"),
        ("get", {"scope": SCOPE, "key": "x" * 33}, "state.too-large", "state.max_key_bytes (32)"),
        (
            "get",
            {"scope": SCOPE, "key": "k", "extra": 1},
            "bad-request",
            "unknown parameter(s) extra",
        ),
        ("set", {"scope": SCOPE, "key": "k"}, "bad-request", "params.value is required"),
        (
            "set",
            {"scope": SCOPE, "key": "k", "value": 1, "if_revison": 3},
            "bad-request",
            "unknown parameter(s) if_revison (expected: if_revision, key, request_id, scope, "
            "value)",
        ),
        ("set", {"scope": SCOPE, "key": "k", "value": "x" * 300}, "state.too-large", "256"),
        ("set", {"scope": SCOPE, "key": "k", "value": 1}, "state.unknown-scope", "no scope"),
        (
            "set",
            {"scope": SCOPE, "key": "k", "value": 1, "if_revision": -1},
            "bad-request",
            "params.if_revision must be >= 0",
        ),
        (
            "set",
            {"scope": SCOPE, "key": "k", "value": 1, "request_id": "a b"},
            "state.invalid-request-id",
            "request_id 'a b'",
        ),
        ("compare-and-set", {"scope": SCOPE, "key": "k", "value": 1}, "bad-request", "if_revision"),
        ("list", {"scope": SCOPE, "limit": 0}, "bad-request", "params.limit must be 1-1000"),
        ("batch", {"ops": "x"}, "bad-request", "params.ops: expected list"),
        ("batch", {"ops": [1]}, "bad-request", "ops[0]: expected an object"),
        ("batch", {"ops": [{"op": "get"}]}, "bad-request", "ops[0]: op must be 'set' or 'delete'"),
        (
            "batch",
            {"ops": [{"op": "delete", "scope": SCOPE, "key": "k", "value": 1}]},
            "bad-request",
            "ops[0]: unknown parameter(s) value",
        ),
        (
            "batch",
            {"ops": [{"op": "set", "scope": SCOPE, "key": "k", "value": "x" * 300}]},
            "state.too-large",
            "ops[0]: value is",
        ),
        ("health", {"verbose": True}, "bad-request", "unknown parameter(s) verbose"),
    ],
)
async def test_bad_params_are_named(
    state: ServiceDefinition, operation: str, params: dict[str, Any], code: str, message: str
) -> None:
    got_code, got_message = await error(state, operation, **params)
    assert got_code == code
    assert message in got_message


async def test_unknown_operations_and_garbage(state: ServiceDefinition) -> None:
    code, message = await error(state, "drop-table")
    assert code == "unknown-operation"
    assert "org.plantd.State has no operation 'drop-table'" in message
    for body in ([b"get", b"{not json"], [b"get", b"[1]"], [b"\xff"], [b"get", b"{}", b"x"]):
        reply = json.loads((await raw(state, body))[-1][0])
        assert reply["error"]["code"] == "bad-request"


async def test_nan_in_params_is_refused(state: ServiceDefinition) -> None:
    await call(state, "create-scope", scope=SCOPE)
    # Python's json reads NaN; it is not JSON, and the store must not hold it.
    body = [b"set", b'{"scope": "%s", "key": "k", "value": NaN}' % SCOPE.encode()]
    reply = json.loads((await raw(state, body))[-1][0])
    assert reply["error"]["code"] == "state.invalid-value"


def test_error_codes_are_documented() -> None:
    docs = (Path(__file__).parents[3] / "docs" / "state.md").read_text()
    for code in ERROR_CODES:
        assert f"`{code}`" in docs, code


def test_exports() -> None:
    assert sorted(plantd.state.__all__) == sorted(
        [
            "ERROR_CODES",
            "MAX_SCOPE_CHARS",
            "SERVICE_NAME",
            "ChangeEvent",
            "Changed",
            "CreateScope",
            "Delete",
            "DeleteScope",
            "Entry",
            "Limits",
            "Outcome",
            "Replica",
            "ReplicaState",
            "Resynced",
            "ScopeSnapshot",
            "Set",
            "Snapshot",
            "StateClient",
            "StateDamaged",
            "StateError",
            "StateService",
            "Store",
            "StoreStats",
            "Update",
            "Write",
            "build_definition",
            "new_request_id",
            "open_store",
            "snapshot_from_parts",
            "topic_for",
        ]
    )
    for name in plantd.state.__all__:
        assert getattr(plantd.state, name) is not None
