"""The only module that talks to pymodbus's client (pinned: ``pymodbus==3.16.1``).

pymodbus moved its API between 3.x minor releases (``slave=`` became ``device_id=``, timeouts
and reconnects changed, so did the handling of absent unit ids), so everything it does for us
is here, behind four calls: ``connect``, ``close``, ``read`` and ``write``. Upgrading pymodbus
means reading this file against its changelog and running the integration tests.

What pymodbus does and does not do for us:

- it frames requests (MBAP, or RTU with its CRC) and decodes answers;
- it does **not** retry (``retries=0``) or reconnect (``reconnect_delay=0``): the line owner
  (``_line``) does both, so that a silent unit costs one timeout and trips its own breaker;
- it would close a TCP connection after ``retries + 3`` unanswered requests, which on a
  gateway would punish every unit for one dead one; that is switched off;
- an answer it cannot decode makes it raise inside asyncio's ``data_received``, which closes
  the connection (and, on TCP, leaves the waiting request to time out). A guard around its
  receive callback turns that into an immediate :class:`BadAnswer` for the waiting request
  and keeps the connection, whose MBAP framing is still in step;
- it logs every timeout and failed connect at ERROR/WARNING, and every frame at DEBUG. The line
  owner logs those as transitions (a unit quarantined, the connection lost), so pymodbus's
  repetitions of them are dropped (``_Repetitions``) and its logger kept at WARNING.

Errors leave this module as: :class:`~plantd.errors.DeviceUnavailable` (no connection),
:class:`NoAnswer` (nothing intelligible came back in time), :class:`Refused` (an exception
response) or :class:`BadAnswer` (an answer that does not fit the question).
"""

from __future__ import annotations

import logging
import termios
from collections.abc import Sequence
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from plantd.errors import DeviceUnavailable, PlantdError
from plantd_drivers.modbus._config import ModbusConnection

__all__ = ["BadAnswer", "NoAnswer", "Refused", "Transport"]

_NEVER = 2**31  # unanswered requests before pymodbus would drop the connection itself
_PARITY = {"none": "N", "even": "E", "odd": "O"}


# NoAnswer, Refused and BadAnswer are signals between the transport and the line owner (which
# turns them into DeviceUnavailable or DeviceFault at the driver's edge); they are PlantdErrors
# but not DeviceErrors, so that no handler of a driver's errors catches them by accident.
class NoAnswer(PlantdError):
    """The unit did not answer within the timeout (or answered only noise)."""


