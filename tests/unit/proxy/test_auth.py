"""Logging in, sessions, API tokens and CSRF (plantd.proxy._auth) over real HTTP (httpx against
the ASGI app made of the auth routes and middleware), a real proxy.db and a real key ring, on a
manual clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plantd.client import AsyncClient
from plantd.config import load_config
from plantd.proxy._auth import (
    COOKIE,
    OPENAPI_PATHS,
    auth_state,
    middleware,
    principal_of,
    require,
    routes,
)
from plantd.proxy._context import ProxyContext
from plantd.proxy._people import RELOAD_INTERVAL, People
from plantd.proxy._problems import Problem, problem_response
from plantd.security import KeySet, use_identity
from plantd.telemetry import REGISTRY
from plantd.testing import ManualClock, capture_logs, write_config

ATTEMPTS = 3
WINDOW = 300.0
IDLE = 3600.0
PASSWORDS = {"user.alice": "alice-correct-horse", "user.bob": "bob-battery-staple"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def config_dir(tmp_path: Path) -> Iterator[Path]:
    """A CURVE configuration with its keys, and people: alice (operator), bob (viewer),
    carol (viewer, no web password)."""
    directory = write_config(
        tmp_path / "etc",
        {
            "security": {"mode": "curve"},
            "paths": {"data": str(tmp_path / "data"), "run": str(tmp_path / "run")},
            "proxy": {
                "login_attempts": ATTEMPTS,
                "login_window": f"{WINDOW:g}s",
                "session_idle": f"{IDLE:g}s",
            },
        },
    )
    keyset = KeySet(load_config(directory, {}))
    for name, role in (("alice", "operator"), ("bob", "viewer"), ("carol", "viewer")):
        keyset.add(f"user.{name}", roles=(role,), generate_secret=tmp_path / f"{name}.secret")
    try:
        yield directory
    finally:
        use_identity(None)


@pytest.fixture
async def ctx(config_dir: Path, clock: ManualClock) -> AsyncIterator[ProxyContext]:
    config = load_config(config_dir, {})
    client = AsyncClient(config.broker.endpoint)
    context = ProxyContext(config, clock, People(config, clock), client, delegate=True)
    accounts = auth_state(context).accounts
    for principal, password in PASSWORDS.items():
        accounts.set_password(principal, password)
    try:
        yield context
    finally:
        for hook in context.shutdown:
            await hook()
        await client.aclose()


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc, request)


def app(ctx: ProxyContext) -> Starlette:
    """The auth part alone, plus one route that needs 'operate' and changes something."""

    async def command(request: Request) -> Response:
        user = require(request, "operate")
        return JSONResponse({"principal": user.principal, "by": user.by})

    return Starlette(
        routes=[*routes(ctx), Route("/api/v1/command", command, methods=["POST"])],
        middleware=middleware(ctx),
        exception_handlers={Problem: _problem},
    )


@pytest.fixture
async def client(ctx: ProxyContext) -> AsyncIterator[httpx.AsyncClient]:
    async with connect(ctx) as http:
        yield http


def connect(ctx: ProxyContext, address: str = "192.0.2.10") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app(ctx), client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://proxy.test")


async def login(
    client: httpx.AsyncClient, user: str, password: str | None = None
) -> httpx.Response:
    password = PASSWORDS[principal_of(user)] if password is None else password
    return await client.post("/api/v1/login", json={"user": user, "password": password})


# -- logging in ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["alice", "user.alice"])
async def test_login_answers_who_and_sets_the_session_cookie(
    client: httpx.AsyncClient, name: str
) -> None:
    answer = await login(client, name)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["principal"] == "user.alice"
    assert body["roles"] == ["operator"]
    assert body["levels"] == ["read", "operate"]
    assert len(body["csrf"]) >= 32
    assert answer.headers["cache-control"] == "no-store"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    assert "secure" not in attributes  # plain HTTP here (loopback)

    me = await client.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json() == {
        "principal": "user.alice",
        "name": "alice",
        "roles": ["operator"],
        "levels": ["read", "operate"],
        "by": "session",
        "csrf": body["csrf"],
    }


async def test_a_new_login_ends_the_session_of_the_cookie_it_replaces(
    client: httpx.AsyncClient,
) -> None:
    assert (await login(client, "alice")).status_code == 200
    first = client.cookies[COOKIE]
    assert (await login(client, "bob")).status_code == 200
    assert client.cookies[COOKIE] != first
    assert (await client.get("/api/v1/me")).json()["principal"] == "user.bob"
    client.cookies.set(COOKIE, first)
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_nobody_is_401_with_a_problem(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/v1/me")
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.json()["code"] == "proxy.unauthenticated"
    assert (await client.post("/api/v1/command")).status_code == 401


async def test_every_wrong_login_gets_the_same_answer(
    ctx: ProxyContext, client: httpx.AsyncClient
) -> None:
    ctx_accounts = auth_state(ctx).accounts
    ctx_accounts.set_password("user.service-like", "password-of-nobody")
    answers = [
        await login(client, "alice", "wrong-password-1"),  # wrong password
        await login(client, "carol", "carol-has-none-1"),  # admitted, no web password
    ]
    async with connect(ctx, "192.0.2.11") as other:
        answers.append(await login(other, "nobody", "nobody-at-all-1"))  # not admitted
        answers.append(await login(other, "service-like", "password-of-nobody"))  # not admitted
    for answer in answers:
        assert answer.status_code == 401
        assert answer.json() == {
            "type": "https://plantd.org/problems/proxy.bad-credentials",
            "title": "Authentication required",
            "status": 401,
            "detail": "wrong user name or password",
            "code": "proxy.bad-credentials",
            "instance": "/api/v1/login",
        }
        assert "set-cookie" not in answer.headers
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_a_password_set_for_a_revoked_or_non_person_never_logs_in(
    ctx: ProxyContext, client: httpx.AsyncClient
) -> None:
    auth_state(ctx).accounts.set_password("service.proxy", "service-password")
    answer = await client.post(
        "/api/v1/login", json={"user": "service.proxy", "password": "service-password"}
    )
    assert answer.status_code == 401  # "user.service.proxy" is nobody; service.* never logs in


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b'{"user": "alice"}', {"content-type": "text/plain"}, 415),
        (b"user=alice&password=x", {"content-type": "application/x-www-form-urlencoded"}, 415),
        (b"{not json", {"content-type": "application/json"}, 400),
        (b"[1, 2]", {"content-type": "application/json"}, 400),
        (b'{"user": "alice"}', {"content-type": "application/json"}, 400),
        (b'{"user": 5, "password": "x"}', {"content-type": "application/json"}, 400),
        (b'{"user": "a b", "password": "x"}', {"content-type": "application/json"}, 400),
        (b'{"user": "a", "password": "' + b"x" * 20000 + b'"}', {}, 413),
    ],
)
async def test_a_login_body_that_is_not_one_is_refused(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str], status: int
) -> None:
    headers = headers or {"content-type": "application/json"}
    answer = await client.post("/api/v1/login", content=content, headers=headers)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"


# -- throttling ----------------------------------------------------------------------------------


async def test_failed_logins_for_a_person_are_throttled_until_the_window_frees(
    ctx: ProxyContext, clock: ManualClock
) -> None:
    for n in range(ATTEMPTS):  # from different addresses: the person's count
        async with connect(ctx, f"192.0.2.{20 + n}") as client:
            assert (await login(client, "alice", "wrong-password-1")).status_code == 401
        await clock.advance(10)
    async with connect(ctx, "198.51.100.1") as client:
        refused = await login(client, "alice")  # even the right password: not even checked
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == str(int(WINDOW - 30))
        assert refused.json()["code"] == "proxy.throttled"
        assert refused.json()["retry_after"] == WINDOW - 30
        assert (await login(client, "bob")).status_code == 200  # others are not held up
        await clock.advance(WINDOW - 30)
        assert (await login(client, "alice")).status_code == 200


async def test_logins_sent_all_at_once_get_no_more_tries(ctx: ProxyContext) -> None:
    """Each attempt is counted before its password is checked (in a thread): a burst of
    guesses cannot all be checked before the first failure is recorded."""
    async with connect(ctx, "192.0.2.40") as client:
        answers = await asyncio.gather(
            *(login(client, "alice", f"guess-number-{n}") for n in range(12))
        )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [401] * ATTEMPTS + [429] * (12 - ATTEMPTS)


async def test_failed_logins_from_an_address_are_throttled(
    ctx: ProxyContext, clock: ManualClock
) -> None:
    async with connect(ctx, "192.0.2.50") as client:
        for name in ("nobody1", "nobody2", "nobody3"):
            assert (await login(client, name, "some-guess-here")).status_code == 401
        assert (await login(client, "alice")).status_code == 429
    async with connect(ctx, "192.0.2.51") as client:
        assert (await login(client, "alice")).status_code == 200


async def test_throttled_and_failed_logins_are_logged_without_secrets(
    ctx: ProxyContext,
) -> None:
    async with connect(ctx, "192.0.2.60") as client:
        with capture_logs("info", "plantd.proxy.auth") as records:
            for _ in range(ATTEMPTS):
                await login(client, "alice", "wrong-password-1")
            await login(client, "alice")
        async with connect(ctx, "192.0.2.61") as other:
            with capture_logs("info", "plantd.proxy.auth") as later:
                await login(other, "bob")
    messages = [(r["level"], r["principal"], r["address"]) for r in records]
    assert messages == [
        *[("warning", "user.alice", "192.0.2.60")] * ATTEMPTS,
        ("warning", "user.alice", "192.0.2.60"),
    ]
    assert "throttled" in records[-1]["message"]
    assert [(r["level"], r["principal"], r["address"]) for r in later] == [
        ("info", "user.bob", "192.0.2.61")
    ]
    text = json.dumps([*records, *later], default=str)
    assert "wrong-password-1" not in text
    assert PASSWORDS["user.alice"] not in text
    assert PASSWORDS["user.bob"] not in text


# -- CSRF ----------------------------------------------------------------------------------------


async def test_unsafe_requests_with_a_session_need_the_csrf_token(
    client: httpx.AsyncClient,
) -> None:
    csrf = (await login(client, "alice")).json()["csrf"]
    missing = await client.post("/api/v1/command")
    assert missing.status_code == 403
    assert missing.json()["code"] == "proxy.csrf"
    forged = csrf[:-1] + ("B" if csrf.endswith("A") else "A")  # differs in its last character
    wrong = await client.post("/api/v1/command", headers={"X-CSRF-Token": forged})
    assert wrong.status_code == 403
    assert wrong.json()["code"] == "proxy.csrf"
    assert (await client.post("/api/v1/logout")).status_code == 403  # logout too
    right = await client.post("/api/v1/command", headers={"X-CSRF-Token": csrf})
    assert right.status_code == 200
    assert right.json() == {"principal": "user.alice", "by": "session"}
    assert (await client.get("/api/v1/me")).status_code == 200  # safe methods need none


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    csrf = (await login(client, "alice")).json()["csrf"]
    cookie = client.cookies[COOKIE]
    answer = await client.post("/api/v1/logout", headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 204
    assert COOKIE not in client.cookies  # cleared
    client.cookies.set(COOKIE, cookie)  # a copy kept elsewhere is no good either
    assert (await client.get("/api/v1/me")).status_code == 401
    assert (await client.post("/api/v1/logout")).status_code == 204  # nobody: nothing to do


async def test_a_session_ends_after_idle_time(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    assert (await login(client, "alice")).status_code == 200
    await clock.advance(IDLE - 1)
    assert (await client.get("/api/v1/me")).status_code == 200
    await clock.advance(IDLE)
    assert (await client.get("/api/v1/me")).status_code == 401


# -- API tokens ----------------------------------------------------------------------------------


async def test_an_api_token_authenticates_without_csrf_until_revoked(
    ctx: ProxyContext, client: httpx.AsyncClient
) -> None:
    accounts = auth_state(ctx).accounts
    secret, info = accounts.create_token("user.alice", "scada", None)
    bearer = {"Authorization": f"Bearer {secret}"}
    me = await client.get("/api/v1/me", headers=bearer)
    assert me.status_code == 200
    assert (me.json()["by"], me.json()["csrf"]) == ("token", None)
    command = await client.post("/api/v1/command", headers=bearer)
    assert command.status_code == 200
    assert command.json() == {"principal": "user.alice", "by": "token"}
    assert accounts.revoke_token(info.id)
    assert (await client.get("/api/v1/me", headers=bearer)).status_code == 401


async def test_a_bad_token_is_nobody_even_beside_a_good_cookie(client: httpx.AsyncClient) -> None:
    assert (await login(client, "alice")).status_code == 200
    for authorization in ("Bearer pdt_0000_forged", "Bearer ", "Basic YWxpY2U6eA=="):
        answer = await client.get("/api/v1/me", headers={"Authorization": authorization})
        assert answer.status_code == 401, authorization


async def test_a_token_of_a_viewer_may_not_operate(
    ctx: ProxyContext, client: httpx.AsyncClient
) -> None:
    secret, _ = auth_state(ctx).accounts.create_token("user.bob", "dashboard", None)
    answer = await client.post("/api/v1/command", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 403
    assert answer.json()["code"] == "proxy.forbidden"


# -- the key ring decides -----------------------------------------------------------------------


async def test_revoking_a_key_ends_sessions_and_tokens(
    ctx: ProxyContext, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    assert (await login(client, "alice")).status_code == 200
    secret, _ = auth_state(ctx).accounts.create_token("user.alice", "scada", None)
    bearer = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/api/v1/me", headers=bearer)).status_code == 200
    KeySet(ctx.config).revoke("user.alice")
    await clock.advance(RELOAD_INTERVAL)  # the key ring is re-read
    assert (await client.get("/api/v1/me")).status_code == 401
    assert (await client.get("/api/v1/me", headers=bearer)).status_code == 401
    assert (await login(client, "alice")).status_code == 401
    # Admitted again, the old session stays ended (it was deleted when seen revoked).
    KeySet(ctx.config).add(
        "user.alice",
        roles=("viewer",),
        generate_secret=Path(ctx.config.paths.data / "alice-again.secret"),
    )
    await clock.advance(RELOAD_INTERVAL)
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_a_change_of_roles_applies_to_a_live_session(
    ctx: ProxyContext, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    csrf = (await login(client, "alice")).json()["csrf"]
    headers = {"X-CSRF-Token": csrf}
    assert (await client.post("/api/v1/command", headers=headers)).status_code == 200
    KeySet(ctx.config).add(
        "user.alice",
        roles=("viewer",),
        generate_secret=ctx.config.paths.data / "alice-new.secret",
        replace=True,
    )
    await clock.advance(RELOAD_INTERVAL)
    assert (await client.post("/api/v1/command", headers=headers)).status_code == 403
    assert (await client.get("/api/v1/me")).json()["levels"] == ["read"]


# -- the part ------------------------------------------------------------------------------------


async def test_the_state_is_made_once_and_closed_at_shutdown(ctx: ProxyContext) -> None:
    state = auth_state(ctx)
    assert auth_state(ctx) is state
    app(ctx)
    assert ctx.shutdown == [state.close]
    assert state.accounts.path == ctx.config.proxy.database_path(ctx.config.paths)


def test_the_openapi_paths_are_the_routes(ctx: ProxyContext) -> None:
    served = {
        (route.path, method.lower())
        for route in routes(ctx)
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    described = {(path, method) for path, item in OPENAPI_PATHS.items() for method in item}
    assert described == served
    for item in OPENAPI_PATHS.values():
        for operation in item.values():
            assert operation["operationId"].startswith("proxy.")
            assert operation["summary"]
            for status, response in operation["responses"].items():
                assert status.isdigit()
                assert response["description"]
    assert OPENAPI_PATHS["/api/v1/login"]["post"]["security"] == []


# -- metrics ---------------------------------------------------------------------------------------


def logins(result: str) -> float:
    return REGISTRY.get_sample_value("plantd_proxy_logins_total", {"result": result}) or 0.0


async def test_logins_are_counted_by_result(client: httpx.AsyncClient) -> None:
    ok, refused = logins("ok"), logins("refused")
    assert (await login(client, "alice", "not her password")).status_code == 401
    assert (await login(client, "nobody-at-all", "whatever-it-is")).status_code == 401
    assert (await login(client, "alice")).status_code == 200
    assert logins("refused") == refused + 2
    assert logins("ok") == ok + 1
