"""The proxy's request metrics: counted by route template (never by the path a client made
up), with a duration for answers that end, and the stream hub's counters read when scraped."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from plantd.proxy._metrics import RequestMetrics, track_streams
from plantd.telemetry import REGISTRY


async def thing(request: Request) -> Response:
    return PlainTextResponse(request.path_params["name"])


def app() -> Starlette:
    return Starlette(
        routes=[Route("/api/v1/things/{name}", thing)], middleware=[Middleware(RequestMetrics)]
    )


def requests(route: str, status: str) -> float:
    labels = {"route": route, "method": "GET", "status": status}
    return REGISTRY.get_sample_value("plantd_proxy_requests_total", labels) or 0.0


def durations(route: str) -> float:
    value = REGISTRY.get_sample_value("plantd_proxy_request_seconds_count", {"route": route})
    return value or 0.0


async def test_requests_are_counted_by_route_template_and_status() -> None:
    template = "/api/v1/things/{name}"
    before, timed = requests(template, "200"), durations(template)
    unmatched = requests("unmatched", "404")
    transport = httpx.ASGITransport(app())
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
        for name in ("a", "b", "c"):
            assert (await client.get(f"/api/v1/things/{name}")).text == name
        assert (await client.get("/made/up/by/a/scanner")).status_code == 404
    assert requests(template, "200") == before + 3
    assert durations(template) == timed + 3
    assert requests("unmatched", "404") == unmatched + 1
    assert requests("/api/v1/things/a", "200") == 0.0  # the path itself is never a label


def test_stream_counters_are_read_when_scraped() -> None:
    counters = [2, 10, 1]
    track_streams(lambda: (counters[0], counters[1], counters[2]))
    assert REGISTRY.get_sample_value("plantd_proxy_stream_clients") == 2
    counters[:] = [5, 40, 3]
    assert REGISTRY.get_sample_value("plantd_proxy_stream_clients") == 5
    assert REGISTRY.get_sample_value("plantd_proxy_stream_events_total") == 40
    assert REGISTRY.get_sample_value("plantd_proxy_stream_dropped_total") == 3
