"""The state service's refusals: one exception, a stable code per cause.

A :class:`StateError` is an :class:`~plantd.service.OperationError`, so an operation that raises
one answers ``{"ok": false, "error": {"code": …, "message": …}}`` with no translation; used
in-process (the :class:`~plantd.state.Store` directly) it is an ordinary exception with a code.
Messages name what is wrong: the scope, the key, the size, the revision that was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from plantd.errors import PlantdError
from plantd.service import OperationError

__all__ = ["DAMAGED_EXIT_STATUS", "ERROR_CODES", "StateDamaged", "StateError"]

# plantd-state's exit status when it will not serve its database (EX_DATAERR of sysexits.h);
# plantd-state.service lists it in RestartPreventExitStatus=, as restarting cannot help.
DAMAGED_EXIT_STATUS: Final = 65

ERROR_CODES: Final[dict[str, str]] = {
    "state.invalid-scope": "the scope name is not dotted words of letters, digits, '_' and '-'",
    "state.invalid-key": "the key is empty or not printable ASCII without spaces",
    "state.invalid-value": "the value is not JSON (NaN and infinities are not JSON)",
    "state.invalid-request-id": "request_id is not 1-128 printable ASCII characters",
    "state.too-large": "a key, a value or a batch exceeds its configured limit",
    "state.unknown-scope": "no scope of that name exists",
    "state.unknown-key": "the scope has no key of that name",
    "state.conflict": "compare-and-set: the key's revision is not the expected one",
    "state.request-id-reused": "the request id was already used for a different request",
    "state.io-error": "the write could not be made durable (disk full, I/O error); nothing "
    "was applied",
    "state.unavailable": "the store is closed (the service is stopping)",
    "state.damaged": "SQLite found the database damaged; the service stops serving it",
}


class StateError(OperationError):
    """The store refused a request; ``code`` is one of :data:`ERROR_CODES`."""

    def __init__(self, code: str, message: str) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown state error code {code!r}")
        super().__init__(code, message)


class StateDamaged(PlantdError):
    """The database is damaged, or is not the one whose writes the service acknowledged
    (missing, emptied, replaced, or missing committed changes). Serving it would lose
    acknowledged writes without a word, so the service refuses and exits
    :data:`DAMAGED_EXIT_STATUS`; a person decides what to do (docs/state.md)."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(
            f'{path}: {problem}. Not serving it: see "Damaged or missing database" in '
            "docs/state.md (to go on with what is left: plantd-state --accept-loss)"
        )
