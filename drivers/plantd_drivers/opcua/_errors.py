"""asyncua's exceptions → plantd's, at the driver's edge.

Who is at fault decides the class:

- the connection or the session is gone or not answering (socket closed, timeouts, the
  session or secure channel invalid, the server shutting down): :class:`DeviceUnavailable`,
  and the runtime reconnects with a new session;
- the server answered and refused (a bad node, access denied, a type mismatch, an
  out-of-range value): :class:`DeviceFault`, and the session stays.

A server that refuses our certificate is neither: the session code turns that into
``ClientNotTrusted`` (see :func:`refuses_certificate` and :class:`ChannelWitness`).
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from asyncua import ua
from asyncua.ua.status_codes import get_name_and_doc
from asyncua.ua.ua_binary import struct_from_binary

from plantd.errors import DeviceError, DeviceFault, DeviceUnavailable
from plantd_drivers.opcua._ua import ObjectIds, StatusCodes, UaStatusCodeError

__all__ = [
    "ChannelWitness",
    "code_name",
    "refuses_certificate",
    "status_error",
    "to_device_error",
]

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


def status_error(code: int, what: str) -> DeviceError:
    """The plantd error for a bad status ``code`` the server answered while doing ``what``."""
    text = f"{what}: {code_name(code)}"
    return DeviceUnavailable(text) if code in _TRANSPORT else DeviceFault(text)


def to_device_error(exc: BaseException, what: str) -> DeviceError:
    """The plantd error for ``exc``, raised while doing ``what`` (e.g. "reading group line")."""
    if isinstance(exc, DeviceError):
        return exc
    if isinstance(exc, UaStatusCodeError):
        return status_error(int(exc.code), what)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return DeviceUnavailable(f"{what}: the server did not answer in time")
    if isinstance(exc, ConnectionError | OSError):
        return DeviceUnavailable(f"{what}: {exc or type(exc).__name__}")
    return DeviceUnavailable(f"{what}: {type(exc).__name__}: {exc}")


def refuses_certificate(code: int) -> bool:
    """The server's way of saying it does not trust our certificate (Part 4, 7.34, and
    BadSecurityChecksFailed, which Part 6 makes servers send instead of the real reason)."""
    return code == _SC.BadSecurityChecksFailed or code_name(code).startswith("BadCertificate")


class ChannelWitness(logging.Filter):
    """Keeps the status code of a secure channel the server refused, which asyncua loses.

    asyncua 2.1.0 (pinned) fails ``open_secure_channel`` with a bare ``AssertionError`` when
    the server answers OpenSecureChannel with an error: with a response whose ServiceResult is
    bad, it logs the code; with a ServiceFault (what many servers send), it logs the failed
    parse of that fault. This filter sits on that logger while one connect runs and reads the
    code from either record — from the fault itself, found in the traceback of the failed
    parse. Anything unexpected there leaves ``code`` None: the error then says less, no more.
    The module host connects several sessions in one process: a code seen meanwhile is taken
    as this connect's; at worst it is another refused channel's.
    """

    LOGGER = "asyncua.client.ua_client.UASocketProtocol"

    def __init__(self) -> None:
        super().__init__()
        self.code: int | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, UaStatusCodeError):
                self.code = int(arg.code)
        if record.exc_info and record.exc_info[2] is not None:
            self.code = _service_fault_code(record.exc_info[2]) or self.code
        return True  # a witness only: the record is logged as before

    @contextmanager
    def watching(self) -> Iterator[ChannelWitness]:
        logger = logging.getLogger(self.LOGGER)
        logger.addFilter(self)
        try:
            yield self
        finally:
            logger.removeFilter(self)


def _service_fault_code(tb: TracebackType) -> int | None:
    """The ServiceResult of a ServiceFault that a frame of ``tb`` was parsing (``msg``)."""
    for frame, _ in traceback.walk_tb(tb):
        message = frame.f_locals.get("msg")
        if not isinstance(message, ua.Message):
            continue
        try:
            fault = struct_from_binary(ua.ServiceFault, message.body())  # type: ignore[no-untyped-call]
        except Exception:  # not a ServiceFault after all
            return None
        if fault.TypeId != ua.FourByteNodeId(
            ua.Int32(ObjectIds.ServiceFault_Encoding_DefaultBinary)
        ):
            return None
        return int(fault.ResponseHeader.ServiceResult.value)
    return None
