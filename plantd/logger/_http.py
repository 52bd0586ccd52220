"""The logger's HTTP endpoint: ``GET /metrics`` (every process's metrics, merged by the hub)
and ``GET /health`` (the health verdict as JSON: 200 when ok, 503 when not).

``/metrics`` is prometheus_client's own WSGI application over the hub's registry: the
Prometheus text format, or OpenMetrics when the scraper's ``Accept`` asks for it, gzip when it
accepts that, ``name[]=…`` to choose families. The server runs in threads of its own (a
scrape never waits on the event loop, nor the loop on a scrape) and binds ``logger.listen``;
with port 0 the system picks one, and the real URLs are written to
``<paths.run>/logger-endpoints.json`` (replaced whole, with the process id, as the broker
writes its endpoints)::

    {"pid": 4242, "metrics": "http://127.0.0.1:40123/metrics",
     "health": "http://127.0.0.1:40123/health"}
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from plantd._runfiles import remove_run_record, write_run_record
from plantd.config import PlantdConfig
from plantd.logger._health import HealthReport

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "ENDPOINTS_FILE",
    "MetricsServer",
    "endpoints_path",
    "read_endpoints",
    "remove_endpoints",
    "serve_metrics",
    "write_endpoints",
]

log = logging.getLogger(__name__)

ENDPOINTS_FILE = "logger-endpoints.json"


class _QuietHandler(WSGIRequestHandler):
    """Scrapes every few seconds are not worth a log line each."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s: " + format, self.address_string(), *args)


def _server_class(host: str) -> type[ThreadingWSGIServer]:
    """A threading WSGI server of the address family ``host`` resolves to (IPv4 or IPv6)."""
    try:
        family = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror:
        family = socket.AF_INET  # let bind() say what is wrong with it

    class Server(ThreadingWSGIServer):
        address_family = family

    return Server


def _app(registry: CollectorRegistry, health: Callable[[], HealthReport]) -> WSGIApplication:
    metrics = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path in ("/metrics", "/"):
            served: Iterable[bytes] = metrics(environ, start_response)
            return served
        if path == "/health":
            try:
                report = health().to_json()
                status = "200 OK" if report["ok"] else "503 Service Unavailable"
            except Exception as exc:  # a bug in a rule must not take the endpoint down
                log.exception("the health check failed")
                report = {"ok": False, "verdict": "failed", "error": f"{exc!r}"}
                status = "500 Internal Server Error"
            body = json.dumps(report, sort_keys=True).encode() + b"\n"
            start_response(status, [("Content-Type", "application/json")])
            return [body]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /metrics or /health\n"]

    return app


class MetricsServer:
    """``/metrics`` and ``/health`` on ``host:port`` (0: any free port), served by threads.

    :meth:`start` binds and serves; :attr:`port` is then the real port. :meth:`stop` closes
    the socket, waits for the serving thread and removes the endpoints file :attr:`recorded`
    (set by :func:`serve_metrics`) if this process wrote it.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        health: Callable[[], HealthReport],
        host: str,
        port: int,
    ) -> None:
        self.host = host
        self._app = _app(registry, health)
        self._requested = port
        self._server: ThreadingWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.recorded: Path | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the metrics server is not started")
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    def start(self) -> MetricsServer:
        """Bind and serve; raises OSError naming the address when it cannot bind."""
        try:
            server = make_server(
                self.host,
                self._requested,
                self._app,
                server_class=_server_class(self.host),
                handler_class=_QuietHandler,
            )
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"cannot serve metrics on {self.host}:{self._requested} (logger.listen): "
                f"{exc.strerror or exc}",
            ) from exc
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="plantd-logger-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()  # waits for serve_forever to return
        server.server_close()
        if thread is not None:
            thread.join()
        self._thread = None
        if self.recorded is not None:
            remove_endpoints(self.recorded)

    async def serve(self) -> None:
        """Serve until cancelled (a task of the logger's TaskGroup), then stop."""
        if self._server is None:
            self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.to_thread(self.stop)

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def endpoints_path(run_dir: Path) -> Path:
    """The endpoints file of the logger whose ``paths.run`` is ``run_dir``."""
    return run_dir / ENDPOINTS_FILE


def write_endpoints(path: Path, server: MetricsServer) -> None:
    """Replace ``path`` with ``server``'s URLs and this process's id, atomically."""
    write_run_record(path, {"metrics": server.url("/metrics"), "health": server.url("/health")})


def read_endpoints(run_dir: Path) -> dict[str, Any] | None:
    """What the logger of ``run_dir`` recorded (None: nothing readable there)."""
    try:
        data = json.loads(endpoints_path(run_dir).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove_endpoints(path: Path) -> None:
    """Remove ``path`` if this process wrote it (a newer logger's file stays)."""
    remove_run_record(path)


def serve_metrics(
    config: PlantdConfig, registry: CollectorRegistry, health: Callable[[], HealthReport]
) -> MetricsServer | None:
    """Start the endpoint ``logger.listen`` asks for (None when it is empty) and record its
    URLs in ``paths.run`` (removed again by :meth:`MetricsServer.stop`). A port nobody can
    know (0) that cannot be recorded is an error; with a fixed port that is only logged."""
    address = config.logger.listen_address()
    if address is None:
        log.info("no metrics endpoint (logger.listen is empty)")
        return None
    host, port = address
    server = MetricsServer(registry, health, host, port).start()
    path = endpoints_path(config.paths.run)
    try:
        write_endpoints(path, server)
        server.recorded = path
    except OSError as exc:
        if port == 0:
            server.stop()
            raise OSError(
                exc.errno,
                f"cannot record the metrics endpoint in {path} ({exc.strerror or exc}); "
                "logger.listen with port 0 needs a paths.run it may write",
            ) from exc
        log.info("metrics endpoint not recorded in %s: %s", path, exc.strerror or exc)
    log.info("metrics on %s, health on %s", server.url("/metrics"), server.url("/health"))
    return server
