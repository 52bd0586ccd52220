"""What the app shows besides live data: ``config check`` results and HIL run results.

``GET /api/v1/config/check`` runs the validation ``plant config check`` runs (the same
functions: ``load_config``, ``check_modules_dir``, each module file read with its driver's
schema, each sink file) on the directory the proxy's configuration came from, on a worker
thread (drivers are imported, files read). The validator reports problems as text,
``FILE:LINE: a.b.c: message``; :func:`split_problem` takes that apart into ``file``, ``line``,
``key`` and ``message`` where the text has them (null where it does not). Environment overrides
are not part of the check: the proxy's environment is not the technician's shell.

``GET /api/v1/hil/results`` lists the JUnit XML files that ``plant hil run --junit DIR/NAME.xml``
left in ``proxy.hil_results``, newest first, each with its totals; ``/api/v1/hil/results/NAME``
gives one file's suites, cases and failures. A result file is untrusted input: names are a
plain file name (no path, no ``..``: refused with 404 before the disk is touched), files above
:data:`MAX_RESULT_BYTES` are not parsed, a document type declaration (entity expansion) is
refused, and a file that is not JUnit XML is reported with ``error`` rather than failing the
request.
"""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from plantd.proxy._auth import require
from plantd.proxy._context import ProxyContext
from plantd.proxy._openapi import problems as problem_responses
from plantd.proxy._problems import Problem

__all__ = [
    "MAX_RESULT_BYTES",
    "MAX_RESULT_FILES",
    "OPENAPI_PATHS",
    "check_config_dir",
    "parse_junit",
    "routes",
    "split_problem",
]

MAX_RESULT_BYTES = 4 * 1024 * 1024  # a JUnit file of a long scenario with logs is ~100 KiB
MAX_RESULT_FILES = 200  # the newest ones listed; older files stay on disk, unlisted
MAX_TEXT = 64 * 1024  # characters kept of a failure's text or a suite's system-out/err

_RESULT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# FILE[:LINE]: [KEY: ]MESSAGE, where KEY is a dotted path without spaces (a.b[2].c).
_PROBLEM = re.compile(
    r"(?P<file>[^:\n]+?)(?::(?P<line>\d+))?: (?:(?P<key>[\w\-]+(?:[.\[][\w\-\]]*)*): )?"
    r"(?P<message>.*)",
    re.DOTALL,
)


# --- config check ------------------------------------------------------------------------------


def split_problem(text: str) -> dict[str, Any]:
    """One problem line of the validator as ``{"file", "line", "key", "message"}``."""
    if text.startswith("environment "):
        name, _, message = text.partition(": ")
        return {"file": name, "line": None, "key": None, "message": message or text}
    match = _PROBLEM.fullmatch(text)
    if match is None:
        return {"file": None, "line": None, "key": None, "message": text}
    line = match["line"]
    return {
        "file": match["file"],
        "line": int(line) if line is not None else None,
        "key": match["key"],
        "message": match["message"],
    }


def check_config_dir(config_dir: Path | None) -> dict[str, Any]:
    """What ``plant config check`` finds in ``config_dir`` (None: built-in defaults), without
    the proxy's environment overrides (its environment is not the technician's shell)."""
    from plantd.configcheck import check_directory

    check = check_directory(config_dir, {})
    return {
        "ok": check.ok,
        "config_dir": str(config_dir) if config_dir is not None else None,
        "files": check.files,
        "problems": [split_problem(problem) for problem in check.problems],
    }


# --- HIL results -------------------------------------------------------------------------------


def _number(element: ET.Element, name: str, kind: type[int] | type[float]) -> Any:
    try:
        return kind(element.get(name, "0"))
    except ValueError:
        return None


def _text(element: ET.Element | None) -> str | None:
    if element is None:
        return None
    text = element.text or ""
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "\n… (cut)"


