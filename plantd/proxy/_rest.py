"""REST over every MDP service: ``/api/v1/services/{service}/{operation}``, and the proxy's
own read routes (catalogue, broker, health, metrics, the OpenAPI document).

Every route first needs a person (``_auth.require``: 401 before anything else is looked at).
A call is then checked against the catalogue (an unknown service or operation is a 404, an
``mmi.*`` name too: the broker's own questions are answered only by ``/api/v1/services`` and
``/api/v1/broker``), its params read (a JSON object of at most :data:`MAX_BODY` bytes; for
``GET``, which only ``read`` operations allow, the query string), and sent through
``ctx.call``: on the person's behalf, so the broker checks and audits it as theirs. A
streaming operation's parts are collected (at most :data:`MAX_PARTS` parts and
:data:`MAX_RESULT_BYTES`, within ``proxy.request_timeout`` in all) and answered as
``{"results": [...]}``; it is sent the same delegated way ``ctx.call`` sends a call, since the
context offers no streaming call of its own.

No input makes a route fail with a 5xx of its own: bodies, query strings and names are checked
here and refused with a 4xx problem naming what was wrong; 502/503/504 only ever say that a
service, the broker or the logger failed or is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import urllib.request
from collections.abc import AsyncGenerator
from typing import Any, cast

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from plantd.config import Access
from plantd.errors import RemoteProtocolError, RequestTimeout, ServiceError
from plantd.logger._http import read_endpoints
from plantd.proxy._auth import require
from plantd.proxy._catalogue import (
    LOOKUP_TIMEOUT,
    Catalogue,
    CatalogueError,
    ServiceInfo,
    is_operation_name,
)
from plantd.proxy._context import ProxyContext, User
from plantd.proxy._openapi import REST_PATHS, document
from plantd.proxy._problems import Problem, from_service_error
from plantd.service._codec import Json, decode_reply

__all__ = [
    "HEALTH_SERVICE",
    "MAX_BODY",
    "MAX_DEPTH",
    "MAX_PARTS",
    "MAX_RESULT_BYTES",
    "OPENAPI_PATHS",
    "json_response",
    "query_params",
    "read_params",
    "routes",
]

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20  # bytes of a request body
MAX_DEPTH = 64  # nesting of arrays and objects in params
MAX_PARTS = 100_000  # parts of a streaming operation's answer
MAX_RESULT_BYTES = 32 << 20  # bytes of them, all together
MAX_METRICS_BYTES = 32 << 20
METRICS_TIMEOUT = 3.0  # seconds for the logger's /metrics
HEALTH_SERVICE = "org.plantd.Health"
OPENAPI_PATHS = REST_PATHS  # this part's fixed routes, as every part exports them

_JSON_TYPES = ("application/json",)


def routes(ctx: ProxyContext) -> list[BaseRoute]:
    """The REST routes; the catalogue's refresh task starts and stops with the app."""
    catalogue = Catalogue(
        ctx.client, ctx.clock, timeout=min(LOOKUP_TIMEOUT, ctx.config.proxy.request_timeout)
    )
    ctx.startup.append(catalogue.start)
    ctx.shutdown.append(catalogue.stop)
    api = _Api(ctx, catalogue)
    return [
        Route("/api/v1/services", api.services, methods=["GET"]),
        Route("/api/v1/broker", api.broker, methods=["GET"]),
        Route("/api/v1/services/{service}/{operation}", api.call, methods=["GET", "POST"]),
        Route("/api/v1/health", api.health, methods=["GET"]),
        Route("/api/v1/metrics", api.metrics, methods=["GET"]),
        Route("/api/v1/openapi.json", api.openapi, methods=["GET"]),
    ]


