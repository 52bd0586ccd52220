"""``plant call SERVICE OP [JSON]`` and ``plant echo TEXT``: call service operations."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

# add_client_options and client_for live in _common (the public kit, plantd.cli); the other
# commands still import them from here.
from plantd.cli._common import OUTPUT_OPTIONS, add_client_options, client_for, emit
from plantd.errors import ServiceError, UsageError
from plantd.service import stream

__all__ = ["add_client_options", "client_for", "register"]


def register(sub: Any) -> None:
    call = sub.add_parser("call", parents=[OUTPUT_OPTIONS], help="call an operation of a service")
    call.add_argument("service", help="service name, e.g. org.plantd.module.Echo")
    call.add_argument("operation", help="operation name, e.g. echo ('operations' lists them)")
    call.add_argument("params", nargs="?", default="{}", help="params as a JSON object")
    add_client_options(call)
    call.set_defaults(run=_run_call)

    echo = sub.add_parser(
        "echo", parents=[OUTPUT_OPTIONS], help="send TEXT to the Echo service and print the answer"
    )
    echo.add_argument("text")
    add_client_options(echo)
    echo.set_defaults(run=_run_echo)


def _parse_params(text: str) -> dict[str, Any]:
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"params are not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise UsageError(f"params must be a JSON object, got {type(params).__name__}")
    return params


def _run_call(args: argparse.Namespace) -> int:
    params = _parse_params(args.params)
    with client_for(args) as client:
        try:
            for result in stream(client, args.service, args.operation, params):
                emit(args, {"ok": True, "result": result}, _human(result))
        except ServiceError as exc:
            if args.json:
                emit(args, {"ok": False, "error": {"code": exc.code, "message": exc.message}}, "")
            else:
                print(f"plant: {exc.code}: {exc.message}", file=sys.stderr)
            return 1
    return 0


def _run_echo(args: argparse.Namespace) -> int:
    from plantd.service.echo import SERVICE_NAME

    with client_for(args) as client:
        result = next(iter(stream(client, SERVICE_NAME, "echo", {"text": args.text})))
    emit(args, result, str(result.get("text", "")))
    return 0


def _human(result: Any) -> str:
    if isinstance(result, str):
        return result
    return json.dumps(result, indent=2, sort_keys=True)