def _case(element: ET.Element) -> dict[str, Any]:
    case: dict[str, Any] = {
        "name": element.get("name", ""),
        "classname": element.get("classname", ""),
        "time": _number(element, "time", float),
        "status": "passed",
        "message": None,
        "type": None,
        "text": None,
    }
    for tag, status in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
        found = element.find(tag)
        if found is not None:
            case.update(
                status=status,
                message=found.get("message"),
                type=found.get("type"),
                text=_text(found),
            )
            break
    return case


def _suite(element: ET.Element) -> dict[str, Any]:
    cases = [_case(case) for case in element.iter("testcase")]
    counted = {
        "tests": len(cases),
        "failures": sum(case["status"] == "failed" for case in cases),
        "errors": sum(case["status"] == "error" for case in cases),
        "skipped": sum(case["status"] == "skipped" for case in cases),
    }
    properties = {
        prop.get("name", ""): prop.get("value", "")
        for prop in element.iterfind("properties/property")
    }
    return {
        "name": element.get("name", ""),
        "timestamp": element.get("timestamp"),
        "hostname": element.get("hostname"),
        "time": _number(element, "time", float),
        **counted,  # counted from the cases: an attribute may lie, the cases do not
        "properties": properties,
        "cases": cases,
        "system_out": _text(element.find("system-out")),
        "system_err": _text(element.find("system-err")),
    }