class _Api:
    def __init__(self, ctx: ProxyContext, catalogue: Catalogue) -> None:
        self.ctx = ctx
        self.catalogue = catalogue

    # -- the proxy's own routes --------------------------------------------------------------

    async def services(self, request: Request) -> Response:
        require(request, "read")
        services = await self._current()
        return json_response({"services": [service.to_json() for service in services]})

    async def broker(self, request: Request) -> Response:
        require(request, "read")
        try:
            return json_response(await self.catalogue.broker())
        except CatalogueError as exc:
            raise _no_broker(exc) from None

    async def openapi(self, request: Request) -> Response:
        require(request, "read")
        try:
            services = await self._current()
        except Problem:
            if not self.catalogue.services:
                raise
            services = list(self.catalogue.services.values())  # the last known, rather than none
        return json_response(document(services, self.ctx.people.access_of))

    async def health(self, request: Request) -> Response:
        user = require(request, "read")
        report = await self.ctx.call(user, HEALTH_SERVICE, "check")
        ok = isinstance(report, dict) and report.get("ok") is True
        return json_response(report, status=200 if ok else 503)

    async def metrics(self, request: Request) -> Response:
        require(request, "read")
        url = metrics_url(self.ctx)
        if url is None:
            raise Problem(
                503,
                "no logger metrics endpoint is known (is plantd-logger running, with "
                "logger.listen set?)",
                code="proxy.no-logger",
            )
        accept = request.headers.get("accept", "")
        asked = "application/openmetrics-text" if "openmetrics" in accept else "text/plain"
        try:
            media_type, body = await asyncio.to_thread(_fetch, url, asked)
        except (
            OSError,
            ValueError,
            http.client.HTTPException,
        ) as exc:  # URLError, timeouts: OSError
            raise Problem(
                503,
                f"the logger's metrics at {url} could not be read: {exc}",
                code="proxy.no-logger",
            ) from None
        return Response(body, media_type=media_type)

    # -- calls ------------------------------------------------------------------------------

    async def call(self, request: Request) -> Response:
        user = require(request, "read")
        service_name = request.path_params["service"]
        operation = request.path_params["operation"]
        service = await self._service(service_name)
        streaming = await self._operation(service, operation)
        access: Access = self.ctx.people.access_of(service_name, operation)
        if request.method in ("GET", "HEAD"):
            if access != "read":
                raise Problem(
                    405,
                    f"{operation!r} on {service_name} needs {access!r} access: POST its params "
                    "as a JSON object (GET is for read operations only)",
                    headers={"Allow": "POST"},
                )
            params = query_params(request)
        else:
            params = await read_params(request)
        if streaming:
            results = await self._collect(user, service_name, operation, params)
            return json_response({"results": results})
        return json_response({"result": await self.ctx.call(user, service_name, operation, params)})

    async def _current(self) -> list[ServiceInfo]:
        try:
            return await self.catalogue.current()
        except CatalogueError as exc:
            raise _no_broker(exc) from None

    async def _service(self, name: str) -> ServiceInfo:
        if name.startswith("mmi."):
            raise Problem(
                404,
                f"{name} is the broker's own (MMI); see GET /api/v1/services and /api/v1/broker",
                code="proxy.unknown-service",
            )
        try:
            found = await self.catalogue.lookup(name)
        except CatalogueError as exc:
            raise _no_broker(exc) from None
        if found is None:
            raise Problem(
                404,
                f"no worker serves {name[:300]!r} (GET /api/v1/services lists the services)",
                code="proxy.unknown-service",
            )
        return found

    async def _operation(self, service: ServiceInfo, name: str) -> bool:
        """Whether ``name`` streams; a 404 if the service does not offer it."""
        if service.operations is not None and service.operation(name) is None:
            try:
                service = await self.catalogue.relist(service)
            except CatalogueError as exc:
                raise _no_broker(exc) from None
        if service.operations is None:  # it did not say what it offers: let it answer
            if not is_operation_name(name):
                raise Problem(
                    404,
                    f"{name[:100]!r} is not an operation name (lower-case words joined by '-')",
                    code="proxy.unknown-operation",
                )
            return False
        found = service.operation(name)
        if found is None:
            offered = ", ".join(op.name for op in service.operations) or "none"
            raise Problem(
                404,
                f"{service.name} has no operation {name[:100]!r} (it offers: {offered})",
                code="proxy.unknown-operation",
            )
        return found.streaming

    async def _collect(
        self, user: User, service: str, operation: str, params: dict[str, Json]
    ) -> list[Json]:
        """Every part of a streaming operation, called for ``user`` as ``ctx.call`` calls
        (the same body: checked, and delegated)."""
        ctx = self.ctx
        body = ctx.request_body(user, service, operation, params)
        wait = ctx.config.proxy.request_timeout
        results: list[Json] = []
        size = 0
        parts = cast(
            AsyncGenerator[list[bytes], None],
            ctx.client.stream(service, *body, timeout=wait, retries=0),
        )
        try:
            async with asyncio.timeout(wait), contextlib.aclosing(parts):
                async for part in parts:
                    size += sum(map(len, part))
                    if len(results) >= MAX_PARTS or size > MAX_RESULT_BYTES:
                        raise Problem(
                            502,
                            f"{operation!r} on {service} sent more than {MAX_PARTS} parts or "
                            f"{MAX_RESULT_BYTES >> 20} MiB; ask for less (or call it over MDP)",
                            code="proxy.reply-too-large",
                        )
                    results.append(decode_reply(part, service))
        except ServiceError as exc:
            raise from_service_error(exc) from None
        except (TimeoutError, RequestTimeout):
            raise Problem(
                504,
                f"{service} did not finish {operation!r} within {wait:g} s",
                code="client.timeout",
            ) from None
        except RemoteProtocolError as exc:
            raise Problem(502, f"{service} answered {operation!r} with {exc}") from None
        return results


