"""asyncua's exceptions → plantd's, at the driver's edge.

Who is at fault decides the class:

- the connection or the session is gone or not answering (socket closed, timeouts, the
  session or secure channel invalid, the server shutting down): :class:`DeviceUnavailable`,
  and the runtime reconnects with a new session;
- the server answered and refused (a bad node, access denied, a type mismatch, an
  out-of-range value): :class:`DeviceFault`, and the session stays.
"""

from __future__ import annotations

import asyncio

from asyncua.ua.status_codes import get_name_and_doc

from plantd.errors import DeviceError, DeviceFault, DeviceUnavailable
from plantd_drivers.opcua._ua import StatusCodes, UaStatusCodeError

__all__ = ["code_name", "to_device_error"]

_SC = StatusCodes
_TRANSPORT = frozenset(
    {
        _SC.BadTimeout,
        _SC.BadRequestTimeout,
        _SC.BadCommunicationError,
        _SC.BadConnectionClosed,
        _SC.BadConnectionRejected,
        _SC.BadDisconnect,
        _SC.BadSecureChannelClosed,
        _SC.BadSecureChannelIdInvalid,
        _SC.BadSecureChannelTokenUnknown,
        _SC.BadSessionIdInvalid,
        _SC.BadSessionClosed,
        _SC.BadSessionNotActivated,
        _SC.BadServerHalted,
        _SC.BadServerNotConnected,
        _SC.BadShutdown,
        _SC.BadNotConnected,
        _SC.BadNoCommunication,
        _SC.BadTcpInternalError,
        _SC.BadTooManySessions,
        _SC.BadResourceUnavailable,
    }
)


def code_name(code: int) -> str:
    return get_name_and_doc(code)[0]


def to_device_error(exc: BaseException, what: str) -> DeviceError:
    """The plantd error for ``exc``, raised while doing ``what`` (e.g. "reading group line")."""
    if isinstance(exc, DeviceError):
        return exc
    if isinstance(exc, UaStatusCodeError):
        code = int(exc.code)
        text = f"{what}: {code_name(code)}"
        return DeviceUnavailable(text) if code in _TRANSPORT else DeviceFault(text)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return DeviceUnavailable(f"{what}: the server did not answer in time")
    if isinstance(exc, ConnectionError | OSError):
        return DeviceUnavailable(f"{what}: {exc or type(exc).__name__}")
    return DeviceUnavailable(f"{what}: {type(exc).__name__}: {exc}")
