"""The REST routes against real services: a real broker, state service, echo service and
logger (processes), the whole proxy app (``_server.build_app``: the real authentication
middleware, every part's routes, the problem answers) served in this process through
``httpx.ASGITransport``. People are admitted ``user.*`` principals of the key ring; each
test request carries one's real API token (``Authorization: Bearer pdt_…``), and one test logs
in with a password for a session cookie and its CSRF token.

First without CURVE (``security.mode: none``: the proxy's own check is the only one), then
under CURVE, where every call goes to the broker on behalf of the person (delegation): the
broker decides with that person's roles, and the audit trail names them, ``via service.proxy``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from plantd.client import AsyncClient, Client
from plantd.clock import SYSTEM_CLOCK
from plantd.config import Access, load_config
from plantd.proxy._accounts import Accounts
from plantd.proxy._catalogue import Catalogue
from plantd.proxy._context import ProxyContext, User
from plantd.proxy._people import People
from plantd.proxy._problems import Problem
from plantd.proxy._server import build_app
from plantd.security import Credentials
from plantd.service import call
from plantd.service.echo import SERVICE_NAME as ECHO
from plantd.testing import ManagedProcess, wait_for_workers
from plantd.worker import AsyncWorker, Request
from tests.conftest import Stack, make_stack

STATE = "org.plantd.State"
HEALTH = "org.plantd.Health"
ROLES = {
    "user.vera": "viewer",
    "user.otto": "operator",
    "user.eng": "engineer",
    "user.ada": "admin",
}
PASSWORD = "a-long-enough-password"


# -- the app under test ---------------------------------------------------------------------


def admit_people(stack: Stack) -> dict[str, str]:
    """Admit :data:`ROLES` to the key ring (as ``plant keys add``), give each an API token and
    ``user.eng`` a password; the ``Authorization`` header of each."""
    config = load_config(stack.config_dir)
    keyset = stack.keyset()
    for principal, role in ROLES.items():
        if config.security.enabled:
            stack.credentials(principal, (role,))  # and wait until the broker admits them
        elif not keyset.public_path(principal).exists():
            keyset.add(principal, roles=(role,), generate_secret=keyset.secret_path(principal))
    accounts = Accounts.from_config(config, SYSTEM_CLOCK)
    try:
        accounts.set_password("user.eng", PASSWORD)
        return {
            principal: "Bearer " + accounts.create_token(principal, "rest tests", None)[0]
            for principal in ROLES
        }
    finally:
        accounts.close()


@dataclass
class Proxy:
    http: httpx.AsyncClient
    ctx: ProxyContext
    tokens: dict[str, str]

    def as_(self, principal: str) -> dict[str, str]:
        return {"Authorization": self.tokens[principal]}


@asynccontextmanager
async def proxy_app(stack: Stack, credentials: Credentials | None = None) -> AsyncIterator[Proxy]:
    """The proxy's app over ``stack``, built as ``plantd-proxy`` builds it (its own MDP
    client, ``ctx.delegate`` under CURVE), and an HTTP client at it."""
    tokens = await asyncio.to_thread(admit_people, stack)
    config = load_config(stack.config_dir)
    async with AsyncClient(stack.endpoint, timeout=3.0, retries=0, credentials=credentials) as mdp:
        ctx = ProxyContext(
            config=config,
            clock=SYSTEM_CLOCK,
            people=People(config, SYSTEM_CLOCK),
            client=mdp,
            delegate=config.security.enabled,
        )
        app = build_app(ctx)
        transport = httpx.ASGITransport(app=app)  # an unexpected exception fails the test
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as http:
                yield Proxy(http, ctx, tokens)
        finally:
            for hook in reversed(ctx.shutdown):  # the lifespan's end (closes proxy.db)
                await hook()


def person(principal: str, levels: set[Access]) -> User:
    """``principal`` as a proxy that believed them to hold ``levels`` would see them."""
    return User(principal, frozenset({ROLES[principal]}), frozenset(levels), "token", "test")


def problem(answer: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The answer, which must be a problem of ``status`` (and ``code``)."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    return body


def start(stack: Stack, name: str, *argv: str) -> ManagedProcess:
    process = ManagedProcess.plantd(list(argv), name=name, log_dir=stack.log_dir).start()
    stack.processes.append(process)
    return process


# -- without CURVE ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Broker, state service, echo service and logger, without CURVE."""
    stack = make_stack(tmp_path_factory.mktemp("rest"))
    try:
        stack.start_broker()
        config_dir = str(stack.config_dir)
        start(stack, "state", "plantd.state", "--config", config_dir)
        start(stack, "logger", "plantd.logger", "--config", config_dir)
        stack.start_echo(wait=False)
        for service in (STATE, ECHO, HEALTH, "org.plantd.Logger"):
            wait_for_workers(stack.endpoint, service)
        yield stack
    except BaseException:
        print(stack.logs())
        raise
    finally:
        for process in stack.processes:
            process.kill()


