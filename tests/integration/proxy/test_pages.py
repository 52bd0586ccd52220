"""The web app's pages over HTTP.

Two halves. ``TestPagesInProcess`` drives the real page and insight routes through httpx
against the ASGI app, with a stand-in for the session middleware (``_auth`` turns a cookie
into ``request.state.user``; here a test header does, so that the pages are tested on their
own): redirects, rendering per person, the admin-only audit page, the CSP the pages must
obey (no inline script or style, every static file they name served). ``TestPagesOnTheStack``
logs real people in to a real ``plantd-proxy`` in front of a real stack (``proxy_stack``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from plantd.client import AsyncClient
from plantd.config import load_config
from plantd.proxy import _insight, _pages
from plantd.proxy._context import ProxyContext, User
from plantd.proxy._people import People
from plantd.proxy._problems import Problem, problem_response
from plantd.testing import ManualClock

PAGES = ["/", "/points", "/trend?topic=data.station.flow", "/state", "/logs", "/config", "/hil"]
STATIC = Path(_pages.__file__).parent / "static"

VIEWER = User("user.vera", frozenset({"viewer"}), frozenset({"read"}), "session", "s-1", "csrf-v")
OPERATOR = User(
    "user.otto", frozenset({"operator"}), frozenset({"read", "operate"}), "session", "s-2", "csrf-o"
)
ADMIN = User(
    "user.ada",
    frozenset({"admin"}),
    frozenset({"read", "operate", "configure", "admin"}),
    "session",
    "s-3",
    "csrf-a",
)
PEOPLE = {user.name: user for user in (VIEWER, OPERATOR, ADMIN)}


class PretendSessions:
    """Stands in for ``_auth.middleware``: ``X-Test-User: NAME`` is that person."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            name = Headers(scope=scope).get("x-test-user", "")
            scope.setdefault("state", {})["user"] = PEOPLE.get(name)
        await self.app(scope, receive, send)


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc, request)


@pytest.fixture
async def app_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    (config_dir / "keys").mkdir()
    (config_dir / "plantd.yaml").write_text(
        f"paths:\n  data: {config_dir / 'data'}\n  run: {config_dir / 'run'}\n"
    )
    config = load_config(config_dir)
    clock = ManualClock()
    ctx = ProxyContext(
        config, clock, People(config, clock), AsyncClient("tcp://127.0.0.1:9"), delegate=False
    )
    app = Starlette(
        routes=[
            *_insight.routes(ctx),
            *_pages.routes(ctx),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(PretendSessions)],
        exception_handlers={Problem: _problem},
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://plantd.test") as client:
        yield client


async def get(client: httpx.AsyncClient, path: str, user: User | None = None) -> httpx.Response:
    headers = {"X-Test-User": user.name} if user is not None else {}
    return await client.get(path, headers=headers)


def hooks_in(html: str) -> set[str]:
    return set(re.findall(r'data-testid="([^"]+)"', html))


class TestPagesInProcess:
    @pytest.mark.parametrize("path", [*PAGES, "/audit"])
    async def test_without_a_session_a_page_sends_to_login_with_next(
        self, app_client: httpx.AsyncClient, path: str
    ) -> None:
        answer = await get(app_client, path)

        assert answer.status_code == 303
        location = httpx.URL(answer.headers["location"])
        assert location.path == "/login"
        assert location.params["next"] == path

    async def test_the_login_page_has_the_form_and_keeps_only_a_local_next(
        self, app_client: httpx.AsyncClient
    ) -> None:
        answer = await get(app_client, "/login?next=/points%3Fmodule%3Dstation")

        assert answer.status_code == 200
        assert {"login-form", "login-user", "login-password", "login-submit"} <= hooks_in(
            answer.text
        )
        assert 'data-next="/points?module=station"' in answer.text
        assert 'data-testid="nav"' not in answer.text  # nobody to show a nav to

    @pytest.mark.parametrize(
        "target",
        ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)", ""],
    )
    async def test_a_next_off_this_site_becomes_the_dashboard(
        self, app_client: httpx.AsyncClient, target: str
    ) -> None:
        answer = await app_client.get("/login", params={"next": target})
        assert 'data-next="/"' in answer.text

    async def test_a_logged_in_person_at_login_goes_on_to_next(
        self, app_client: httpx.AsyncClient
    ) -> None:
        answer = await get(app_client, "/login?next=/logs", VIEWER)
        assert (answer.status_code, answer.headers["location"]) == (303, "/logs")

    @pytest.mark.parametrize("path", PAGES)
    async def test_every_page_renders_for_a_viewer_with_csp_and_csrf(
        self, app_client: httpx.AsyncClient, path: str
    ) -> None:
        answer = await get(app_client, path, VIEWER)

        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert answer.headers["cache-control"] == "no-store"
        assert '<meta name="csrf-token" content="csrf-v">' in answer.text
        assert 'data-testid="user-name">vera<' in answer.text
        assert 'data-testid="user-role">viewer<' in answer.text
        assert "logout-button" in hooks_in(answer.text)

    async def test_the_viewer_has_no_audit_link_and_the_audit_page_is_403(
        self, app_client: httpx.AsyncClient
    ) -> None:
        assert "nav-audit" not in hooks_in((await get(app_client, "/", VIEWER)).text)
        assert "nav-audit" not in hooks_in((await get(app_client, "/", OPERATOR)).text)

        answer = await get(app_client, "/audit", VIEWER)

        assert answer.status_code == 403
        assert "forbidden" in hooks_in(answer.text)
        assert "<strong>admin</strong> access" in answer.text
        assert "audit-table" not in hooks_in(answer.text)

    async def test_an_admin_sees_the_audit_page(self, app_client: httpx.AsyncClient) -> None:
        assert "nav-audit" in hooks_in((await get(app_client, "/", ADMIN)).text)

        answer = await get(app_client, "/audit", ADMIN)

        assert answer.status_code == 200
        assert "audit-table" in hooks_in(answer.text)

    async def test_the_browser_test_hooks_are_on_their_pages(
        self, app_client: httpx.AsyncClient
    ) -> None:
        points = hooks_in((await get(app_client, "/points", OPERATOR)).text)
        assert {
            "points-table",
            "module-filter",
            "write-dialog",
            "write-value",
            "write-confirm",
            "write-result",
            "stream-status",
        } <= points
        assert "health-verdict" in hooks_in((await get(app_client, "/", VIEWER)).text)
        trend = (await get(app_client, "/trend?topic=data.station.flow", VIEWER)).text
        assert re.search(
            r'<canvas id="trend-canvas" data-testid="trend-canvas" data-topic="data.station.flow"'
            r' data-points="0"',
            trend,
        )
        # the row-level hooks are made by points.js: they must be spelt the same there
        script = (STATIC / "points.js").read_text()
        for hook in ("point-row", "point-value", "point-quality", "write-button"):
            assert f'"data-testid": "{hook}"' in script
        assert '"data-topic": topic' in script
        assert '"data-testid": "audit-row"' in (STATIC / "audit.js").read_text()

    async def test_a_trend_topic_is_checked_and_escaped(
        self, app_client: httpx.AsyncClient
    ) -> None:
        answer = await get(app_client, "/trend?topic=data.x.%3Cscript%3Ealert(1)", VIEWER)

        assert answer.status_code == 200
        assert "<script>alert" not in answer.text
        assert "&lt;script&gt;alert(1)" in answer.text

        answer = await get(app_client, "/trend?topic=state.x", VIEWER)
        assert "trend-canvas" not in hooks_in(answer.text)
        assert "trend-error" in hooks_in(answer.text)

    @pytest.mark.parametrize("path", [*PAGES, "/audit", "/login"])
    async def test_pages_obey_their_csp_and_name_only_files_that_exist(
        self, app_client: httpx.AsyncClient, path: str
    ) -> None:
        html = (await get(app_client, path, ADMIN if path != "/login" else None)).text

        assert "<style" not in html
        assert " style=" not in html
        assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers
        scripts = re.findall(r"<script([^>]*)>", html)
        assert scripts
        assert all('src="/static/' in attributes for attributes in scripts)
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
            served = await app_client.get(asset)
            assert served.status_code == 200, asset
            assert served.content

    async def test_the_insight_api_needs_a_person(self, app_client: httpx.AsyncClient) -> None:
        assert (await get(app_client, "/api/v1/config/check")).status_code == 401
        assert (await get(app_client, "/api/v1/hil/results")).status_code == 401

        answer = await get(app_client, "/api/v1/config/check", VIEWER)
        assert answer.status_code == 200
        assert answer.json()["ok"] is True

    async def test_hil_results_over_http_refuse_a_path(self, app_client: httpx.AsyncClient) -> None:
        assert (await get(app_client, "/api/v1/hil/results", VIEWER)).json()["results"] == []
        answer = await get(app_client, "/api/v1/hil/results/..%2F..%2Fetc%2Fpasswd", VIEWER)
        assert answer.status_code == 404  # no route: a name holds no slash
        for name in ("..secret", ".hidden", "a%5Cb"):
            answer = await get(app_client, f"/api/v1/hil/results/{name}", VIEWER)
            assert answer.status_code == 404
            assert answer.headers["content-type"] == "application/problem+json"


