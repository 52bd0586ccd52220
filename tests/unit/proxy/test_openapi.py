"""The OpenAPI document the proxy serves: generated from the catalogue, valid OpenAPI 3.1."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from plantd.config import Access
from plantd.proxy._catalogue import OperationInfo, ServiceInfo, parse_operations
from plantd.proxy._openapi import PROBLEM_STATUSES, REST_PATHS, document, operation_id
from plantd.service.echo import ECHO

STATE = ServiceInfo(
    "org.plantd.State",
    (
        OperationInfo("get", "Read one key.\n\nparams: scope, key.", False, "read"),
        OperationInfo("set", "Write one key.", False, "configure"),
    ),
)
ECHO_INFO = ServiceInfo(ECHO.name, parse_operations(ECHO.describe()))
FOREIGN = ServiceInfo("vendor/thing{1}", None, note="it does not list its operations")
AUTH_PATHS = {
    "/api/v1/login": {
        "post": {
            "operationId": "auth.login",
            "security": [],
            "responses": {"200": {"description": "Logged in"}},
        }
    }
}


def access_of(service: str, operation: str) -> Access:
    """The built-in policy's grading, for the operations of these tests."""
    return "configure" if operation == "set" else "read"


def make(fixed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    services = [ECHO_INFO, STATE, FOREIGN]
    return document(services, access_of, fixed=[AUTH_PATHS] if fixed is None else fixed)


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = make()
    assert doc["openapi"].startswith("3.1.")
    OPENAPI_31_VALIDATOR.validate(doc)
    # ... and the validator does see a broken one (it is not a check that cannot fail)
    broken = copy.deepcopy(doc)
    broken["paths"]["/api/v1/services/org.plantd.State/get"]["post"]["responses"] = "none"
    assert not OPENAPI_31_VALIDATOR.is_valid(broken)


def test_one_literal_path_per_operation_with_its_doc_and_access() -> None:
    paths = make()["paths"]
    get = paths["/api/v1/services/org.plantd.State/get"]
    assert get["post"]["summary"] == "Read one key."
    assert get["post"]["description"] == "Read one key.\n\nparams: scope, key."
    assert get["post"]["x-plantd-access"] == "read"
    assert get["post"]["operationId"] == "org.plantd.State.get"
    assert get["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Params"
    }
    assert get["post"]["responses"]["200"]["content"]["application/json"]["schema"]["required"] == [
        "result"
    ]
    stream = paths["/api/v1/services/org.plantd.module.Echo/stream"]["post"]
    assert stream["responses"]["200"]["content"]["application/json"]["schema"]["required"] == [
        "results"
    ]
    assert stream["x-plantd-streaming"] is True


def test_get_only_for_read_operations() -> None:
    paths = make()["paths"]
    assert set(paths["/api/v1/services/org.plantd.State/get"]) == {"post", "get"}
    write = paths["/api/v1/services/org.plantd.State/set"]
    assert set(write) == {"post"}
    assert write["post"]["x-plantd-access"] == "configure"
    query = paths["/api/v1/services/org.plantd.State/get"]["get"]["parameters"][0]
    assert (query["in"], query["style"], query["explode"]) == ("query", "form", True)


def test_problem_responses_refer_to_problem_json() -> None:
    doc = make()
    post = doc["paths"]["/api/v1/services/org.plantd.State/set"]["post"]
    for status in (400, 401, 403, 404, 413, 422, 429, 502, 503, 504):
        ref = post["responses"][str(status)]["$ref"]
        response = doc["components"]["responses"][ref.rpartition("/")[2]]
        schema = response["content"]["application/problem+json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Problem"}
    assert set(doc["components"]["responses"]) == {f"Problem{s}" for s in PROBLEM_STATUSES}
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["properties"]) >= {"type", "title", "status", "detail", "code"}


def test_security_schemes_cookie_and_bearer() -> None:
    doc = make()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["session"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": "plantd_session",
        "description": schemes["session"]["description"],
    }
    assert (schemes["token"]["type"], schemes["token"]["scheme"]) == ("http", "bearer")
    assert doc["security"] == [{"session": []}, {"token": []}]


def test_fixed_routes_of_every_part_are_merged() -> None:
    paths = make()["paths"]
    assert paths["/api/v1/login"]["post"]["security"] == []
    for path in REST_PATHS:
        assert path in paths
    # a service that does not list its operations has no literal path; the template serves it
    assert not any("vendor" in path for path in paths)
    assert "/api/v1/services/{service}/{operation}" in paths
    # the parts' own OPENAPI_PATHS (whatever they export now) merge into a valid document
    OPENAPI_31_VALIDATOR.validate(document([STATE], access_of))


def test_operation_ids_are_unique_and_sanitised() -> None:
    assert operation_id("org.plantd.module.m 1", "write") == "org.plantd.module.m_1.write"
    assert operation_id("a/b{c}", "get") == "a_b_c_.get"
    clash = ServiceInfo("a b", (OperationInfo("x", "", False, "read"),))
    twin = ServiceInfo("a_b", (OperationInfo("x", "", False, "read"),))
    doc = document([clash, twin], access_of, fixed=[])
    ids = [
        op["operationId"]
        for item in doc["paths"].values()
        for method, op in item.items()
        if method in ("get", "post")
    ]
    assert len(ids) == len(set(ids))
    assert "/api/v1/services/a%20b/x" in doc["paths"]
    OPENAPI_31_VALIDATOR.validate(doc)


@pytest.mark.parametrize("service", [STATE, ECHO_INFO])
def test_tags_name_each_service(service: ServiceInfo) -> None:
    doc = make()
    assert service.name in [tag["name"] for tag in doc["tags"]]
    for op in service.operations or ():
        item = doc["paths"][f"/api/v1/services/{service.name}/{op.name}"]
        assert item["post"]["tags"] == [service.name]
