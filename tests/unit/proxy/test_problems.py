"""The HTTP status of every plantd error code, and problems as RFC 9457 JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from plantd.errors import ServiceError
from plantd.proxy._problems import (
    PROBLEM_TYPE,
    Problem,
    from_service_error,
    problem_response,
    status_of,
)
from plantd.service._codec import STANDARD_ERRORS
from plantd.state import ERROR_CODES as STATE_CODES


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("broker.denied", 403),
        ("broker.no-worker", 503),
        ("broker.queue-full", 503),
        ("broker.worker-lost", 502),
        ("broker.expired", 504),
        ("broker.too-large", 413),
        ("broker.too-many-frames", 413),
        ("client.timeout", 504),
        ("bad-request", 400),
        ("unknown-operation", 404),
        ("internal", 502),  # the service's bug, not the caller's: never a 4xx
        ("state.invalid-scope", 400),
        ("state.invalid-key", 400),
        ("state.unknown-scope", 404),
        ("state.unknown-key", 404),
        ("state.conflict", 409),
        ("state.request-id-reused", 409),
        ("state.too-large", 413),
        ("state.unavailable", 503),
        ("state.damaged", 500),
        ("module.unknown-point", 404),
        ("module.not-writable", 409),
        ("module.bad-value", 400),
        ("module.device-fault", 502),
        ("module.unavailable", 503),
        ("historian.bad-range", 400),
        ("audit.unavailable", 503),
        ("sink.unavailable", 503),  # by its ending
        ("driver.something-odd", 502),  # nothing the proxy can name better
    ],
)
def test_status_of_each_code(code: str, status: int) -> None:
    assert status_of(code) == status


def documented_codes() -> set[str]:
    """Every error code docs/errors.md lists in a table (first column, in backquotes)."""
    text = (Path(__file__).parents[3] / "docs" / "errors.md").read_text()
    return set(re.findall(r"^\| `([a-z][a-z0-9.-]*)` \|", text, re.MULTILINE))


# The codes that do mean "the service or the device failed": a 502 is their right status.
BAD_GATEWAY = {"internal", "broker.worker-lost", "module.device-fault"}


def test_every_documented_code_has_a_status_of_its_own() -> None:
    """A code documented without a mapping would fall to the catch-all 502: a caller's mistake
    (a bad value, an unknown key) must never read as the server's failure."""
    codes = documented_codes() | set(STANDARD_ERRORS) | set(STATE_CODES)
    assert len(codes) >= 25  # the tables were read
    unmapped = sorted(c for c in codes if status_of(c) == 502 and c not in BAD_GATEWAY)
    assert unmapped == []
    for code in codes:
        if code.rpartition(".")[2].startswith(("invalid-", "unknown-", "bad-")):
            assert 400 <= status_of(code) < 500, code


def test_a_service_error_becomes_a_problem_with_its_code_and_service() -> None:
    problem = from_service_error(ServiceError("state.unknown-key", "no key k", "org.plantd.State"))
    body = problem.as_dict("/api/v1/services/org.plantd.State/get")
    assert body == {
        "type": PROBLEM_TYPE + "state.unknown-key",
        "title": "Not found",
        "status": 404,
        "detail": "no key k",
        "code": "state.unknown-key",
        "instance": "/api/v1/services/org.plantd.State/get",
        "service": "org.plantd.State",
    }


def test_problem_response_is_problem_json_with_its_headers() -> None:
    response = problem_response(Problem(405, "use POST", headers={"Allow": "POST"}))
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["allow"] == "POST"
    body = json.loads(bytes(response.body))
    assert body["code"] == "proxy.method-not-allowed"
    assert body["title"] == "Method not allowed"
    assert "instance" not in body