ROUTES = [
    ("GET", "/api/v1/services"),
    ("GET", "/api/v1/broker"),
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/metrics"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", f"/api/v1/services/{STATE}/get"),
    ("POST", f"/api/v1/services/{STATE}/set"),
    ("POST", "/api/v1/services/no.such.Service/anything"),
    ("POST", "/api/v1/services/mmi.services/x"),
]


async def test_every_route_needs_a_person(plain: Stack) -> None:
    async with proxy_app(plain) as proxy:
        for method, path in ROUTES:
            for headers in ({}, {"Authorization": "Bearer pdt_0_not-a-token"}):
                answer = await proxy.http.request(method, path, content=b"[1", headers=headers)
                assert problem(answer, 401)["code"] == "proxy.unauthenticated", (method, path)


async def test_the_catalogue_lists_services_workers_and_operations(plain: Stack) -> None:
    async with proxy_app(plain) as proxy:
        http, as_ = proxy.http, proxy.as_
        answer = await http.get("/api/v1/services", headers=as_("user.vera"))
        assert answer.status_code == 200, answer.text
        services = {s["name"]: s for s in answer.json()["services"]}
        assert {STATE, ECHO, HEALTH, "org.plantd.Logger"} <= set(services)
        assert not any(name.startswith("mmi.") for name in services)
        state = services[STATE]
        operations = {op["name"]: op for op in state["operations"]}
        assert {"get", "set", "create-scope", "operations"} <= set(operations)
        assert operations["get"]["access"] == "read"
        assert operations["set"]["access"] == "configure"
        assert operations["get"]["doc"]
        config = load_config(plain.config_dir)
        workers = state["workers"]
        assert workers["idle"] + workers["busy"] == config.state.workers
        assert {op["name"]: op["streaming"] for op in services[ECHO]["operations"]}["stream"]

        broker = await http.get("/api/v1/broker", headers=as_("user.vera"))
        assert broker.status_code == 200
        assert broker.json()["services"] >= 4
        assert "counters" in broker.json()


async def test_calls_round_trip_for_the_person(plain: Stack) -> None:
    base = f"/api/v1/services/{STATE}"
    async with proxy_app(plain) as proxy:
        http, as_ = proxy.http, proxy.as_
        eng = as_("user.eng")
        answer = await http.post(f"{base}/create-scope", json={"scope": "rest.line1"}, headers=eng)
        assert answer.status_code == 200, answer.text
        answer = await http.post(
            f"{base}/set", json={"scope": "rest.line1", "key": "speed", "value": 42.5}, headers=eng
        )
        assert answer.status_code == 200, answer.text
        # GET for a read: each query value JSON if it parses ("42" would be 42), else a string
        got = await http.get(
            f"{base}/get", params={"scope": "rest.line1", "key": "speed"}, headers=eng
        )
        assert got.status_code == 200, got.text
        assert got.json()["result"]["value"] == 42.5
        posted = await http.post(
            f"{base}/get", json={"scope": "rest.line1", "key": "speed"}, headers=eng
        )
        assert posted.json() == got.json()
        # a write is never a GET
        refused = await http.get(f"{base}/set", params={"scope": "rest.line1"}, headers=eng)
        assert problem(refused, 405)["detail"].startswith(
            "'set' on org.plantd.State needs 'configure'"
        )
        assert refused.headers["allow"] == "POST"
        # the service's own errors, with their codes and statuses
        missing = await http.post(
            f"{base}/get", json={"scope": "rest.line1", "key": "nope"}, headers=eng
        )
        assert problem(missing, 404, "state.unknown-key")["service"] == STATE
        wrong = await http.post(f"{base}/get", json={"scope": 5, "key": "k"}, headers=eng)
        assert "params.scope" in problem(wrong, 400, "bad-request")["detail"]
        # query values are JSON when they parse: echo shows what the service was sent
        echoed = await http.get(
            f"/api/v1/services/{ECHO}/echo",
            params={"n": "3", "on": "true", "list": "[1,2]", "word": "plant.line1", "nan": "NaN"},
            headers=eng,
        )
        assert echoed.json()["result"] == {
            "n": 3, "on": True, "list": [1, 2], "word": "plant.line1", "nan": "NaN",
        }  # fmt: skip
        twice = await http.get(f"/api/v1/services/{ECHO}/echo?n=1&n=2", headers=eng)
        problem(twice, 400)


