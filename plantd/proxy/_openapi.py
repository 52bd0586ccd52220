"""The proxy's OpenAPI 3.1 document, generated from the service catalogue.

Nobody writes a route per operation: each (service, operation) the catalogue knows becomes the
literal path ``/api/v1/services/<service>/<operation>`` (``POST`` always, ``GET`` too when the
policy grades the operation ``read``), its summary the first line of the operation's doc, its
description the whole doc, ``x-plantd-access`` the access level the policy asks for
(``security.operations``; the broker enforces the same). The templated path
``/api/v1/services/{service}/{operation}`` stays in the document as well, for services that do
not list their operations. Every fixed route is added from the parts that serve them: each may
export ``OPENAPI_PATHS`` (a dict of path items, as in the document); :data:`REST_PATHS` are this
part's. Errors are RFC 9457 problems: ``#/components/schemas/Problem`` and the
``#/components/responses/Problem<status>`` responses may be referred to by any part.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from plantd import __version__
from plantd.config import Access
from plantd.proxy._catalogue import OperationInfo, ServiceInfo
from plantd.proxy._problems import MEDIA_TYPE, PROBLEM_TYPE

__all__ = [
    "FIXED_PARTS",
    "PROBLEM_STATUSES",
    "REST_PATHS",
    "document",
    "operation_id",
    "problems",
]

OPENAPI_VERSION = "3.1.0"
PROBLEM_STATUSES = (400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 502, 503, 504)
# The modules of plantd.proxy that may export paths.
FIXED_PARTS = ("_auth", "_streams", "_insight", "_system")

_DESCRIPTIONS = {
    400: "The request is malformed (bad JSON, or params the operation refuses)",
    401: "No session or API token, or an expired one",
    403: "The person's roles do not grant the access the operation needs",
    404: "No such service or operation",
    405: "Method not allowed (GET only for read operations)",
    409: "The service refused the change as it stands (a revision conflict, a read-only point)",
    413: "The request body is larger than 1 MiB, or than the broker accepts",
    415: "The request body is not JSON",
    422: "The request body is JSON but not an object",
    429: "Too many requests",
    500: "The proxy failed, or a service's storage is damaged (state.damaged)",
    502: "The service failed or answered something the proxy cannot pass on",
    503: "No worker serves the service now, or the broker or logger cannot be reached",
    504: "The service did not answer in time",
}
_BODY_STATUSES = (413, 415, 422)  # only where a request body is read
_OPERATION_ID = re.compile(r"[^A-Za-z0-9_.-]+")


def problems(*statuses: int) -> dict[str, Any]:
    """The ``responses`` entries for the problem statuses given."""
    return {str(s): {"$ref": f"#/components/responses/Problem{s}"} for s in statuses}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


_HEALTH_SCHEMA = {
    "type": "object",
    "required": ["ok", "verdict"],
    "properties": {
        "ok": {"type": "boolean"},
        "verdict": {"enum": ["ok", "degraded", "failed"]},
        "services": {"type": "array", "items": {"type": "object"}},
    },
}
_SERVICES_SCHEMA = {
    "type": "object",
    "required": ["services"],
    "properties": {
        "services": {"type": "array", "items": {"$ref": "#/components/schemas/Service"}}
    },
}
_READ = {"x-plantd-access": "read"}

REST_PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/services": {
        "get": {
            "operationId": "proxy.services",
            "summary": "The services the broker serves, their workers and their operations",
            "tags": ["proxy"],
            **_READ,
            "responses": {
                "200": {"description": "The catalogue", "content": _json_content(_SERVICES_SCHEMA)},
                **problems(401, 403, 503, 504),
            },
        }
    },
    "/api/v1/broker": {
        "get": {
            "operationId": "proxy.broker",
            "summary": "What the broker says of itself (mmi.broker): version, uptime, counters",
            "tags": ["proxy"],
            **_READ,
            "responses": {
                "200": {"description": "mmi.broker", "content": _json_content({"type": "object"})},
                **problems(401, 403, 503, 504),
            },
        }
    },
    "/api/v1/health": {
        "get": {
            "operationId": "proxy.health",
            "summary": "The plant software's health (org.plantd.Health check)",
            "description": "200 when the verdict is ok, 503 with the same body otherwise.",
            "tags": ["proxy"],
            **_READ,
            "responses": {
                "200": {"description": "Healthy", "content": _json_content(_HEALTH_SCHEMA)},
                "503": {
                    "description": "Not healthy (the body says why), or nobody can tell",
                    "content": {
                        **_json_content(_HEALTH_SCHEMA),
                        MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}},
                    },
                },
                **problems(401, 403, 502, 504),
            },
        }
    },
    "/api/v1/metrics": {
        "get": {
            "operationId": "proxy.metrics",
            "summary": "Every process's metrics, merged by the logger (Prometheus text)",
            "tags": ["proxy"],
            **_READ,
            "responses": {
                "200": {
                    "description": "Prometheus text format 0.0.4, or OpenMetrics when asked",
                    "content": {
                        "text/plain": {"schema": {"type": "string"}},
                        "application/openmetrics-text": {"schema": {"type": "string"}},
                    },
                },
                **problems(401, 403, 503),
            },
        }
    },
    "/api/v1/openapi.json": {
        "get": {
            "operationId": "proxy.openapi",
            "summary": "This document",
            "tags": ["proxy"],
            **_READ,
            "responses": {
                "200": {"description": "OpenAPI 3.1", "content": _json_content({"type": "object"})},
                **problems(401, 403, 503, 504),
            },
        }
    },
}


def operation_id(*parts: str) -> str:
    """``parts`` joined by dots, every run of other characters than letters, digits, ``_.-``
    made one ``_``."""
    return _OPERATION_ID.sub("_", ".".join(parts))


def document(
    services: Iterable[ServiceInfo],
    access_of: Callable[[str, str], Access],
    fixed: Iterable[dict[str, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The OpenAPI document for ``services`` (``access_of(service, operation)``: the policy's
    grading). ``fixed``: the fixed routes' path items (None: every part's ``OPENAPI_PATHS``)."""
    paths: dict[str, dict[str, Any]] = {}
    for path_items in [REST_PATHS, *(fixed_paths() if fixed is None else fixed)]:
        for path, item in path_items.items():
            paths.setdefault(path, {}).update(item)
    paths["/api/v1/services/{service}/{operation}"] = _generic_item()
    taken: set[str] = set()
    tags = [{"name": "proxy", "description": "The proxy's own routes"}]
    for service in sorted(services, key=lambda s: s.name):
        tags.append({"name": service.name, "description": service.note or ""})
        for op in service.operations or ():
            access = access_of(service.name, op.name)
            path = f"/api/v1/services/{quote(service.name, safe='')}/{op.name}"
            paths[path] = _operation_item(service.name, op, access, taken)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "plantd proxy",
            "version": __version__,
            "description": (
                "REST over every plantd service, generated from what each service lists "
                "(its 'operations'). Every call is made on behalf of the person logged in: the "
                "broker checks their roles and audits it under their name."
            ),
        },
        "security": [{"session": []}, {"token": []}],
        "tags": tags,
        "paths": paths,
        "components": _components(),
    }


