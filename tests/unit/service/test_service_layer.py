"""The service-call convention: call codec, reply codec, operation dispatch."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from plantd.errors import RemoteProtocolError, ServiceError
from plantd.service import (
    Json,
    OperationError,
    Params,
    ServiceDefinition,
    decode_call,
    decode_reply,
    dispatch,
    encode_call,
    encode_error,
    encode_ok,
    param,
)
from plantd.service._codec import BadRequest
from plantd.service.echo import ECHO
from plantd.worker import Request


def test_call_round_trip() -> None:
    assert decode_call(encode_call("get", {"key": "a"})) == ("get", {"key": "a"})
    assert decode_call([b"health"]) == ("health", {})
    assert decode_call([b"health", b""]) == ("health", {})


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ([], "expected 2 frames"),
        ([b"a", b"{}", b"extra"], "expected 2 frames"),
        ([b"\xff"], "not ASCII"),
        ([b"Get"], "invalid operation name"),
        ([b"get", b"{oops"], "not valid JSON"),
        ([b"get", b"[1]"], "must be a JSON object"),
        ([b"get", b"[" * 100_000], "nested too deeply"),
        ([b"get", b'{"n": ' + b"9" * 5000 + b"}"], "not valid JSON"),
    ],
)
def test_bad_calls_are_named(body: list[bytes], complaint: str) -> None:
    with pytest.raises(BadRequest, match=complaint):
        decode_call(body)


def test_replies() -> None:
    assert decode_reply(encode_ok({"a": 1})) == {"a": 1}
    with pytest.raises(ServiceError) as caught:
        decode_reply(encode_error("state.unknown-scope", "no scope 'x'"), "org.plantd.State")
    assert (caught.value.code, caught.value.message) == ("state.unknown-scope", "no scope 'x'")
    assert "org.plantd.State" in str(caught.value)
    for bad in ([b"not json"], [b"{}"], [b'{"ok": false}'], [b"a", b"b"]):
        with pytest.raises(RemoteProtocolError):
            decode_reply(bad)


def test_param_checks_types_and_names_the_key() -> None:
    assert param({"n": 3}, "n", int) == 3
    assert param({}, "n", int, 5) == 5
    with pytest.raises(OperationError, match=r"params\.n is required"):
        param({}, "n", int)
    with pytest.raises(OperationError, match=r"params\.n: expected int, got bool"):
        param({"n": True}, "n", int)


def collect(definition: ServiceDefinition, body: list[bytes]) -> tuple[list[Json], Json]:
    partials: list[list[bytes]] = []
    request = Request(b"client", body, partials.append)
    import asyncio

    final = asyncio.run(dispatch(definition, request))
    return [json.loads(p[0]) for p in partials], json.loads(final[0])


def test_dispatch_answers_operations_and_errors() -> None:
    service = ServiceDefinition("t.svc")

    @service.operation("add", access="read")
    async def add(params: Params) -> Json:
        """Add a and b."""
        return param(params, "a", int) + param(params, "b", int)

    @service.operation("fail", access="read")
    async def fail(params: Params) -> Json:
        raise OperationError("t.refused", "not today")

    @service.operation("bug", access="read")
    async def bug(params: Params) -> Json:
        return 1 / 0

    @service.operation("count", access="read")
    async def count(params: Params) -> AsyncIterator[Json]:
        for i in range(3):
            yield i

    assert collect(service, encode_call("add", {"a": 1, "b": 2})) == ([], {"ok": True, "result": 3})
    _, reply = collect(service, encode_call("fail"))
    assert reply["error"] == {"code": "t.refused", "message": "not today"}
    _, reply = collect(service, encode_call("bug"))
    assert reply["error"]["code"] == "internal"
    assert "ZeroDivisionError" in reply["error"]["message"]
    _, reply = collect(service, encode_call("nope"))
    assert reply["error"]["code"] == "unknown-operation"
    assert "add, bug, count, fail, operations" in reply["error"]["message"]
    _, reply = collect(service, [b"add", b"{"])
    assert reply["error"]["code"] == "bad-request"
    partials, reply = collect(service, encode_call("count"))
    assert [p["result"] for p in partials] == [0, 1]
    assert reply == {"ok": True, "result": 2}
    _, reply = collect(service, encode_call("operations"))
    names = [(op["name"], op["streaming"]) for op in reply["result"]]
    assert ("add", False) in names
    assert ("count", True) in names
    assert next(op["doc"] for op in reply["result"] if op["name"] == "add") == "Add a and b."


def test_operations_cannot_be_defined_twice() -> None:
    service = ServiceDefinition("t.svc")

    @service.operation("a", access="read")
    async def a(params: Params) -> Json:
        return None

    with pytest.raises(ValueError, match="already defined"):
        service.operation("a", access="read")(a)
    with pytest.raises(ValueError, match="already defined"):
        service.operation("operations", access="read")(a)


def test_echo_validates_its_params() -> None:
    _, reply = collect(ECHO, encode_call("echo", {"delay": 100}))
    assert reply["error"]["code"] == "bad-request"
    _, reply = collect(ECHO, encode_call("stream", {"count": -1}))
    assert reply["error"]["code"] == "bad-request"