async def test_a_viewer_may_read_but_not_write_without_curve(plain: Stack) -> None:
    """Without CURVE the broker knows no people: the proxy's own check keeps a viewer out."""
    base = f"/api/v1/services/{STATE}"
    async with proxy_app(plain) as proxy:
        http, as_ = proxy.http, proxy.as_
        await http.post(
            f"{base}/create-scope", json={"scope": "rest.viewer"}, headers=as_("user.eng")
        )
        refused = await http.post(
            f"{base}/set", json={"scope": "rest.viewer", "key": "k", "value": 1},
            headers=as_("user.vera"),
        )  # fmt: skip
        body = problem(refused, 403, "broker.denied")
        assert "user.vera may not call 'set' on org.plantd.State" in body["detail"]
        listed = await http.get(
            f"{base}/list", params={"scope": "rest.viewer"}, headers=as_("user.vera")
        )
        assert listed.status_code == 200, listed.text
        assert problem(
            await http.post(f"{base}/set", json={}, headers=as_("user.otto")), 403, "broker.denied"
        )


async def test_bodies_the_proxy_refuses(plain: Stack) -> None:
    echo = f"/api/v1/services/{ECHO}/echo"
    async with proxy_app(plain) as proxy:
        http, as_ = proxy.http, proxy.as_
        eng = as_("user.eng")
        json_type = {**eng, "Content-Type": "application/json"}
        problem(await http.post(echo, content=b'{"a": ', headers=json_type), 400)
        problem(await http.post(echo, content=b"\xff\xfe", headers=json_type), 400)
        problem(await http.post(echo, content=b'{"a": NaN}', headers=json_type), 400)
        problem(await http.post(echo, content=b"[" * 100_000, headers=json_type), 400)
        deep = b'{"a": ' + b"[" * 500 + b"]" * 500 + b"}"
        assert (
            "nested"
            in problem(await http.post(echo, content=deep, headers=json_type), 400)["detail"]
        )
        for not_an_object in (b"[1, 2]", b'"text"', b"null", b"3"):
            problem(await http.post(echo, content=not_an_object, headers=json_type), 422)
        big = json.dumps({"blob": "x" * (1 << 20)}).encode()
        problem(await http.post(echo, content=big, headers=json_type), 413)

        async def trickle() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for _ in range(20):
                yield b" " * 65_536
            yield b"{}"

        problem(await http.post(echo, content=trickle(), headers=json_type), 413)
        problem(await http.post(echo, data={"a": "1"}, headers=eng), 415)
        # what is accepted: an empty body ({}), JSON with a charset, +json, a lone surrogate
        empty = await http.post(echo, headers=eng)
        assert empty.json() == {"result": {}}
        charset = {**eng, "Content-Type": "application/json; charset=utf-8"}
        assert (await http.post(echo, content=b'{"a": 1}', headers=charset)).json() == {
            "result": {"a": 1}
        }
        odd = await http.post(echo, content=b'{"s": "\\ud800"}', headers=json_type)
        assert odd.status_code == 200
        assert odd.json() == {"result": {"s": "\ud800"}}


async def test_names_the_proxy_does_not_serve(plain: Stack) -> None:
    async with proxy_app(plain) as proxy:
        http, as_ = proxy.http, proxy.as_
        eng = as_("user.eng")
        problem(await http.post("/api/v1/services/no.such.Service/get", headers=eng), 404,
                "proxy.unknown-service")  # fmt: skip
        problem(await http.post(f"/api/v1/services/{STATE}/no-such-op", headers=eng), 404,
                "proxy.unknown-operation")  # fmt: skip
        problem(await http.post(f"/api/v1/services/{STATE}/NotAnOp", headers=eng), 404)
        for mmi in ("mmi.services", "mmi.broker", "mmi.workers"):
            body = problem(await http.post(f"/api/v1/services/{mmi}/x", headers=eng), 404)
            assert "/api/v1/broker" in body["detail"]
        for odd in ("a%20b", "%C3%A9t%C3%A9", "x" * 300, "%00"):
            problem(await http.post(f"/api/v1/services/{odd}/get", headers=eng), 404)
        problem(await http.delete(f"/api/v1/services/{STATE}/get", headers=eng), 405)