# -- params ------------------------------------------------------------------------------------


async def read_params(request: Request) -> dict[str, Json]:
    """The request body as params: empty is ``{}``; otherwise a JSON object of at most
    :data:`MAX_BODY` bytes (413), JSON (415 for another media type, 400 when it does not
    parse) and an object (422)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise _too_large()
            chunks.append(chunk)
    except ClientDisconnect:
        raise Problem(400, "the request body ended before it was complete") from None
    body = b"".join(chunks)
    if not body.strip():
        return {}
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type and media_type not in _JSON_TYPES and not media_type.endswith("+json"):
        raise Problem(
            415,
            f"the params must be JSON (Content-Type: application/json), not {media_type[:100]}",
        )
    try:
        params = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise Problem(400, f"the request body is not JSON: {str(exc)[:200]}") from None
    if not isinstance(params, dict):
        raise Problem(422, f"the params must be a JSON object ({{…}}), not a {_json_type(params)}")
    _check_depth(params)
    return params


def query_params(request: Request) -> dict[str, Json]:
    """The query string as params: each value JSON if it parses (``n=3`` is 3, ``on=true``
    is true), else the string itself (``scope=plant.line1``). A name given twice is a 400."""
    params: dict[str, Json] = {}
    for name, text in request.query_params.multi_items():
        if name in params:
            raise Problem(400, f"params.{name[:100]} is given more than once in the query")
        params[name] = _query_value(text)
    _check_depth(params)
    return params


def _query_value(text: str) -> Json:
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return text


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_depth(params: dict[str, Json]) -> None:
    """Refuse params nested deeper than :data:`MAX_DEPTH` (no recursion: any depth is safe)."""
    level: list[Any] = [params]
    for _ in range(MAX_DEPTH + 1):
        inner: list[Any] = []
        for value in level:
            if isinstance(value, dict):
                inner.extend(value.values())
            elif isinstance(value, list):
                inner.extend(value)
        if not inner:
            return
        level = inner
    raise Problem(400, f"the params are nested more than {MAX_DEPTH} levels deep")


def _json_type(value: Json) -> str:
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _too_large() -> Problem:
    return Problem(413, f"the request body is larger than {MAX_BODY >> 20} MiB")


# -- answers -----------------------------------------------------------------------------------


def json_response(value: Json, status: int = 200) -> Response:
    """``value`` as JSON (ASCII: a lone surrogate a service sent still encodes); a value JSON
    cannot carry (NaN, too deep) is a 502: the service sent it."""
    try:
        text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    except (ValueError, TypeError, RecursionError) as exc:
        raise Problem(502, f"the answer cannot be sent as JSON: {exc}") from None
    return Response(text, status_code=status, media_type="application/json")


def _no_broker(exc: CatalogueError) -> Problem:
    return Problem(503, str(exc), code="proxy.no-broker")


# -- metrics -----------------------------------------------------------------------------------


def metrics_url(ctx: ProxyContext) -> str | None:
    """The logger's ``/metrics`` URL: as it recorded it in ``paths.run``, else from a fixed
    ``logger.listen``; None when neither says."""
    recorded = read_endpoints(ctx.config.paths.run)
    url = recorded.get("metrics") if recorded else None
    if isinstance(url, str) and url.startswith("http://"):
        return url.replace("//0.0.0.0:", "//127.0.0.1:").replace("//[::]:", "//[::1]:")
    address = ctx.config.logger.listen_address()
    if address is None or address[1] == 0:
        return None
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(address[0], address[0])
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{address[1]}/metrics"


_NO_PROXIES = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _fetch(url: str, accept: str) -> tuple[str, bytes]:
    """GET ``url`` (blocking: run in a thread); its media type and body."""
    request = urllib.request.Request(url, headers={"Accept": accept})
    with _NO_PROXIES.open(request, timeout=METRICS_TIMEOUT) as answer:
        body: bytes = answer.read(MAX_METRICS_BYTES + 1)
        media_type = answer.headers.get("Content-Type", "text/plain; version=0.0.4")
    if len(body) > MAX_METRICS_BYTES:
        raise ValueError(f"more than {MAX_METRICS_BYTES >> 20} MiB of metrics")
    return str(media_type), body
