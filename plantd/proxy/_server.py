"""The proxy's ASGI application and the server that runs it (``plantd-proxy``).

Why Starlette on uvicorn: both are small, typed, maintained, and run well on a Raspberry Pi;
Starlette gives routing, streaming responses (Server-Sent Events), static files and Jinja2
templates without a framework's weight, and the OpenAPI document is generated from the
services' own ``operations`` rather than from Python signatures, so FastAPI's main feature
would go unused (docs/app.md, "Design").

:func:`build_app` assembles the parts, each a module with ``routes(ctx)``: ``_auth`` (sessions,
tokens, login), ``_rest`` (every MDP service, the OpenAPI document, health and metrics),
``_streams`` (bus topics as Server-Sent Events), ``_insight`` (config check, HIL results) and
``_pages`` (the web app). Every error leaves as RFC 9457 problem details (``_problems``);
an exception no part expected is logged and answered with a 500 problem, never a traceback.

:class:`ProxyServer` runs the app on uvicorn as a :class:`plantd.runtime.Stoppable`: it binds
the socket itself (port 0 takes any free port; the real one is written to
``<paths.run>/proxy-endpoints.json``), serves HTTPS when ``proxy.tls_certificate`` is set, and
leaves signals to :func:`plantd.runtime.run_until_signal`, which tells systemd READY once the
app has started and pings the watchdog from the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plantd._runfiles import remove_run_record, write_run_record
from plantd.config import PlantdConfig
from plantd.errors import ConfigError
from plantd.proxy._context import ProxyContext
from plantd.proxy._problems import Problem, problem_response

__all__ = [
    "ENDPOINTS_FILE",
    "STATIC_DIR",
    "ProxyServer",
    "build_app",
    "check_tls",
    "endpoints_path",
    "read_endpoints",
]

log = logging.getLogger("plantd.proxy")

ENDPOINTS_FILE = "proxy-endpoints.json"
STATIC_DIR = Path(__file__).parent / "static"


def build_app(ctx: ProxyContext) -> Starlette:
    """The whole proxy as one ASGI application over ``ctx``."""
    from plantd.proxy import _auth, _insight, _pages, _rest, _streams, _system
    from plantd.proxy._metrics import RequestMetrics, track_streams

    routes = [
        *_auth.routes(ctx),
        *_rest.routes(ctx),
        *_streams.routes(ctx),
        *_insight.routes(ctx),
        *_system.routes(ctx),
        *_pages.routes(ctx),
        Mount(
            "/static",
            _LongLived(StaticFiles(directory=STATIC_DIR, check_dir=False)),
            name="static",
        ),
    ]
    hub = _streams.hub_of(ctx)
    track_streams(lambda: (hub.clients, hub.events_sent, hub.events_dropped))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for hook in ctx.startup:
            await hook()
        try:
            yield
        finally:
            for hook in reversed(ctx.shutdown):
                try:
                    await hook()
                except Exception:
                    log.exception("a proxy shutdown hook failed")

    middleware = [
        Middleware(RequestMetrics),
        Middleware(SecurityHeaders, tls=ctx.config.proxy.tls),
        *_auth.middleware(ctx),
    ]
    return Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            Problem: _problem,
            HTTPException: _http_exception,
            Exception: _unexpected,
        },
    )


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc, request)


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (no route) and 405 (wrong method), as problem details."""
    assert isinstance(exc, HTTPException)
    detail = {
        404: f"nothing at {request.url.path}",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(Problem(exc.status_code, detail, headers=headers), request)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("proxy: %s %s failed: %r", request.method, request.url.path, exc, exc_info=exc)
    problem = Problem(500, "the proxy failed to answer this request; its log says why")
    return problem_response(problem, request)


class _LongLived:
    """Static files may be cached for a year: the pages name them with ``?v=<hash of the
    files>``, so a new version is a new URL."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_cached(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                message["headers"] = [
                    *message.get("headers", []),
                    (b"cache-control", b"public, max-age=31536000, immutable"),
                ]
            await send(message)

        await self.app(scope, receive, send_cached)


class SecurityHeaders:
    """Headers every answer carries: no MIME sniffing, no framing, no referrer leaving the
    box, and HSTS when served over TLS. (Pages add their Content-Security-Policy.)"""

    def __init__(self, app: ASGIApp, *, tls: bool) -> None:
        self.app = app
        headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if tls:
            headers.append((b"strict-transport-security", b"max-age=31536000"))
        self._headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self._headers if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def check_tls(config: PlantdConfig) -> None:
    """ConfigError naming the key when ``proxy.tls_certificate``/``tls_key`` cannot serve
    (missing, unreadable, not PEM, not a pair): a fault no restart mends, so the service exits
    2 (systemd does not restart it) instead of failing inside uvicorn every 2 s."""
    settings = config.proxy
    if settings.tls_certificate is None or settings.tls_key is None:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(settings.tls_certificate, settings.tls_key)
    except OSError as exc:
        what = exc.strerror or str(exc)
        if isinstance(exc, ssl.SSLError):
            what = f"not a PEM certificate and its private key ({exc.reason or exc})"
        raise ConfigError(
            [
                f"proxy.tls_certificate {settings.tls_certificate} / proxy.tls_key "
                f"{settings.tls_key}: {what}"
            ]
        ) from None


# -- the endpoints file ---------------------------------------------------------------------


def endpoints_path(config: PlantdConfig) -> Path:
    return config.paths.run / ENDPOINTS_FILE


def read_endpoints(config: PlantdConfig) -> str | None:
    """The URL a running proxy serves at (from its endpoints file), None if there is none."""
    try:
        record = json.loads(endpoints_path(config).read_text())
    except (OSError, ValueError):
        return None
    url = record.get("url") if isinstance(record, dict) else None
    return url if isinstance(url, str) else None


# -- the server -----------------------------------------------------------------------------


class _Uvicorn(uvicorn.Server):
    """uvicorn, leaving SIGTERM and SIGINT to ``run_until_signal`` (it stops us in order)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ProxyServer:
    """The app on uvicorn, at ``proxy.listen``; ``connected`` once it serves."""

    def __init__(self, ctx: ProxyContext, app: ASGIApp | None = None) -> None:
        self.ctx = ctx
        self.app = app if app is not None else build_app(ctx)
        self.connected = asyncio.Event()
        self.url = ""
        self._server: _Uvicorn | None = None
        self._recorded: Path | None = None

    async def run(self) -> None:
        settings = self.ctx.config.proxy
        host, port = settings.listen_address()
        sock = _bind(host, port)
        bound = sock.getsockname()[1]
        scheme = "https" if settings.tls else "http"
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{scheme}://{shown}:{bound}"
        config = uvicorn.Config(
            self.app,
            lifespan="on",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            ssl_certfile=str(settings.tls_certificate) if settings.tls_certificate else None,
            ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
            timeout_graceful_shutdown=2,
        )
        server = self._server = _Uvicorn(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
        try:
            while not server.started:
                if serving.done():
                    break
                await asyncio.sleep(0.02)
            if server.started:
                self._record()
                self.connected.set()
                log.info("proxy: serving at %s", self.url)
            await serving
        except SystemExit:
            # uvicorn exits when the app's startup fails; say so as an error of our own
            raise RuntimeError("the proxy's startup failed (see the log above)") from None
        finally:
            sock.close()
            self._forget()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True

    def _record(self) -> None:
        path = endpoints_path(self.ctx.config)
        fields: Mapping[str, Any] = {"pid": os.getpid(), "url": self.url}
        try:
            write_run_record(path, fields)
            self._recorded = path
        except OSError as exc:
            log.warning("proxy: cannot write %s: %s", path, exc)

    def _forget(self) -> None:
        if self._recorded is not None:
            remove_run_record(self._recorded)
            self._recorded = None


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket at ``host:port``; OSError names ``proxy.listen``."""
    try:
        family = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]
        # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY on accepted connections only when
        # the listening socket says it is TCP; without it every answer after the first on a
        # kept-alive connection waited for a delayed ACK (about 40 ms).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except OSError as exc:
        raise OSError(f"cannot serve on {host}:{port} (proxy.listen): {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"cannot serve on {host}:{port} (proxy.listen): {exc.strerror or exc}"
        ) from exc
    sock.set_inheritable(False)
    return sock