async def test_a_streaming_operation_answers_every_part(plain: Stack) -> None:
    stream = f"/api/v1/services/{ECHO}/stream"
    async with proxy_app(plain) as proxy:
        http, as_ = proxy.http, proxy.as_
        answer = await http.post(stream, json={"count": 4}, headers=as_("user.vera"))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "results": [{"index": 0}, {"index": 1}, {"index": 2}, {"index": 3}, {"count": 4}]
        }
        many = await http.get(stream, params={"count": 10_000}, headers=as_("user.vera"))
        assert len(many.json()["results"]) == 10_001
        refused = await http.post(stream, json={"count": -1}, headers=as_("user.vera"))
        problem(refused, 400, "bad-request")


async def test_a_service_that_does_not_list_its_operations(plain: Stack) -> None:
    """An old or foreign MDP worker: listed with a note, called as it is asked; and found on
    demand when it registered after the catalogue was made."""

    async def answer(request: Request) -> list[bytes]:
        operation = request.body[0].decode()
        if operation == "operations":
            reply = {"ok": False, "error": {"code": "unknown-operation", "message": "what?"}}
        else:
            reply = {"ok": True, "result": {"did": operation}}
        return [json.dumps(reply).encode()]

    async with proxy_app(plain) as proxy:
        http, as_ = proxy.http, proxy.as_
        before = await http.get("/api/v1/services", headers=as_("user.vera"))
        assert "org.example.Foreign" not in [s["name"] for s in before.json()["services"]]
        worker = AsyncWorker(plain.endpoint, "org.example.Foreign", answer, heartbeat_interval=0.25)
        serving = asyncio.create_task(worker.run())
        try:
            await asyncio.wait_for(worker.connected.wait(), 10)
            # named before any refresh: mmi.service says it is there
            called = await http.post("/api/v1/services/org.example.Foreign/ping",
                                     headers=as_("user.ada"))  # fmt: skip
            assert called.status_code == 200, called.text
            assert called.json() == {"result": {"did": "ping"}}
            listed = await http.get("/api/v1/services", headers=as_("user.vera"))
            foreign = next(
                s for s in listed.json()["services"] if s["name"] == "org.example.Foreign"
            )
            assert foreign["operations"] == []
            assert "unknown-operation: what?" in foreign["note"]
            # an operation no rule names is "admin" to the policy: an engineer may not
            problem(await http.post("/api/v1/services/org.example.Foreign/ping",
                                    headers=as_("user.eng")), 403)  # fmt: skip
            doc = (await http.get("/api/v1/openapi.json", headers=as_("user.vera"))).json()
            assert not [p for p in doc["paths"] if "Foreign" in p]
            assert "org.example.Foreign" in [tag["name"] for tag in doc["tags"]]
        finally:
            worker.stop()
            await serving


async def test_the_openapi_document_names_every_operation(plain: Stack) -> None:
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    async with proxy_app(plain) as proxy:
        http, as_ = proxy.http, proxy.as_
        answer = await http.get("/api/v1/openapi.json", headers=as_("user.vera"))
        assert answer.status_code == 200
        doc = answer.json()
        OPENAPI_31_VALIDATOR.validate(doc)
        services = (await http.get("/api/v1/services", headers=as_("user.vera"))).json()
        for service in services["services"]:
            for op in service["operations"]:
                item = doc["paths"][f"/api/v1/services/{service['name']}/{op['name']}"]
                assert item["post"]["description"] == op["doc"]
                assert ("get" in item) == (item["post"]["x-plantd-access"] == "read")
        assert (
            doc["paths"][f"/api/v1/services/{STATE}/set"]["post"]["x-plantd-access"] == "configure"
        )
        for path in ("/api/v1/services", "/api/v1/health", "/api/v1/metrics", "/api/v1/broker"):
            assert path in doc["paths"]


