"""The web app's pages: server-rendered Jinja2 shells, filled by our own JavaScript.

Each page is a template on a shared layout (``templates/layout.html``: the navigation, who is
logged in, the CSRF token in ``<meta name="csrf-token">``); its data comes from the REST API
and the SSE stream by the page's script in ``static/`` (``app.js`` is shared: the fetch helper
that sends ``X-CSRF-Token`` on unsafe methods, the nav toggle, formatting). So the server
never calls a service to draw a page, and a page costs no more than its template.

Who may see what: a page without a person answers 303 to ``/login?next=PATH`` (only a
same-site relative path is ever kept as ``next``: no open redirect). The audit page needs the
access the policy gives ``org.plantd.Audit query`` (admin by default); without it the page is
403 and the nav does not link it. Every other page opens for ``read``: what a person may *do*
there is decided by the services on each call, and the page shows a refusal in words. The
page marks what the person's levels cannot do (a viewer's Write button says the write will
be refused: roles can change at any time, the service decides) and leaves out the state
editor for those without the access ``set`` needs.

Headers on every page: a strict Content-Security-Policy (scripts and styles from ``/static``
only, nothing inline, no framing) and ``no-store`` (a page holds the CSRF token); the server's
middleware adds ``nosniff``, ``DENY`` framing and the referrer policy to every answer.
Static URLs carry a version derived from the files' contents, so a browser that caches them
never keeps an old script after an upgrade.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from plantd.audit import AUDIT_SERVICE
from plantd.config import Access
from plantd.proxy._context import ProxyContext, User
from plantd.proxy._control_pages import alarm_values, control_values
from plantd.proxy._system import system_values

__all__ = ["SECURITY_HEADERS", "routes", "safe_next"]

_HERE = Path(__file__).parent
TEMPLATES = _HERE / "templates"
STATIC = _HERE / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
}

# (path, label, page id) of the navigation, in order; the audit entry only for those who may.
_NAV = (
    ("/", "Dashboard", "dashboard"),
    ("/points", "Points", "points"),
    ("/alarms", "Alarms", "alarms"),
    ("/control", "Control", "control"),
    ("/state", "State", "state"),
    ("/logs", "Logs", "logs"),
    ("/config", "Config", "config"),
    ("/hil", "HIL", "hil"),
    ("/system", "System", "system"),
    ("/audit", "Audit", "audit"),
)

Page = Callable[[Request], Awaitable[Response]]


def safe_next(value: str | None) -> str:
    """``value`` if it is a path on this site (``/points?x=1``), else ``/``: never another
    host (``//evil``, ``/\\evil``, ``https://…``), never a control character."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(ord(char) < 0x20 or char == "\x7f" for char in value):
        return "/"
    parts = urllib.parse.urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def _static_version() -> str:
    """A short digest of every static file: changes whenever one of them does."""
    digest = hashlib.sha256()
    for path in sorted(STATIC.glob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    version = _static_version()
    environment.globals["static"] = lambda name: f"/static/{name}?v={version}"
    return environment


def routes(ctx: ProxyContext) -> list[BaseRoute]:
    environment = _environment()

    def audit_access() -> Access:
        return ctx.people.access_of(AUDIT_SERVICE, "query")

    def render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        user: User | None = getattr(request.state, "user", None)
        nav = []
        if user is not None:
            may_audit = user.may(audit_access())
            nav = [entry for entry in _NAV if entry[2] != "audit" or may_audit]
        html = environment.get_template(template).render(
            user=user,
            nav=nav,
            csrf=(user.csrf or "") if user is not None else "",
            levels=" ".join(sorted(user.levels)) if user is not None else "",
            **values,
        )
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def page(
        template: str,
        title: str,
        page_id: str,
        *,
        access: Callable[[], Access] | None = None,
        values: Callable[[Request, User], dict[str, Any]] | None = None,
    ) -> Page:
        async def endpoint(request: Request) -> Response:
            user: User | None = getattr(request.state, "user", None)
            if user is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                query = urllib.parse.urlencode({"next": safe_next(target)})
                return RedirectResponse(
                    f"/login?{query}", status_code=303, headers=SECURITY_HEADERS
                )
            needed = access() if access is not None else "read"
            if not user.may(needed):
                return render(
                    request,
                    "forbidden.html",
                    status=403,
                    title=title,
                    page=page_id,
                    needed=needed,
                )
            extra = values(request, user) if values is not None else {}
            return render(request, template, title=title, page=page_id, **extra)

        return endpoint

    async def login(request: Request) -> Response:
        target = safe_next(request.query_params.get("next"))
        if getattr(request.state, "user", None) is not None:
            return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
        return render(request, "login.html", title="Log in", page="login", next=target)

    def state_values(request: Request, user: User) -> dict[str, Any]:
        return {"may_set": user.may(ctx.people.access_of("org.plantd.State", "set"))}

    def points_values(request: Request, user: User) -> dict[str, Any]:
        module = request.query_params.get("module", "")
        return {"module": module if module.replace("-", "").replace("_", "").isalnum() else ""}

    def trend_values(request: Request, user: User) -> dict[str, Any]:
        topic = request.query_params.get("topic", "")
        valid = topic.startswith("data.") and topic.count(".") >= 2 and len(topic) <= 256
        return {"topic": topic if valid else "", "asked": topic}

    return [
        Route("/login", login, methods=["GET"]),
        Route("/", page("dashboard.html", "Dashboard", "dashboard"), methods=["GET"]),
        Route(
            "/points",
            page("points.html", "Points", "points", values=points_values),
            methods=["GET"],
        ),
        Route(
            "/trend",
            page("trend.html", "Trend", "points", values=trend_values),
            methods=["GET"],
        ),
        Route(
            "/alarms",
            page("alarms.html", "Alarms", "alarms", values=alarm_values(ctx)),
            methods=["GET"],
        ),
        Route(
            "/control",
            page("control.html", "Control", "control", values=control_values(ctx)),
            methods=["GET"],
        ),
        Route("/state", page("state.html", "State", "state", values=state_values), methods=["GET"]),
        Route("/logs", page("logs.html", "Logs", "logs"), methods=["GET"]),
        Route("/config", page("config.html", "Config", "config"), methods=["GET"]),
        Route("/hil", page("hil.html", "HIL results", "hil"), methods=["GET"]),
        Route(
            "/system",
            page("system.html", "System", "system", values=system_values),
            methods=["GET"],
        ),
        Route(
            "/audit",
            page("audit.html", "Audit", "audit", access=audit_access),
            methods=["GET"],
        ),
    ]
