"""The proxy's OpenAPI document, fuzzed against a running ``plantd-proxy`` (schemathesis).

The document is fetched from the proxy itself, as an admin (it needs a person like every
route), and every operation in it — the proxy's fixed routes and one per (service, operation)
of the live catalogue — is then asked:

- **without credentials**: a plain request, one with a bearer token that is no token and one
  with a session cookie that is no session, and requests schemathesis makes from the
  document: every answer is 401, an RFC 9457 problem. Two routes take no person: login
  answers 400, 401, 422 or 429 to what it is sent (never 2xx, never 5xx), and logout ends
  whatever session the request names, so without one it answers 204 (documented: "also
  when there was no session"; it tells nothing and clears only the caller's cookie) or 401.
- **as a viewer** (a bearer token made with ``plant proxy token create``): a bounded number
  of cases per operation, valid ones (positive) and invalid ones (negative). No answer is a
  5xx (the one documented 5xx that is no server error: ``/api/v1/health`` says 503 with a
  health verdict when the stack is not ok), and positive cases' answers conform to the
  document (documented status, content type and body schema).

A viewer may read but not operate, configure or administer, so the fuzzing cannot write a
setpoint, inject a simulator fault or change state: the stack stays fit for every case, and
the refusals (403) are answers the document must describe too. ``GET /api/v1/stream`` is
asked only without credentials: with them it is an endless event stream (tests of its own in
test_stream.py). Hypothesis runs derandomized (the same cases each run) and without
shrinking (a failing case is reported as found), so the run is bounded and repeatable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import Case, GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.core.result import Err
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.proxy.conftest import ProxyStack

LOGIN = ("POST", "/api/v1/login")
LOGOUT = ("POST", "/api/v1/logout")
STREAM = ("GET", "/api/v1/stream")
LOGIN_ANSWERS = {400, 401, 422, 429}
LOGOUT_ANSWERS = {204, 401}  # ending a session that is not there: done, nothing to tell
PROBLEM = "application/problem+json"

# Case[Any]s per operation: the catalogue has some 70 operations; 10 + 5 each keeps the fuzzing
# within a minute or two on a loaded machine.
POSITIVE_EXAMPLES = 10
NEGATIVE_EXAMPLES = 5
UNAUTHENTICATED_EXAMPLES = 3

# What stands in for a path parameter in the plain requests (any value: no person, no look).
PATH_VALUES = {"service": "org.plantd.State", "operation": "get", "name": "suite"}


def bounded(examples: int) -> hypothesis.settings:
    """Hypothesis settings for ``examples`` cases: no deadline (a real stack answers), no
    example database, derandomized, not shrunk."""
    return hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


@pytest.fixture(scope="module")
def document(proxy_stack: ProxyStack) -> dict[str, Any]:
    admin = proxy_stack.client("user.ada")
    try:
        answer = admin.get("/api/v1/openapi.json")
    finally:
        admin.close()
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


@pytest.fixture(scope="module")
def schema(document: dict[str, Any]) -> BaseSchema:
    return schemathesis.openapi.from_dict(document)


@pytest.fixture(scope="module")
def viewer_token(proxy_stack: ProxyStack) -> str:
    """A bearer token of user.vera (viewer), made as an admin would: with the CLI."""
    done = proxy_stack.plant("proxy", "token", "create", "user.vera", "--name", "fuzz")
    assert done.returncode == 0, done.stderr
    found = re.search(r"\bpdt_[A-Za-z0-9_-]+", done.stdout)
    assert found, f"no token in the CLI's answer: {done.stdout!r}"
    return found.group(0)


def endpoints(document: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(METHOD, path template) of every operation in the document."""
    for path, item in document["paths"].items():
        for method in ("get", "put", "post", "delete", "patch", "head", "options"):
            if method in item:
                yield method.upper(), path


def operations(schema: BaseSchema) -> list[APIOperation[Any, Any, Any, Any]]:
    """Every operation schemathesis reads from the document (one it cannot read fails)."""
    found = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise AssertionError(f"schemathesis cannot read an operation: {result.err()}")
        found.append(result.ok())
    return found


def concrete(template: str) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: PATH_VALUES.get(m.group(1), "x"), template)


def test_the_document_covers_the_proxy_and_the_catalogue(
    document: dict[str, Any], schema: BaseSchema
) -> None:
    """An OpenAPI 3.1 document schemathesis can read, with the fixed routes, the generic call
    route and an operation of each running service (from the live catalogue)."""
    assert document["openapi"].startswith("3.1")
    paths = set(document["paths"])
    for fixed in ("/api/v1/login", "/api/v1/services", "/api/v1/health", "/api/v1/stream"):
        assert fixed in paths, fixed
    assert "/api/v1/services/{service}/{operation}" in paths
    for service in ("org.plantd.State", "org.plantd.Historian", "org.plantd.module.station"):
        assert any(p.startswith(f"/api/v1/services/{service}/") for p in paths), service
    assert len(operations(schema)) == len(list(endpoints(document)))