def fixed_paths() -> list[dict[str, dict[str, Any]]]:
    """``OPENAPI_PATHS`` of every part that serves fixed routes (an empty dict when a part
    exports none)."""
    found = []
    for name in FIXED_PARTS:
        module = importlib.import_module(f"plantd.proxy.{name}")
        paths = getattr(module, "OPENAPI_PATHS", {})
        if isinstance(paths, dict):
            found.append(paths)
    return found


def _operation_item(
    service: str, op: OperationInfo, access: Access, taken: set[str]
) -> dict[str, Any]:
    result = (
        {"results": {"type": "array", "description": "Every part the operation sent, in order"}}
        if op.streaming
        else {"result": {"description": "What the operation answered"}}
    )
    ok = {
        "description": "The operation's answer",
        "content": _json_content(
            {"type": "object", "required": list(result), "properties": result}
        ),
    }
    common = {
        "summary": op.summary or op.name,
        "description": op.doc,
        "tags": [service],
        "x-plantd-access": access,
        "x-plantd-streaming": op.streaming,
    }
    item: dict[str, Any] = {
        "post": {
            **common,
            "operationId": _unique(operation_id(service, op.name), taken),
            "requestBody": {
                "required": False,
                "description": "The operation's params (an empty body is {})",
                "content": _json_content({"$ref": "#/components/schemas/Params"}),
            },
            "responses": {"200": ok, **problems(*_without(405))},
        }
    }
    if access == "read":
        item["get"] = {
            **common,
            "operationId": _unique(operation_id(service, op.name, "GET"), taken),
            "parameters": [_QUERY_PARAMS],
            "responses": {"200": ok, **problems(*_without(405, *_BODY_STATUSES))},
        }
    return item


