"""Every exception plantd raises, in one tree.

Errors say who is at fault: the caller (bad arguments, used after close), the peer (it sent
something that is not the protocol), the service (it answered with an error), or the device
(unreachable for now, or refusing).

    PlantdError
    ├── ConfigError               a config file or override is wrong; names file, line, key path
    ├── UsageError                the caller used an API wrongly (e.g. a closed client)
    ├── SecurityError             a key is missing, unreadable or invalid; names the file
    ├── ProtocolError             bytes on the wire that are not the protocol
    │   ├── LocalProtocolError    we were asked to send something the protocol forbids
    │   └── RemoteProtocolError   a peer sent something the protocol forbids
    ├── RequestError              a request did not end with a good reply
    │   ├── RequestTimeout        no reply after every retry
    │   ├── NoBroker              nothing answers at the broker endpoint (asked through MMI)
    │   ├── NoWorker              the broker is there, but no worker serves the service
    │   └── ServiceError          the service (or the broker on its behalf) answered an error
    └── DeviceError               raised by drivers at their edge
        ├── DeviceUnavailable     transient: not reachable now, retry with backoff
        └── DeviceFault           the device answered and refused

The classes above are the ones callers catch. Others are defined beside the code that raises
them, each under one of these or the root: ``plantd.bus.BusDecodeError``,
``plantd.service.BadRequest`` and the Sparkplug decoder's ``ProtobufError`` are
RemoteProtocolErrors (the two decoders' errors are also still ValueErrors);
``plantd.service.OperationError`` (and the state service's ``StateError``), ``StateDamaged``,
the sinks' ``UpstreamUnavailable`` and ``SinkAlreadyRunning``, and the Modbus driver's internal
signals (``NoAnswer``, ``Refused``, ``BadAnswer``, ``UnitDown``) sit under the root.
``tests/unit/test_error_tree.py`` checks that every exception class defined in ``plantd`` and
``plantd_drivers`` is in the tree.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DeviceError",
    "DeviceFault",
    "DeviceUnavailable",
    "LocalProtocolError",
    "NoBroker",
    "NoWorker",
    "PlantdError",
    "ProtocolError",
    "RemoteProtocolError",
    "RequestError",
    "RequestTimeout",
    "SecurityError",
    "ServiceError",
    "UsageError",
]


class PlantdError(Exception):
    """The root of every error plantd raises on purpose."""


class ConfigError(PlantdError):
    """Configuration that cannot be used.

    ``problems`` lists every problem found (validation does not stop at the first one); the
    message joins them, one per line, each naming file, line, key path and what was expected.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class UsageError(PlantdError):
    """The caller used an API in a way it does not allow (your fault, not the peer's)."""


class SecurityError(PlantdError):
    """A key this process needs is missing, unreadable or not a CURVE key (names the file and
    what to do), or security settings that cannot work together."""


class ProtocolError(PlantdError):
    """Frames that break the protocol."""


class LocalProtocolError(ProtocolError):
    """We were about to send something the protocol forbids."""


class RemoteProtocolError(ProtocolError):
    """A peer sent something the protocol forbids."""


class RequestError(PlantdError):
    """A request that did not end with a good reply."""


class RequestTimeout(RequestError):
    """No reply arrived within the timeout, after every retry."""

    def __init__(self, service: str, attempts: int, timeout: float) -> None:
        self.service = service
        self.attempts = attempts
        self.timeout = timeout
        super().__init__(
            f"no reply from service {service!r} after {attempts} attempt(s) "
            f"of {timeout:g} s each (is the broker running, and a worker for the service?)"
        )


class NoBroker(RequestError):
    """Nothing answered the broker's own management interface (RFC 8) at ``endpoint``: no
    broker runs there, or it is a different port. Retrying would only wait longer."""

    def __init__(self, endpoint: str, waited: float) -> None:
        self.endpoint = endpoint
        super().__init__(
            f"no broker at {endpoint} (nothing answered within {waited:g} s; "
            "is plantd-broker running, and is this its endpoint?)"
        )


class NoWorker(RequestError):
    """The broker answered that no worker is registered for ``service`` (``mmi.service`` said
    404): the service is not running, or the name is wrong. ``hint`` says what to start."""

    def __init__(self, service: str, hint: str) -> None:
        self.service = service
        self.hint = hint
        super().__init__(f"no worker serves {service} ({hint})")


class ServiceError(RequestError):
    """The service, or the broker on its behalf, answered ``{"ok": false, "error": …}``.

    ``code`` is a short stable identifier (``broker.no-worker``, ``state.unknown-scope``, …);
    codes that start with ``broker.`` come from the broker, not from a worker.
    """

    def __init__(self, code: str, message: str, service: str = "") -> None:
        self.code = code
        self.message = message
        self.service = service
        where = f" from {service!r}" if service else ""
        super().__init__(f"{code}{where}: {message}")


class DeviceError(PlantdError):
    """A device could not do what was asked."""


class DeviceUnavailable(DeviceError):
    """Transient: the device cannot be reached now (retry with backoff)."""


class DeviceFault(DeviceError):
    """The device answered and refused (an exception code, a rejected write)."""
