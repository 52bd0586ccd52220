"""The line owner: one connection (a serial port, a gateway, a TCP device), one request at a time.

Theory of operation. Every group of a module is read by its own task, and several groups may
address different unit ids behind the same connection. A Modbus line carries one request at a
time, so every request goes through :meth:`Line.request`, which

1. asks the unit's :class:`Breaker` first: a quarantined unit is answered for at once with
   :class:`UnitDown`, without waiting for the line (this is what keeps one dead slave from
   stalling an RS-485 line);
2. takes the line's lock (FIFO, so groups take turns request by request). A probe of a
   quarantined unit goes last: it waits until no request of an answering unit is waiting or
   out, so a silent unit's timeout falls after the healthy units' requests of the cycle instead
   of in front of them (at 1 s polling with a 1 s timeout, a probe first cost every other unit
   of the connection a whole cycle). Only one probe is out at a time per unit (the breaker);
3. connects if the connection was lost, at most once per backoff delay (``backoff_initial``
   doubling to ``backoff_max``; the first try after a loss is immediate), so polling resumes
   by itself after a device reboots or a cable is plugged back;
4. keeps ``inter_frame_delay`` of silence after the previous request, and tries the request
   up to ``1 + retries`` times (once for a probe of a quarantined unit);
5. tells the breaker how it went. A unit that does not answer raises :class:`UnitDown`, and
   its breaker opens. When every unit of the connection is down at once, the connection itself
   is the likely culprit (a wedged gateway, a server that accepts but never answers): the
   connection is closed and :class:`~plantd.errors.DeviceUnavailable` raised, so that the
   next request reconnects; the breakers stay open, so the units are probed again on their
   own schedule rather than hammered. They stay open across reconnects too (``open`` does not
   reset them): a unit silent before the connection dropped is probably silent after it, and
   asking it with full retries again would cost every other unit its timeouts again. While
   every unit is quarantined and the connection is up, a request is answered with
   :class:`UnitDown`; only a closed connection makes it ``DeviceUnavailable``.

Why a unit counts as down is kept per unit and named in every error: no answer within the
timeout, or a gateway's exception 10 (no path to the unit) or 11 (the unit behind it did not
answer), with the code.

Exception answers (:class:`Refused`) and answers that do not fit (:class:`BadAnswer`) prove the
unit is alive; they go back to the caller, which decides what they mean for its points.

Transitions are logged once: a unit quarantined and back, the connection lost and back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from plantd.errors import DeviceUnavailable, PlantdError
from plantd_drivers.modbus._breaker import Breaker, BreakerState
from plantd_drivers.modbus._config import ModbusConnection
from plantd_drivers.modbus._transport import BadAnswer, NoAnswer, Refused, Transport
from plantd_drivers.modbus._types import GATEWAY_NO_ANSWER, describe_exception

__all__ = ["Line", "UnitDown"]

log = logging.getLogger("plantd_drivers.modbus")
T = TypeVar("T")

# Polls due at the same moment wake in the same few turns of the event loop; a probe lets
# that many turns pass before it looks whether the line is idle.
_SAME_TICK_YIELDS = 3
# A probe waits for an idle line at most 10 timeouts, never past this (the runtime treats a
# read of 30 s as a hung driver).
_PROBE_PATIENCE_MAX = 20.0


class UnitDown(PlantdError):
    """One unit does not answer (or is quarantined); the line and the other units are fine.
    Not a DeviceError: the driver decides what it means at its edge (a bad reading, a fault)."""


class Line:
    def __init__(
        self,
        connection: ModbusConnection,
        units: Iterable[int],
        transport: Transport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connection = connection
        self.transport = transport or Transport(connection)
        self.clock = clock
        self.breakers = {
            unit: Breaker(connection.backoff_initial, connection.backoff_max) for unit in units
        }
        self.counters = dict.fromkeys(
            ("requests", "no_answer", "refused", "bad_answers", "connects", "connection_lost"), 0
        )
        self.last_error: str | None = None
        # Called with the seconds of every attempt put on the line, answered or not (the
        # module's request-time histogram; ModbusDriver.observe_requests sets it).
        self.observe: Callable[[float], None] | None = None
        self._lock = asyncio.Lock()
        self._open = False
        self._gap = connection.frame_delay()
        self._quiet_until = 0.0
        self._connect_at = 0.0
        self._connect_delay = connection.backoff_initial
        self._was_connected = False
        self._why_down: dict[int, str] = {}
        self._busy = 0  # requests of answering units waiting for the line or on it
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def where(self) -> str:
        return self.transport.describe()

    async def open(self) -> None:
        """Connect now; raises DeviceUnavailable if that fails."""
        self._open = True
        self._connect_at = 0.0
        self._connect_delay = self.connection.backoff_initial
        async with self._lock:
            await self._connect()

    async def close(self) -> None:
        self._open = False
        self.transport.close()

    async def request(self, unit: int, operation: Callable[[Transport], Awaitable[T]]) -> T:
        """Run ``operation`` (one exchange, or a read-modify-write) for ``unit``, with retries."""
        if not self._open:
            raise DeviceUnavailable(f"{self.where}: the driver is closed")
        breaker = self.breakers.setdefault(
            unit, Breaker(self.connection.backoff_initial, self.connection.backoff_max)
        )
        if not breaker.allow(self.clock()):
            everyone_down = all(b.down for b in self.breakers.values())
            if everyone_down and not self.transport.connected:
                raise DeviceUnavailable(self.last_error or f"{self.where}: no unit answers")
            raise UnitDown(self._down_text(unit, breaker))
        if breaker.state is BreakerState.PROBING:
            return await self._probe(unit, breaker, operation)
        self._busy += 1
        self._idle.clear()
        try:
            async with self._lock:
                return await self._exchange(unit, breaker, operation)
        finally:
            self._busy -= 1
            if not self._busy:
                self._idle.set()

    async def _probe(
        self, unit: int, breaker: Breaker, operation: Callable[[Transport], Awaitable[T]]
    ) -> T:
        """Ask a quarantined unit once, when the answering units are served (see the top)."""
        try:
            async with asyncio.timeout(self._probe_patience()):
                await self._wait_idle()
        except TimeoutError:
            breaker.abandoned(self.clock())  # the line never went idle: probe at the next poll
            raise UnitDown(self._down_text(unit, breaker)) from None
        except BaseException:  # cancelled while waiting: the next poll probes instead
            breaker.abandoned(self.clock())
            raise
        # _wait_idle returned holding the lock
        try:
            return await self._exchange(unit, breaker, operation)
        finally:
            self._lock.release()

    async def _wait_idle(self) -> None:
        """Take the lock at a moment no answering unit's request waits for it or holds it."""
        for _ in range(_SAME_TICK_YIELDS):  # polls due at the same moment as this one go first
            await asyncio.sleep(0)
        while True:
            await self._idle.wait()
            await self._lock.acquire()
            if not self._busy:
                return
            self._lock.release()  # someone came while we queued: behind them again

    def _probe_patience(self) -> float:
        """How long a probe waits for an idle line before it gives up until the next poll."""
        return min(10 * self.connection.timeout, _PROBE_PATIENCE_MAX)

    async def _exchange(
        self, unit: int, breaker: Breaker, operation: Callable[[Transport], Awaitable[T]]
    ) -> T:
        """Connect if needed and run ``operation``; the caller holds the lock."""
        settled = False
        try:
            if not self.transport.connected:
                if self._was_connected:  # dropped by the other end while idle
                    self._lost("the connection was closed by the other end")
                await self._connect()
            result = await self._attempts(unit, breaker, operation)
            settled = True
            return result
        except (Refused, BadAnswer):
            settled = True
            raise
        finally:
            if not settled:
                breaker.abandoned(self.clock())

    async def _attempts(
        self, unit: int, breaker: Breaker, operation: Callable[[Transport], Awaitable[T]]
    ) -> T:
        attempts = 1 + breaker.retries(self.connection.retries)
        why = f"does not answer (timeout {self.connection.timeout:g} s)"
        for _ in range(attempts):
            if self._gap:
                await self._keep_quiet()
            self.counters["requests"] += 1
            started = self.clock()
            try:
                result = await operation(self.transport)
            except NoAnswer:
                self.counters["no_answer"] += 1
                continue
            except Refused as exc:
                if exc.code in GATEWAY_NO_ANSWER:
                    self.counters["no_answer"] += 1
                    why = f"is not reached by the gateway: {describe_exception(exc.code)}"
                    break  # the gateway already waited for the unit: do not ask again
                self.counters["refused"] += 1
                self._answered(unit, breaker)
                raise
            except BadAnswer:
                self.counters["bad_answers"] += 1
                self._answered(unit, breaker)
                raise
            except DeviceUnavailable as exc:
                self._lost(str(exc))
                raise
            finally:
                ended = self.clock()
                self._quiet_until = ended + self._gap
                if self.observe is not None:
                    self.observe(ended - started)
            self._answered(unit, breaker)
            return result
        raise self._no_answer(unit, breaker, why)

    def _answered(self, unit: int, breaker: Breaker) -> None:
        self._why_down.pop(unit, None)
        if breaker.succeeded():
            log.info("modbus %s: unit %d answers again", self.where, unit)

    def _no_answer(self, unit: int, breaker: Breaker, why: str) -> Exception:
        now = self.clock()
        changed = self._why_down.get(unit) != why
        self._why_down[unit] = why
        if breaker.failed(now) or changed:
            log.warning(
                "modbus %s: unit %d %s; quarantined, next try in %.3g s",
                self.where,
                unit,
                why,
                breaker.delay,
            )
        if all(b.down for b in self.breakers.values()):
            reason = f"{self.where}: no unit answers (last: unit {unit} {why})"
            self._lost(reason)
            return DeviceUnavailable(reason)
        return UnitDown(self._down_text(unit, breaker))

    def _down_text(self, unit: int, breaker: Breaker) -> str:
        why = self._why_down.get(unit, "does not answer")
        wait = breaker.next_probe_in(self.clock())
        if breaker.state is BreakerState.PROBING or wait is None:
            return f"unit {unit} {why} (being probed)"
        return f"unit {unit} {why} (quarantined, next try in {wait:.3g} s)"

    async def _keep_quiet(self) -> None:
        wait = self._quiet_until - self.clock()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _connect(self) -> None:
        now = self.clock()
        if now < self._connect_at:
            raise DeviceUnavailable(
                f"{self.last_error or self.where}; next connection attempt in "
                f"{self._connect_at - now:.3g} s"
            )
        try:
            await self.transport.connect()
        except DeviceUnavailable as exc:
            self._connect_at = self.clock() + self._connect_delay
            self._connect_delay = min(2 * self._connect_delay, self.connection.backoff_max)
            if self._was_connected or self.last_error is None:
                log.warning("modbus %s: cannot connect: %s", self.where, exc)
            self._was_connected = False
            self.last_error = str(exc)
            raise
        self.counters["connects"] += 1
        self._connect_delay = self.connection.backoff_initial
        if not self._was_connected and self.last_error is not None:
            log.info("modbus %s: connected", self.where)
        self._was_connected = True
        self.last_error = None

    def _lost(self, reason: str) -> None:
        """The connection is gone or useless: close it; the next request reconnects at once."""
        self.transport.close()
        self.counters["connection_lost"] += 1
        if self._was_connected:
            log.warning("modbus %s: connection lost: %s", self.where, reason)
        self._was_connected = False
        self.last_error = reason
        self._connect_at = 0.0

    def status(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "connection": self.where,
            "connected": self.transport.connected,
            "last_error": self.last_error,
            **self.counters,
            "units": {
                str(unit): {
                    "state": breaker.state.value,
                    "why": self._why_down.get(unit) if breaker.down else None,
                    "quarantines": breaker.trips,
                    "next_try_in": breaker.next_probe_in(now),
                }
                for unit, breaker in sorted(self.breakers.items())
            },
        }