_QUERY_PARAMS = {
    "name": "params",
    "in": "query",
    "description": "The operation's params, one query parameter each: its value is read as "
    "JSON if it parses, else taken as a string",
    "required": False,
    "style": "form",
    "explode": True,
    "schema": {"type": "object", "additionalProperties": {"type": "string"}},
}


def _generic_item() -> dict[str, Any]:
    path_params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in ("service", "operation")
    ]
    ok = {
        "description": "The operation's answer: {result} or, streaming, {results: [...]}",
        "content": _json_content({"type": "object"}),
    }
    return {
        "parameters": path_params,
        "post": {
            "operationId": "proxy.call",
            "summary": "Call any operation of any service",
            "description": "For a service that does not list its operations, or one that "
            "appeared after this document was made. The operation's access level decides who "
            "may (security.operations).",
            "tags": ["proxy"],
            "requestBody": {
                "required": False,
                "content": _json_content({"$ref": "#/components/schemas/Params"}),
            },
            "responses": {"200": ok, **problems(*_without(405))},
        },
        "get": {
            "operationId": "proxy.call.GET",
            "summary": "Call a read operation of any service",
            "tags": ["proxy"],
            "parameters": [_QUERY_PARAMS],
            "responses": {"200": ok, **problems(*_without(*_BODY_STATUSES))},
        },
    }


def _components() -> dict[str, Any]:
    responses = {
        f"Problem{status}": {
            "description": _DESCRIPTIONS[status],
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in PROBLEM_STATUSES
    }
    return {
        "securitySchemes": {
            "session": {
                "type": "apiKey",
                "in": "cookie",
                "name": "plantd_session",
                "description": "A browser session (POST /api/v1/login); unsafe methods also "
                "need the X-CSRF-Token header",
            },
            "token": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API token (plant proxy token create USER --name N)",
            },
        },
        "schemas": {
            "Problem": {
                "type": "object",
                "description": "RFC 9457 problem details",
                "required": ["type", "title", "status"],
                "properties": {
                    "type": {"type": "string", "description": f"{PROBLEM_TYPE}<code>"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "code": {"type": "string", "description": "The plantd error code"},
                    "instance": {"type": "string"},
                },
                "additionalProperties": True,
            },
            "Params": {
                "type": "object",
                "description": "An operation's params (names as the operation expects them)",
                "additionalProperties": True,
            },
            "Service": {
                "type": "object",
                "required": ["name", "workers", "operations"],
                "properties": {
                    "name": {"type": "string"},
                    "workers": {
                        "type": "object",
                        "properties": {
                            key: {"type": "integer"} for key in ("idle", "busy", "queued")
                        },
                    },
                    "operations": {"type": "array", "items": {"type": "object"}},
                    "note": {"type": "string"},
                },
            },
        },
        "responses": responses,
    }


def _without(*excluded: int) -> list[int]:
    return [s for s in PROBLEM_STATUSES if s not in excluded]


def _unique(candidate: str, taken: set[str]) -> str:
    name, n = candidate, 1
    while name in taken:
        n += 1
        name = f"{candidate}_{n}"
    taken.add(name)
    return name