def parse_junit(data: bytes) -> dict[str, Any]:
    """A JUnit XML document as ``{"ok", "tests", "failures", "errors", "skipped", "time",
    "suites"}``; raises ValueError naming what is wrong if it is not one."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ValueError("a document type declaration is not allowed in a result file")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from None
    if root.tag == "testsuite":
        suites = [_suite(root)]
    elif root.tag == "testsuites":
        suites = [_suite(suite) for suite in root.iterfind("testsuite")]
    else:
        raise ValueError(f"not JUnit XML: the root element is <{root.tag}>, not <testsuites>")
    totals = {key: sum(suite[key] for suite in suites) for key in ("tests", "failures", "errors")}
    skipped = sum(suite["skipped"] for suite in suites)
    times = [suite["time"] for suite in suites if suite["time"] is not None]
    return {
        "ok": totals["failures"] + totals["errors"] == 0,
        **totals,
        "skipped": skipped,
        "time": round(sum(times), 3),
        "suites": suites,
    }


def _result_file(directory: Path, name: str) -> Path:
    """The file for result ``name`` (with or without ``.xml``), refusing anything but a plain
    name inside ``directory``."""
    stem = name.removesuffix(".xml")
    if not _RESULT_NAME.fullmatch(stem) or ".." in stem:
        raise Problem(404, f"no HIL result named {name!r} (a name is letters, digits, . _ -)")
    path = directory / f"{stem}.xml"
    if path.resolve().parent != directory.resolve() or not path.is_file():
        raise Problem(404, f"no HIL result named {name!r} in {directory}")
    return path


def read_result(path: Path, *, details: bool) -> dict[str, Any]:
    """One result file: name, time and size, then its totals (and suites when ``details``) or
    ``error`` saying why it could not be read."""
    stat = path.stat()
    entry: dict[str, Any] = {"name": path.stem, "modified": stat.st_mtime, "bytes": stat.st_size}
    try:
        if stat.st_size > MAX_RESULT_BYTES:
            raise ValueError(f"{stat.st_size} bytes: larger than {MAX_RESULT_BYTES}, not read")
        parsed = parse_junit(path.read_bytes())
    except (OSError, ValueError) as exc:
        entry.update(ok=False, error=str(exc))
        return entry
    if not details:
        del parsed["suites"]
    entry.update(parsed, error=None)
    return entry


def list_results(directory: Path) -> dict[str, Any]:
    """The newest :data:`MAX_RESULT_FILES` result files, newest first, with their totals."""
    try:
        files = [path for path in directory.glob("*.xml") if path.is_file()]
    except OSError:
        files = []
    files.sort(key=lambda path: path.stat().st_mtime, reverse=True)
    return {
        "directory": str(directory),
        "results": [read_result(path, details=False) for path in files[:MAX_RESULT_FILES]],
        "more": len(files) > MAX_RESULT_FILES,
    }


# --- routes ------------------------------------------------------------------------------------


def routes(ctx: ProxyContext) -> list[BaseRoute]:
    results_dir = ctx.config.proxy.hil_results_path(ctx.config.paths)

    async def config_check(request: Request) -> JSONResponse:
        require(request, "read")
        return JSONResponse(await asyncio.to_thread(check_config_dir, ctx.config.source_dir))

    async def hil_results(request: Request) -> JSONResponse:
        require(request, "read")
        return JSONResponse(await asyncio.to_thread(list_results, results_dir))

    async def hil_result(request: Request) -> JSONResponse:
        require(request, "read")
        path = _result_file(results_dir, request.path_params["name"])
        return JSONResponse(await asyncio.to_thread(read_result, path, details=True))

    return [
        Route("/api/v1/config/check", config_check, methods=["GET"]),
        Route("/api/v1/hil/results", hil_results, methods=["GET"]),
        Route("/api/v1/hil/results/{name}", hil_result, methods=["GET"]),
    ]


# --- OpenAPI (merged into /api/v1/openapi.json by _openapi) ------------------------------------


_NULLABLE_TEXT = {"type": ["string", "null"]}
_TOTALS = {
    "ok": {"type": "boolean"},
    "tests": {"type": "integer"},
    "failures": {"type": "integer"},
    "errors": {"type": "integer"},
    "skipped": {"type": "integer"},
    "time": {"type": "number"},
}
_RESULT = {
    "type": "object",
    "required": ["name", "modified", "bytes", "ok"],
    "properties": {
        "name": {"type": "string"},
        "modified": {"type": "number", "description": "Unix seconds"},
        "bytes": {"type": "integer"},
        **_TOTALS,
        "error": {**_NULLABLE_TEXT, "description": "why the file could not be read"},
    },
}


def _get(
    name: str, summary: str, description: str, schema: dict[str, Any], **more: Any
) -> dict[str, Any]:
    responses = {
        "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
        **problem_responses(401, 403, *more.pop("statuses", ())),
    }
    operation = {
        "operationId": f"proxy.{name}",
        "tags": ["proxy"],
        "summary": summary,
        "description": description,
        "x-plantd-access": "read",
        "responses": responses,
        **more,
    }
    return {"get": operation}


OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/config/check": _get(
        "config-check",
        "Validate the configuration directory (plant config check)",
        "Runs the checks `plant config check` runs on the proxy's config directory; "
        "each problem split into file, line, key and message where the text has them.",
        {
            "type": "object",
            "required": ["ok", "problems"],
            "properties": {
                "ok": {"type": "boolean"},
                "config_dir": _NULLABLE_TEXT,
                "files": {"type": "array", "items": {"type": "string"}},
                "problems": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "file": _NULLABLE_TEXT,
                            "line": {"type": ["integer", "null"]},
                            "key": _NULLABLE_TEXT,
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        },
    ),
    "/api/v1/hil/results": _get(
        "hil-results",
        "HIL run results (JUnit XML files), newest first",
        "The JUnit files `plant hil run --junit` wrote to `proxy.hil_results`, with totals.",
        {
            "type": "object",
            "properties": {
                "directory": {"type": "string"},
                "results": {"type": "array", "items": _RESULT},
                "more": {"type": "boolean"},
            },
        },
    ),
    "/api/v1/hil/results/{name}": _get(
        "hil-result",
        "One HIL run result: suites, cases, failures",
        "A result file parsed; `error` says why when it is not JUnit XML.",
        {
            "allOf": [
                _RESULT,
                {"properties": {"suites": {"type": "array", "items": {"type": "object"}}}},
            ]
        },
        parameters=[
            {
                "name": "name",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": _RESULT_NAME.pattern},
            }
        ],
        statuses=(404,),
    ),
}
