"""The proxy's metrics, in :data:`plantd.telemetry.REGISTRY` (docs/observability.md).

Requests are counted by route *template* (``/api/v1/services/{service}/{operation}``), never by
the path a client sent, so a scanner cannot grow the label set; a request no route matched
counts as ``unmatched``. Durations are observed for answers that end: a stream
(``/api/v1/stream``) lasts as long as its client and would only blur the histogram. Stream
clients, events and drops are read from the stream hub at collection time
(:func:`track_streams`), which keeps them as plain ints on its hot path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plantd.telemetry import REGISTRY

__all__ = ["LOGINS", "REQUESTS", "REQUEST_SECONDS", "RequestMetrics", "track_streams"]

REQUESTS = Counter(
    "plantd_proxy_requests",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "plantd_proxy_request_seconds",
    "Time to answer an HTTP request (streams excluded), by route template.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
    registry=REGISTRY,
)
LOGINS = Counter(
    "plantd_proxy_logins",
    "Login attempts, by result: ok, refused (bad credentials), throttled.",
    ["result"],
    registry=REGISTRY,
)
_STREAM_ROUTE = "/api/v1/stream"


class RequestMetrics:
    """Pure ASGI middleware (it must not buffer streaming answers) counting every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route = _template(scope)
            REQUESTS.labels(route, scope.get("method", "?"), str(status)).inc()
            if route != _STREAM_ROUTE:
                REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)


def _template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        # a Mount (static files) names its prefix only
        return path + "/{path}" if route.__class__.__name__ == "Mount" else path
    return "unmatched"


class _StreamCollector(Collector):
    """Stream clients, events sent and dropped, read from the hub when scraped."""

    def __init__(self, read: Callable[[], tuple[int, int, int]]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        clients, sent, dropped = self._read()
        yield GaugeMetricFamily(
            "plantd_proxy_stream_clients", "Clients connected to /api/v1/stream.", value=clients
        )
        yield CounterMetricFamily(
            "plantd_proxy_stream_events", "Events sent to stream clients.", value=sent
        )
        yield CounterMetricFamily(
            "plantd_proxy_stream_dropped",
            "Events dropped for stream clients that fell behind (proxy.stream_queue).",
            value=dropped,
        )


_registered: _StreamCollector | None = None


def track_streams(read: Callable[[], tuple[int, int, int]]) -> None:
    """Report the stream hub's (clients, events sent, events dropped), read when scraped."""
    global _registered
    if _registered is not None:
        REGISTRY.unregister(_registered)
    _registered = _StreamCollector(read)
    REGISTRY.register(_registered)
