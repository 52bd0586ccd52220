"""What a worker hands its handler, and the error body a failed handler turns into."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

__all__ = ["Request", "handler_failure_body", "validate_reply"]


class Request:
    """One request in a handler's hands: ``body`` frames, and a way to stream PARTIAL replies."""

    __slots__ = ("_emit", "body", "client")

    def __init__(
        self, client: bytes, body: list[bytes], emit: Callable[[list[bytes]], None]
    ) -> None:
        self.client = client
        self.body = body
        self._emit = emit

    def send_partial(self, *frames: bytes) -> None:
        """Queue a PARTIAL reply; it goes out before the FINAL, in order."""
        self._emit(validate_reply(frames))


def validate_reply(frames: Sequence[bytes]) -> list[bytes]:
    body = list(frames)
    if not body or not all(isinstance(f, bytes) for f in body):
        raise TypeError("a reply is one or more bytes frames")
    return body


def handler_failure_body(exc: BaseException) -> list[bytes]:
    """The FINAL body sent when a handler raises: the service-call error format."""
    payload = {
        "ok": False,
        "error": {"code": "internal", "message": f"{type(exc).__name__}: {exc}"},
    }
    return [json.dumps(payload, separators=(",", ":")).encode()]