class Refused(PlantdError):
    """The unit answered with a Modbus exception code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class BadAnswer(PlantdError):
    """The unit answered something that does not fit the request."""


class Transport:
    """One pymodbus client for one connection; each method is one attempt, no retries."""

    def __init__(self, connection: ModbusConnection) -> None:
        self.connection = connection
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None

    def describe(self) -> str:
        c = self.connection
        if c.transport == "rtu":
            parity = _PARITY[c.parity]
            return f"rtu {c.device} {c.baudrate} 8{parity}{c.stopbits}"
        return f"{c.transport} {c.host}:{c.port}"

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def connect(self) -> None:
        self.close()
        client = self._new_client()
        self._client = client
        failure = _record_connect_failure(client)
        try:
            ok = await client.connect()
        except (OSError, ValueError, termios.error, ModbusException) as exc:
            # pyserial: SerialException (an OSError) for a missing port, ValueError for settings
            # it does not know, termios.error for settings the port refuses
            ok, reason = False, f"{type(exc).__name__}: {exc}"
        else:
            reason = self._connect_failure(failure)
        if not ok:
            self.close()
            raise DeviceUnavailable(f"{self.describe()}: {reason}")
        client.set_max_no_responses(_NEVER)
        _guard_decoding(client)

    def _connect_failure(self, failure: list[BaseException]) -> str:
        """Why pymodbus's connect() returned False, from the error it swallowed."""
        exc = failure[0] if failure else None
        if self.connection.transport == "rtu":
            return f"cannot open: {exc}" if exc is not None else "cannot open"
        if isinstance(exc, ConnectionRefusedError):
            return "connection refused (nothing listens on that port, or a firewall rejects it)"
        if exc is None or isinstance(exc, TimeoutError):
            return f"no answer to connect within {self.connection.timeout:g} s"
        return f"cannot connect: {exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def read(self, unit: int, function: int, address: int, count: int) -> Sequence[Any]:
        """Registers (FC 3/4) or bits (FC 1/2), exactly ``count`` of them or more for bits."""
        client = self._ready()
        calls = {
            1: client.read_coils,
            2: client.read_discrete_inputs,
            3: client.read_holding_registers,
            4: client.read_input_registers,
        }
        response = await self._call(calls[function](address, count=count, device_id=unit))
        values: Sequence[Any] = response.bits if function <= 2 else response.registers
        if len(values) < count or (function > 2 and len(values) != count):
            what = "bits" if function <= 2 else "registers"
            raise BadAnswer(f"asked for {count} {what} from {address}, got {len(values)}")
        return values

    async def write(self, unit: int, function: int, address: int, values: Sequence[int]) -> None:
        """FC 5/15 (``values`` are 0/1) or FC 6/16 (``values`` are registers)."""
        client = self._ready()
        if function == 5:
            call = client.write_coil(address, bool(values[0]), device_id=unit)
        elif function == 15:
            call = client.write_coils(address, [bool(v) for v in values], device_id=unit)
        elif function == 6:
            call = client.write_register(address, values[0], device_id=unit)
        else:
            call = client.write_registers(address, list(values), device_id=unit)
        await self._call(call)

    def _ready(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        if self._client is None or not self._client.connected:
            raise DeviceUnavailable(f"{self.describe()}: not connected")
        return self._client

    async def _call(self, call: Any) -> Any:
        try:
            response = await call
        except _Undecodable as exc:
            raise BadAnswer(f"an answer that cannot be decoded: {exc}") from None
        except ConnectionException as exc:
            raise DeviceUnavailable(f"{self.describe()}: connection lost ({exc})") from None
        except ModbusIOException as exc:
            if not self.connected:
                raise DeviceUnavailable(f"{self.describe()}: connection lost") from None
            if "No response" in str(exc):
                raise NoAnswer("no answer") from None
            raise BadAnswer(str(exc)) from None
        except ModbusException as exc:
            raise BadAnswer(str(exc)) from None
        except OSError as exc:
            raise DeviceUnavailable(f"{self.describe()}: {exc}") from None
        if response is None:
            raise NoAnswer("no answer")
        if response.isError():
            raise Refused(int(response.exception_code))
        return response

    def _new_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        c = self.connection
        common: dict[str, Any] = {"timeout": c.timeout, "retries": 0, "reconnect_delay": 0}
        if c.transport == "rtu":
            assert c.device is not None
            return AsyncModbusSerialClient(
                c.device,
                framer=FramerType.RTU,
                baudrate=c.baudrate,
                bytesize=8,
                parity=_PARITY[c.parity],
                stopbits=c.stopbits,
                **common,
            )
        assert c.host is not None
        framer = FramerType.SOCKET if c.transport == "tcp" else FramerType.RTU
        return AsyncModbusTcpClient(c.host, port=c.port, framer=framer, **common)


class _Repetitions(logging.Filter):
    """Drops pymodbus's per-request failure messages (see the module docstring): the line owner
    logs each quarantine once, when it starts and when it ends."""

    PREFIXES = ("No response received", "Failed to connect", "ERROR: request ask for")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PREFIXES)


# pymodbus logs every frame it sends and receives at DEBUG: far too much for a module's journal
# even when plantd itself logs at debug. Its warnings and errors still come through.
logging.getLogger("pymodbus").setLevel(logging.WARNING)
_PYMODBUS_LOG = logging.getLogger("pymodbus.logging")
if not any(isinstance(f, _Repetitions) for f in _PYMODBUS_LOG.filters):
    _PYMODBUS_LOG.addFilter(_Repetitions())


def _record_connect_failure(
    client: AsyncModbusTcpClient | AsyncModbusSerialClient,
) -> list[BaseException]:
    """pymodbus's connect() logs why it failed and returns False; keep the error instead, so
    a refused connection is not reported as a silent one. Returns the list it lands in."""
    failure: list[BaseException] = []
    manager = client.ctx
    create = manager.call_create

    async def recorded() -> Any:
        try:
            return await create()
        except Exception as exc:
            failure.append(exc)
            raise

    manager.call_create = recorded
    return failure


class _Undecodable(PlantdError):
    """pymodbus raised decoding an answer (carried to the waiting request as ``BadAnswer``)."""


def _guard_decoding(client: AsyncModbusTcpClient | AsyncModbusSerialClient) -> None:
    """Fail the waiting request, not the connection, when pymodbus cannot decode an answer."""
    manager = client.ctx
    receive = manager.callback_data

    def guarded(data: bytes, addr: tuple[Any, ...] | None = None) -> int:
        try:
            used: int = receive(data, addr)
        except ModbusException as exc:
            future = manager.response_future
            if not future.done():
                future.set_exception(_Undecodable(str(exc)))
            return len(data)
        return used

    manager.callback_data = guarded  # type: ignore[method-assign]  # see the module docstring