async def test_health_and_metrics_from_the_logger(plain: Stack) -> None:
    async with proxy_app(plain) as proxy:
        http, as_ = proxy.http, proxy.as_
        health = await http.get("/api/v1/health", headers=as_("user.vera"))
        body = health.json()
        assert health.headers["content-type"] == "application/json"
        assert body["verdict"] in ("ok", "degraded", "failed")
        assert health.status_code == (200 if body["ok"] else 503)
        assert "broker" in [entry["name"] for entry in body["services"]]

        metrics = await http.get("/api/v1/metrics", headers=as_("user.vera"))
        assert metrics.status_code == 200, metrics.text
        assert metrics.headers["content-type"].startswith("text/plain")
        assert "# TYPE plantd_" in metrics.text
        open_metrics = await http.get(
            "/api/v1/metrics",
            headers={**as_("user.vera"), "Accept": "application/openmetrics-text; version=1.0.0"},
        )
        assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
        assert open_metrics.text.rstrip().endswith("# EOF")


async def test_the_catalogue_refreshes_from_startup_to_shutdown(plain: Stack) -> None:
    async with proxy_app(plain) as proxy:
        http, as_, ctx = proxy.http, proxy.as_, proxy.ctx
        starts = [h for h in ctx.startup if isinstance(getattr(h, "__self__", None), Catalogue)]
        stops = [h for h in ctx.shutdown if isinstance(getattr(h, "__self__", None), Catalogue)]
        assert len(starts) == len(stops) == 1
        await starts[0]()
        tasks = [t for t in asyncio.all_tasks() if t.get_name() == "plantd-proxy-catalogue"]
        assert len(tasks) == 1
        answer = await http.get("/api/v1/services", headers=as_("user.vera"))
        assert STATE in [s["name"] for s in answer.json()["services"]]
        await stops[0]()
        assert tasks[0].done()


async def test_a_slow_service_keeps_the_operations_it_listed(plain: Stack) -> None:
    """A refresh while every worker of a service is busy (its ``operations`` not answered in
    time) keeps what it listed before; a service that answers changes it."""
    slow = asyncio.Event()
    listing = [{"name": "ping", "doc": "Ping.", "streaming": False, "access": "read"}]

    async def answer(request: Request) -> list[bytes]:
        if slow.is_set():
            await asyncio.sleep(2)
        return [json.dumps({"ok": True, "result": listing}).encode()]

    worker = AsyncWorker(plain.endpoint, "org.example.Slow", answer, heartbeat_interval=0.25)
    serving = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.connected.wait(), 10)
        async with AsyncClient(plain.endpoint, timeout=3.0, retries=0) as mdp:
            catalogue = Catalogue(mdp, SYSTEM_CLOCK, timeout=0.5)
            await catalogue.refresh()
            assert catalogue.services["org.example.Slow"].operation("ping") is not None
            slow.set()
            await catalogue.refresh()
            kept = catalogue.services["org.example.Slow"]
            assert kept.operation("ping") is not None
            assert kept.note is None
            slow.clear()
            listing = [{"name": "pong", "doc": "", "streaming": False, "access": "read"}]
            await catalogue.current()
            while catalogue.services["org.example.Slow"].workers.busy:  # the slow answer in hand
                await asyncio.sleep(0.05)
                await catalogue.current()
            await catalogue.refresh()
            changed = catalogue.services["org.example.Slow"]
            assert [op.name for op in changed.operations or ()] == ["pong"]
    finally:
        worker.stop()
        await serving


async def test_a_browser_session_calls_with_its_csrf_token(plain: Stack) -> None:
    """The cookie of a password login works on these routes as a token does; an unsafe call
    without the session's anti-forgery token is refused before it reaches the route."""
    async with proxy_app(plain) as proxy:
        http = proxy.http
        login = await http.post("/api/v1/login", json={"user": "eng", "password": PASSWORD})
        assert login.status_code == 200, login.text
        csrf = login.json()["csrf"]
        echo = f"/api/v1/services/{ECHO}/echo"
        assert (await http.get(echo, params={"a": "1"})).json() == {"result": {"a": 1}}
        problem(await http.post(echo, json={"a": 1}), 403, "proxy.csrf")
        posted = await http.post(echo, json={"a": 1}, headers={"X-CSRF-Token": csrf})
        assert posted.json() == {"result": {"a": 1}}
        http.cookies.clear()
        problem(await http.get(echo), 401)


