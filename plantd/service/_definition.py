"""Declaring a service: its name and its operations, each documented where it is written.

    echo = ServiceDefinition("org.plantd.module.Echo", "Answers what it is sent.")

    @echo.operation("echo", access="read")
    async def _(params: Params) -> Json:
        "Return the params as they came."
        return params

An operation is an ``async def (params) -> result``, or an async generator for a streaming
operation (each yielded item is a PARTIAL; the last one is sent as the FINAL). An operation
reports a failure the caller should see by raising :class:`OperationError` with a code. Every
service answers ``operations`` with the list of its operations and their documentation.

``access`` says what an operation does, as the security policy grades it (docs/security.md):
``read`` (changes nothing), ``operate`` (commands the plant: a write to a device),
``configure`` (changes state or configuration), ``admin`` (keys, users, the audit trail). The
broker enforces the policy's rules (``security.operations``); a test checks that they grade
every operation of every plantd service as the operation itself declares. While an operation
runs, :func:`current_caller` is the principal that called it.
"""

from __future__ import annotations

import contextvars
import inspect
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from plantd.config import Access
from plantd.errors import PlantdError
from plantd.service._codec import Json

__all__ = [
    "Operation",
    "OperationError",
    "Params",
    "ServiceDefinition",
    "current_caller",
    "optional_text",
    "optional_time",
    "param",
]

_caller: contextvars.ContextVar[str | None] = contextvars.ContextVar("caller", default=None)


def current_caller() -> str | None:
    """The principal whose request is being handled (None without CURVE, or outside one)."""
    return _caller.get()


Params = dict[str, Json]
OperationFunc = Callable[[Params], Awaitable[Json]] | Callable[[Params], AsyncIterator[Json]]


class OperationError(PlantdError):
    """An operation refuses the call; ``code`` is stable, ``message`` says why."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    doc: str
    func: OperationFunc
    streaming: bool
    access: Access


class ServiceDefinition:
    def __init__(self, name: str, doc: str = "") -> None:
        self.name = name
        self.doc = doc
        self.operations: dict[str, Operation] = {}

    def operation(self, name: str, *, access: Access) -> Callable[[OperationFunc], OperationFunc]:
        def register(func: OperationFunc) -> OperationFunc:
            if name in self.operations or name == "operations":
                raise ValueError(f"operation {name!r} is already defined on {self.name}")
            doc = inspect.cleandoc(func.__doc__ or "")
            streaming = inspect.isasyncgenfunction(func)
            self.operations[name] = Operation(name, doc, func, streaming, access)
            return func

        return register

    def describe(self) -> list[dict[str, Any]]:
        """What ``operations`` answers: every operation, its doc, whether it streams, and the
        access it needs."""
        listed = [
            {"name": op.name, "doc": op.doc, "streaming": op.streaming, "access": op.access}
            for op in self.operations.values()
        ]
        listed.append(
            {
                "name": "operations",
                "doc": "List this service's operations.",
                "streaming": False,
                "access": "read",
            }
        )
        return sorted(listed, key=lambda item: item["name"])


def param(params: Params, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    """``params[key]`` checked against ``kind``; raises ``bad-request`` naming the key."""
    if key not in params:
        if default is ...:
            raise OperationError("bad-request", f"params.{key} is required")
        return default
    value = params[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int in Python, never in JSON
    ok = False if isinstance(value, bool) and bool not in kinds else isinstance(value, kinds)
    if not ok:
        expected = " or ".join(k.__name__ for k in kinds)
        raise OperationError(
            "bad-request", f"params.{key}: expected {expected}, got {type(value).__name__}"
        )
    return value


def optional_time(params: Params, key: str) -> float | None:
    """``params[key]``, a finite number (a time in Unix seconds, say), or None when absent or
    null; raises ``bad-request`` naming the key otherwise."""
    value = param(params, key, (int, float, type(None)), None)
    if value is not None and not math.isfinite(value):
        raise OperationError("bad-request", f"params.{key}: expected a finite number")
    return None if value is None else float(value)


def optional_text(params: Params, key: str) -> str | None:
    """``params[key]``, a string, or None when absent or null (a filter not given)."""
    value: str | None = param(params, key, (str, type(None)), None)
    return value