def test_every_operation_answers_401_without_credentials(
    proxy_stack: ProxyStack, document: dict[str, Any]
) -> None:
    """A plain request to every operation, with no credentials, a bearer token that is no
    token and a session cookie that is no session: 401 problems (login: 4xx; logout: 204)."""
    wrong: list[str] = []
    attempts = {  # headers only: a cookie jar would forget the cookie logout clears
        "nothing": {},
        "a bad token": {"Authorization": "Bearer pdt_nosuchid_nosuchsecret"},
        "a bad session": {"Cookie": "plantd_session=not-a-session", "X-CSRF-Token": "x"},
    }
    with httpx.Client(base_url=proxy_stack.url, timeout=10.0) as client:
        for method, template in endpoints(document):
            path = concrete(template)
            body: dict[str, Any] | None = {} if method in ("POST", "PUT", "PATCH") else None
            for what, headers in attempts.items():
                answer = client.request(method, path, headers=headers, json=body)
                status, kind = answer.status_code, answer.headers.get("content-type", "")
                told = f"{method} {path} with {what}: {status} {kind} {answer.text[:200]}"
                if (method, template) in (LOGIN, LOGOUT):
                    allowed = LOGIN_ANSWERS if (method, template) == LOGIN else LOGOUT_ANSWERS
                    if status not in allowed:
                        wrong.append(told)
                elif status != 401 or not kind.startswith(PROBLEM):
                    wrong.append(told)
    assert not wrong, "not 401:\n" + "\n".join(wrong)


def test_generated_requests_without_credentials_answer_401(
    proxy_stack: ProxyStack, schema: BaseSchema
) -> None:
    """Whatever the request carries (schemathesis's cases from the document), without
    credentials the answer is 401, before any of it is looked at (login: 4xx, never 2xx;
    logout: 204)."""
    wrong: list[str] = []
    for operation in operations(schema):
        allowed = {LOGIN: LOGIN_ANSWERS, LOGOUT: LOGOUT_ANSWERS}.get(
            (operation.method.upper(), operation.path), {401}
        )

        def refused(case: Case[Any], allowed: set[int] = allowed) -> None:
            answer = case.call(base_url=proxy_stack.url, timeout=30)
            assert answer.status_code in allowed, (answer.status_code, answer.text[:200])

        failure = run_cases(operation, GenerationMode.POSITIVE, UNAUTHENTICATED_EXAMPLES, refused)
        if failure:
            wrong.append(failure)
    assert not wrong, "not refused:\n" + "\n".join(wrong)


def no_server_error(case: Case[Any], status: int, body: Any) -> str | None:
    """What is wrong with a 5xx answer (None: not one, or health's documented 503)."""
    if status < 500:
        return None
    if (
        (case.operation.method.upper(), case.operation.path) == ("GET", "/api/v1/health")
        and status == 503
        and isinstance(body, dict)
        and body.get("verdict") in ("degraded", "failed")
    ):
        return None
    return f"{status}: {body}"


def run_cases(
    operation: APIOperation[Any, Any, Any, Any],
    mode: GenerationMode,
    examples: int,
    ask: Callable[[Case[Any]], None],
) -> str | None:
    """``ask(case)`` for ``examples`` cases of ``operation`` made in ``mode``; what went
    wrong, if anything (the first failing case, not shrunk)."""

    @hypothesis.given(case=operation.as_strategy(mode))
    @bounded(examples)
    def each(case: Case[Any]) -> None:
        ask(case)

    try:
        each()
    except Exception as error:  # a check's failure group, or our own assertion
        return f"{operation.label} ({mode.value}): {error}"
    return None


def fuzz(
    proxy_stack: ProxyStack,
    schema: BaseSchema,
    token: str,
    *,
    mode: GenerationMode,
    examples: int,
    checks: list[CheckFunction],
) -> tuple[int, list[str]]:
    """Every operation but the stream, ``examples`` cases each in ``mode``, as the token's
    person: (cases sent, what went wrong)."""
    headers = {"Authorization": f"Bearer {token}"}
    sent = 0

    def ask(case: Case[Any]) -> None:
        nonlocal sent
        answer = case.call(base_url=proxy_stack.url, headers=headers, timeout=30)
        sent += 1
        try:
            body = answer.json()
        except ValueError:
            body = answer.text[:300]
        problem = no_server_error(case, answer.status_code, body)
        assert problem is None, f"{case.as_curl_command(headers=headers)}\n  -> {problem}"
        if checks:
            case.validate_response(answer, checks=checks, headers=headers)

    wrong = [
        failure
        for operation in operations(schema)
        if (operation.method.upper(), operation.path) != STREAM
        and (failure := run_cases(operation, mode, examples, ask))
    ]
    return sent, wrong


# About 1,100 requests through the real proxy and broker: some 30 s alone, more under a
# parallel suite; pytest's default 120 s per test is too close for that.
@pytest.mark.timeout(300)
def test_fuzzed_as_a_viewer_no_server_errors_and_answers_as_documented(
    proxy_stack: ProxyStack, schema: BaseSchema, viewer_token: str
) -> None:
    """Valid cases of every operation: no 5xx, and answers as the document says (status,
    content type, body); invalid cases: no 5xx."""
    conformance = [status_code_conformance, content_type_conformance, response_schema_conformance]
    positive, wrong = fuzz(
        proxy_stack,
        schema,
        viewer_token,
        mode=GenerationMode.POSITIVE,
        examples=POSITIVE_EXAMPLES,
        checks=conformance,
    )
    negative, wrong_negative = fuzz(
        proxy_stack,
        schema,
        viewer_token,
        mode=GenerationMode.NEGATIVE,
        examples=NEGATIVE_EXAMPLES,
        checks=[],
    )
    print(f"fuzzed: {positive} valid and {negative} invalid requests as user.vera")
    assert positive > 0
    assert negative > 0
    problems = wrong + wrong_negative
    assert not problems, f"{len(problems)} operations misbehaved:\n" + "\n\n".join(problems)
