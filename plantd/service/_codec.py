"""The service-call convention over MDP (docs/architecture.md, "Service calls over MDP").

    request   frame 1: operation name (ASCII, e.g. ``get``)   frame 2: a JSON object (params)
    reply     one JSON frame: {"ok": true, "result": …}
                           or {"ok": false, "error": {"code": "…", "message": "…"}}

A streaming operation sends each item as a PARTIAL ``{"ok": true, "result": item}`` and ends
with a FINAL in the same shape. Error codes are short, stable and dotted by origin: the ones
every service may answer are listed in :data:`STANDARD_ERRORS`; the broker's start ``broker.``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from plantd.errors import RemoteProtocolError, ServiceError

__all__ = [
    "STANDARD_ERRORS",
    "Json",
    "decode_call",
    "decode_reply",
    "encode_call",
    "encode_error",
    "encode_ok",
]

Json = Any  # a JSON-compatible value

STANDARD_ERRORS = {
    "bad-request": "the request frames are not operation + JSON object, or params are invalid",
    "unknown-operation": "the service has no operation by that name",
    "internal": "the handler failed; the message names the exception",
    "broker.no-worker": "no worker for the service registered within broker.request_expiry",
    "broker.expired": "every worker stayed busy for broker.request_expiry",
    "broker.queue-full": "the service's queue (or the broker's) is full",
    "broker.too-large": "the request exceeds broker.max_message_bytes",
    "broker.too-many-frames": "the request has more frames than broker.max_frames",
    "broker.worker-lost": "the worker died or left while handling the request",
    "broker.denied": "the caller's principal may not call this operation (docs/security.md)",
}

_OPERATION = re.compile(r"^[a-z][a-z0-9-]{0,63}$")


def encode_call(operation: str, params: dict[str, Json] | None = None) -> list[bytes]:
    if not _OPERATION.match(operation):
        raise ValueError(f"operation names are lower-case words joined by '-', got {operation!r}")
    return [operation.encode(), json.dumps(params or {}, separators=(",", ":")).encode()]


class BadRequest(RemoteProtocolError):
    """The call frames do not follow the convention (answered as ``bad-request``): the caller
    sent something the service-call protocol does not allow."""


def decode_call(body: list[bytes]) -> tuple[str, dict[str, Json]]:
    """Operation name and params; raises :class:`BadRequest` saying what is wrong."""
    if len(body) not in (1, 2):
        raise BadRequest(f"expected 2 frames (operation, JSON params), got {len(body)}")
    try:
        operation = body[0].decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest("the operation name is not ASCII") from None
    if not _OPERATION.match(operation):
        raise BadRequest(f"invalid operation name {operation[:64]!r}")
    if len(body) == 1 or not body[1].strip():
        return operation, {}
    try:
        params = json.loads(body[1])
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, too many int digits
        raise BadRequest(f"params are not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("params are nested too deeply") from None
    if not isinstance(params, dict):
        raise BadRequest(f"params must be a JSON object, got {type(params).__name__}")
    return operation, params


def encode_ok(result: Json) -> list[bytes]:
    return [json.dumps({"ok": True, "result": result}, separators=(",", ":")).encode()]


def encode_error(code: str, message: str) -> list[bytes]:
    payload = {"ok": False, "error": {"code": code, "message": message}}
    return [json.dumps(payload, separators=(",", ":")).encode()]


def decode_reply(body: list[bytes], service: str = "") -> Json:
    """The result of a reply; raises :class:`ServiceError` for ``ok: false``."""
    if len(body) != 1:
        raise RemoteProtocolError(f"a service reply is one JSON frame, got {len(body)} frame(s)")
    try:
        reply = json.loads(body[0])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RemoteProtocolError(f"reply from {service!r} is not JSON: {exc}") from None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise RemoteProtocolError(f"reply from {service!r} lacks the boolean 'ok' field")
    if reply["ok"]:
        return reply.get("result")
    error = reply.get("error")
    if not isinstance(error, dict):
        raise RemoteProtocolError(f"error reply from {service!r} lacks the 'error' object")
    raise ServiceError(str(error.get("code", "unknown")), str(error.get("message", "")), service)