class TestPagesOnTheStack:
    """Real people logged in to a real proxy (``proxy_stack``, tests/integration/proxy)."""

    def test_pages_for_a_viewer_and_login_without_a_session(self, proxy_stack: Any) -> None:
        with closing(proxy_stack.client()) as nobody:
            answer = nobody.get("/points", follow_redirects=False)
            assert answer.status_code == 303
            assert answer.headers["location"] == "/login?next=%2Fpoints"
            assert "login-form" in hooks_in(nobody.get("/login").text)
        with closing(proxy_stack.client("user.vera")) as vera:
            csrf = vera.headers["X-CSRF-Token"]
            for path in PAGES:
                answer = vera.get(path)
                assert answer.status_code == 200, path
                assert f'<meta name="csrf-token" content="{csrf}">' in answer.text
            assert vera.get("/audit").status_code == 403
            assert "nav-audit" not in hooks_in(vera.get("/").text)

    def test_an_admin_has_the_audit_page(self, proxy_stack: Any) -> None:
        with closing(proxy_stack.client("user.ada")) as ada:
            assert "nav-audit" in hooks_in(ada.get("/").text)
            answer = ada.get("/audit")
            assert answer.status_code == 200
            assert "audit-table" in hooks_in(answer.text)

    def test_config_check_and_hil_results(self, proxy_stack: Any) -> None:
        config = load_config(proxy_stack.stack.config_dir)
        results = config.proxy.hil_results_path(config.paths)
        results.mkdir(parents=True, exist_ok=True)
        (results / "smoke.xml").write_text(
            '<testsuites><testsuite name="smoke"><testcase name="a"/>'
            '<testcase name="b"><failure message="no flow">flow 0</failure></testcase>'
            "</testsuite></testsuites>"
        )
        with closing(proxy_stack.client("user.vera")) as vera:
            check = vera.get("/api/v1/config/check").json()
            assert check["ok"] is True, check["problems"]
            listed = vera.get("/api/v1/hil/results").json()["results"]
            assert [(r["name"], r["tests"], r["failures"]) for r in listed] == [("smoke", 2, 1)]
            detail = vera.get("/api/v1/hil/results/smoke").json()
            assert detail["suites"][0]["cases"][1]["message"] == "no flow"
