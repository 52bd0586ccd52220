"""The service-call convention: operation + JSON params in, ``{"ok": …}`` JSON out.

Define a service with :class:`ServiceDefinition`, serve it with :class:`ServiceWorker`, call it
with :func:`call_async` / :func:`call` over an MDP client. :mod:`plantd.service.echo` is the
built-in Echo service (``plant serve echo``, ``plant echo``), a small example of all three.
"""

from __future__ import annotations

from plantd.service._caller import call, call_async, stream, stream_async
from plantd.service._codec import (
    STANDARD_ERRORS,
    BadRequest,
    Json,
    decode_call,
    decode_reply,
    encode_call,
    encode_error,
    encode_ok,
)
from plantd.service._definition import (
    Operation,
    OperationError,
    Params,
    ServiceDefinition,
    current_caller,
    optional_text,
    optional_time,
    param,
)
from plantd.service._server import ServiceWorker, dispatch

__all__ = [
    "STANDARD_ERRORS",
    "BadRequest",
    "Json",
    "Operation",
    "OperationError",
    "Params",
    "ServiceDefinition",
    "ServiceWorker",
    "call",
    "call_async",
    "current_caller",
    "decode_call",
    "decode_reply",
    "dispatch",
    "encode_call",
    "encode_error",
    "encode_ok",
    "optional_text",
    "optional_time",
    "param",
    "stream",
    "stream_async",
]
