"""What the store accepts: scope names, keys, values, request ids, batch sizes.

Every check runs before a write reaches the writer thread, and raises :class:`StateError` with a
message that names the offending thing and the rule. Nothing a client sends gets past these
checks unvalidated: names become bus topics (so they are ASCII), values are stored as compact JSON
text (so NaN and infinities, which are not JSON, are refused), and sizes are bounded so that a
value always fits in a broker message.

Rules:

- scope: dotted words (``org.plantd.module.pump1``), each word letters, digits, ``_`` and ``-``;
  at most :data:`MAX_SCOPE_CHARS` characters;
- key: printable ASCII without spaces (``setpoint``, ``alarms/high``, ``a.b``), at most
  ``max_key_bytes``;
- value: any JSON value, at most ``max_value_bytes`` as compact UTF-8 JSON;
- request id: 1-128 printable ASCII characters without spaces.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from plantd.config import PlantdConfig
from plantd.state._errors import StateError

__all__ = ["MAX_SCOPE_CHARS", "Limits", "encode_value"]

MAX_SCOPE_CHARS: Final = 200
_SCOPE = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*", re.ASCII)
_PRINTABLE = re.compile(r"[\x21-\x7e]+", re.ASCII)
_MAX_REQUEST_ID: Final = 128


def _shown(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def encode_value(value: Any) -> str:
    """The compact JSON text stored for ``value``; ``state.invalid-value`` if it is not JSON."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (ValueError, TypeError, RecursionError) as exc:
        raise StateError("state.invalid-value", f"the value is not JSON: {exc}") from None


@dataclass(frozen=True, slots=True)
class Limits:
    """The configured bounds (``state:`` in plantd.yaml) and the checks that apply them."""

    max_key_bytes: int = 256
    max_value_bytes: int = 65_536
    max_batch_ops: int = 1000
    value_limit_source: str = "state.max_value_bytes"  # what to name in a too-large error

    @classmethod
    def from_config(cls, config: PlantdConfig) -> Limits:
        """``state.*`` limits; values are capped at half of ``broker.max_message_bytes``."""
        state, cap = config.state, config.broker.max_message_bytes // 2
        if state.max_value_bytes <= cap:
            return cls(state.max_key_bytes, state.max_value_bytes, state.max_batch_ops)
        source = "half of broker.max_message_bytes"
        return cls(state.max_key_bytes, cap, state.max_batch_ops, source)

    def scope(self, scope: str) -> str:
        if not _SCOPE.fullmatch(scope):
            raise StateError(
                "state.invalid-scope",
                f"scope {_shown(scope)} is not dotted words of letters, digits, '_' and '-' "
                "(like 'org.plantd.module.pump1')",
            )
        if len(scope) > MAX_SCOPE_CHARS:
            raise StateError(
                "state.invalid-scope",
                f"scope {_shown(scope)} has {len(scope)} characters, more than {MAX_SCOPE_CHARS}",
            )
        return scope

    def key(self, key: str) -> str:
        if not _PRINTABLE.fullmatch(key):
            what = "empty" if not key else "not printable ASCII without spaces"
            raise StateError("state.invalid-key", f"key {_shown(key)} is {what}")
        if len(key) > self.max_key_bytes:
            raise StateError(
                "state.too-large",
                f"key {_shown(key)} has {len(key)} bytes, more than state.max_key_bytes "
                f"({self.max_key_bytes})",
            )
        return key

    def value(self, value: Any, where: str = "value") -> str:
        """The value's stored JSON text, checked against ``max_value_bytes``."""
        text = encode_value(value)
        try:
            size = len(text) if text.isascii() else len(text.encode())
        except UnicodeEncodeError:
            raise StateError(
                "state.invalid-value", f"{where} holds a lone surrogate (\\ud800-\\udfff)"
            ) from None
        if size > self.max_value_bytes:
            raise StateError(
                "state.too-large",
                f"{where} is {size} bytes as JSON, more than {self.value_limit_source} "
                f"({self.max_value_bytes})",
            )
        return text

    def batch_size(self, count: int) -> None:
        if count > self.max_batch_ops:
            raise StateError(
                "state.too-large",
                f"the batch has {count} operations, more than state.max_batch_ops "
                f"({self.max_batch_ops})",
            )

    @staticmethod
    def request_id(request_id: str) -> str:
        if not _PRINTABLE.fullmatch(request_id) or len(request_id) > _MAX_REQUEST_ID:
            raise StateError(
                "state.invalid-request-id",
                f"request_id {_shown(request_id)} is not 1-{_MAX_REQUEST_ID} printable ASCII "
                "characters without spaces",
            )
        return request_id
