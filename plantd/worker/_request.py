"""What a worker hands its handler, and the error body a failed handler turns into."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence

from plantd.errors import RemoteProtocolError
from plantd.mdp._address import unwrap_address

__all__ = ["Request", "caller_of", "handler_failure_body", "validate_reply"]

log = logging.getLogger(__name__)


class Request:
    """One request in a handler's hands: ``body`` frames, and a way to stream PARTIAL replies.

    ``principal`` is who asked, as the broker authenticated it (None without CURVE): the
    broker already checked that it may call the service's operation; a service may apply
    finer rules of its own (docs/security.md).
    """

    __slots__ = ("_emit", "body", "client", "principal")

    def __init__(
        self,
        client: bytes,
        body: list[bytes],
        emit: Callable[[list[bytes]], None],
        principal: str | None = None,
    ) -> None:
        self.client = client
        self.body = body
        self.principal = principal
        self._emit = emit

    def send_partial(self, *frames: bytes) -> None:
        """Queue a PARTIAL reply; it goes out before the FINAL, in order."""
        self._emit(validate_reply(frames))


def caller_of(address: bytes, secured: bool) -> str | None:
    """The principal the broker packed into a client address (only under CURVE)."""
    if not secured:
        return None
    try:
        return unwrap_address(address)[1]
    except RemoteProtocolError as exc:
        log.warning("a request without a principal in its client address: %s", exc)
        return None


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