@pytest.mark.stack(proxy={"request_timeout": 2.0}, broker={"request_expiry": 0.5})
async def test_without_logger_or_broker(stack: Stack) -> None:
    """Nothing to ask: 503 problems, never a failure of the proxy's own."""
    stack.start_broker()
    async with proxy_app(stack) as proxy:
        http, as_ = proxy.http, proxy.as_
        problem(await http.get("/api/v1/metrics", headers=as_("user.vera")), 503, "proxy.no-logger")
        problem(await http.get("/api/v1/health", headers=as_("user.vera")), 503, "broker.no-worker")
        services = await http.get("/api/v1/services", headers=as_("user.vera"))
        assert services.json() == {"services": []}
        stack.processes[0].kill()
        problem(
            await http.get("/api/v1/services", headers=as_("user.vera")), 503, "proxy.no-broker"
        )
        problem(await http.get("/api/v1/broker", headers=as_("user.vera")), 503, "proxy.no-broker")
        problem(await http.post(f"/api/v1/services/{STATE}/get", headers=as_("user.vera")), 503)


# -- under CURVE: delegation ------------------------------------------------------------------


def audit_records(endpoint: str, principal: str) -> list[dict[str, Any]]:
    """The audit trail's records for ``principal``, asked as the test's own admin."""
    with Client(endpoint, timeout=3) as admin:
        found = call(admin, "org.plantd.Audit", "query", {"principal": principal, "limit": 100})
    return found["records"]  # type: ignore[no-any-return]


def until(condition: Any, what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)
    return result


@pytest.mark.stack(security={"mode": "curve"})
async def test_under_curve_every_call_is_the_persons(stack: Stack) -> None:
    stack.start_broker()
    start(stack, "state", "plantd.state", "--config", str(stack.config_dir))
    await asyncio.to_thread(wait_for_workers, stack.endpoint, STATE)
    key = await asyncio.to_thread(stack.credentials, "service.proxy")  # made by keys init
    base = f"/api/v1/services/{STATE}"
    async with proxy_app(stack, key) as proxy:
        http, as_, ctx = proxy.http, proxy.as_, proxy.ctx
        assert ctx.delegate
        # the catalogue: the proxy's own key may list every service's operations
        services = (await http.get("/api/v1/services", headers=as_("user.vera"))).json()
        state = next(s for s in services["services"] if s["name"] == STATE)
        assert "set" in [op["name"] for op in state["operations"]]

        eng = as_("user.eng")
        assert (
            await http.post(f"{base}/create-scope", json={"scope": "curve.a"}, headers=eng)
        ).status_code == 200
        wrote = await http.post(
            f"{base}/set", json={"scope": "curve.a", "key": "k", "value": 7}, headers=eng
        )
        assert wrote.status_code == 200, wrote.text
        read = await http.get(f"{base}/get", params={"scope": "curve.a", "key": "k"},
                              headers=as_("user.vera"))  # fmt: skip
        assert read.json()["result"]["value"] == 7

        refused = await http.post(f"{base}/set", json={"scope": "curve.a", "key": "k", "value": 8},
                                  headers=as_("user.vera"))  # fmt: skip
        problem(refused, 403, "broker.denied")
        # a proxy that believed vera an engineer would pass her call on: the broker, judging
        # her by her own roles, still says no
        believed = person("user.vera", {"read", "operate", "configure"})
        with pytest.raises(Problem) as forged:
            await ctx.call(believed, STATE, "set", {"scope": "curve.a", "key": "k", "value": 9})
        assert (forged.value.status, forged.value.code) == (403, "broker.denied")
        assert forged.value.extra["service"] == STATE  # the broker's answer, not the proxy's
        assert "user.vera may not call 'set'" in forged.value.detail

    def sets_by(principal: str, result: str) -> list[dict[str, Any]]:
        return [r for r in audit_records(stack.endpoint, principal)
                if r["target"] == f"{STATE} set" and r["result"] == result]  # fmt: skip

    done = await asyncio.to_thread(until, lambda: sets_by("user.eng", "ok"), "the set is audited")
    assert [(r["principal"], r["source"]) for r in done] == [("user.eng", "via service.proxy")]
    assert json.loads(done[0]["detail"]) == {"scope": "curve.a", "key": "k", "value": 7}
    denied = await asyncio.to_thread(until, lambda: sets_by("user.vera", "denied"), "the refusal")
    assert {r["source"] for r in denied} == {"via service.proxy"}
    assert sum(int(r["count"]) for r in denied) == 1  # the proxy refused the first itself
    assert not [
        r for r in audit_records(stack.endpoint, "service.proxy") if r["target"] == f"{STATE} set"
    ]
