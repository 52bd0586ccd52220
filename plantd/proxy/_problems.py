"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error the proxy answers is a :class:`Problem`: ``type`` is a stable URI naming the
kind (``https://plantd.org/problems/<code>``, the plantd error code where one exists: the same
codes as over MDP, docs/errors.md), ``title`` the kind in words, ``status`` the HTTP status,
``detail`` what happened this time, and ``code`` the plantd code itself. A service's
``ok: false`` becomes a Problem by its code (:func:`from_service_error`), so a REST client
sees what ``plant call`` would.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from plantd.errors import PlantdError, ServiceError

__all__ = [
    "PROBLEM_TYPE",
    "Problem",
    "from_service_error",
    "problem_response",
    "status_of",
]

PROBLEM_TYPE = "https://plantd.org/problems/"
MEDIA_TYPE = "application/problem+json"

# The HTTP status of each plantd error code (by exact code, then by what it ends with).
_BY_CODE = {
    "broker.denied": 403,
    "broker.no-worker": 503,
    "broker.queue-full": 503,
    "broker.worker-lost": 502,
    "broker.expired": 504,
    "broker.too-large": 413,
    "broker.too-many-frames": 413,
    "client.timeout": 504,
    "client.retries": 504,
    "state.conflict": 409,
    "state.request-id-reused": 409,
    "state.too-large": 413,
    "state.unavailable": 503,
    "state.io-error": 503,
    "state.damaged": 500,
    "module.unavailable": 503,
    "module.device-fault": 502,
    "module.not-writable": 409,
    "audit.unavailable": 503,
    "alarm.unknown": 404,
    "alarm.not-acknowledgeable": 409,
    "alarm.not-shelved": 409,
    "alarm.not-stored": 503,
    "control.unknown": 404,
    "control.out-of-range": 400,
    "control.not-manual": 409,
    "control.interlocked": 409,
    "control.remote-setpoint": 409,
    "control.still-tripped": 409,
    "control.not-tripped": 409,
}
_BY_SUFFIX = (
    ("bad-request", 400),
    ("unknown-operation", 404),
    ("unknown-point", 404),
    ("unknown-key", 404),
    ("unknown-scope", 404),
    ("not-found", 404),
    ("unavailable", 503),
)
_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}


def status_of(code: str) -> int:
    """The HTTP status for a plantd error code (400 for any other ``*.invalid-*``/``bad-*``,
    else 502: the service failed in a way the proxy cannot name better)."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    for suffix, status in _BY_SUFFIX:
        if code.endswith(suffix):
            return status
    last = code.rpartition(".")[2]
    if last.startswith(("invalid-", "bad-")):
        return 400
    return 502


class Problem(PlantdError):
    """An error answer. ``headers`` go with it (``WWW-Authenticate``, ``Retry-After``);
    ``extra`` members are added to the JSON object (RFC 9457 extension members)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or _default_code(status)
        self.title = title or _TITLES.get(status, "Error")
        self.headers = headers or {}
        self.extra = extra

    def as_dict(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


def _default_code(status: int) -> str:
    return {
        400: "bad-request",
        401: "proxy.unauthenticated",
        403: "proxy.forbidden",
        404: "proxy.not-found",
        405: "proxy.method-not-allowed",
        413: "proxy.too-large",
        415: "proxy.unsupported-media-type",
        429: "proxy.throttled",
    }.get(status, "proxy.error")


def from_service_error(error: ServiceError) -> Problem:
    """The Problem for a service's (or the broker's) ``ok: false``."""
    return Problem(status_of(error.code), error.message, code=error.code, service=error.service)


class _ProblemJSON(JSONResponse):
    """ASCII-escaped JSON: a service's message may hold anything, a lone surrogate too, and
    an error answer must never fail to encode."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def problem_response(problem: Problem, request: Request | None = None) -> Response:
    instance = request.url.path if request is not None else None
    return _ProblemJSON(
        problem.as_dict(instance),
        status_code=problem.status,
        headers=problem.headers,
        media_type=MEDIA_TYPE,
    )
