"""Talking to systemd: sd_notify (READY, STATUS, WATCHDOG, STOPPING) without libsystemd.

The protocol is a datagram of ``KEY=VALUE`` lines sent to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). Outside systemd the variable
is unset and every call does nothing, so services call these unconditionally.

The watchdog: when the unit sets ``WatchdogSec=``, systemd passes ``WATCHDOG_USEC`` (and
``WATCHDOG_PID``). :class:`Watchdog` pings at half that period — but only when its ``ping``
is called, which services do from their main loop: a loop that hangs stops the pings, and
systemd restarts the service. Never ping from a helper thread or a timer that runs regardless.
(asyncio services ping from a task of their event loop: ``plantd.runtime``. This module does
not import asyncio, so the broker's poll loop does not pay for it.)
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

__all__ = ["Notifier", "Watchdog"]

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages; a no-op when not started by systemd with ``Type=notify``."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._socket: socket.socket | None = None
        if address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Notifier:
        return cls(environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` lines (keys upper-cased); False if not sent (no socket, error)."""
        if self._socket is None or self.address is None:
            return False
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items()).encode()
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            self._socket.sendto(message, target)
        except OSError as exc:
            log.debug("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> None:
        fields: dict[str, str | int] = {"ready": 1}
        if status:
            fields["status"] = status
        self.send(**fields)

    def status(self, text: str) -> None:
        self.send(status=text)

    def stopping(self) -> None:
        self.send(stopping=1, status="stopping")

    def watchdog(self) -> None:
        self.send(watchdog=1)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Watchdog:
    """Pings ``WATCHDOG=1`` at most every half watchdog period, when ``ping`` is called."""

    def __init__(self, notifier: Notifier, environ: Mapping[str, str]) -> None:
        self.notifier = notifier
        self.period: float | None = None
        usec = environ.get("WATCHDOG_USEC")
        pid = environ.get("WATCHDOG_PID")
        if notifier.enabled and usec and usec.isdigit() and (not pid or pid == str(os.getpid())):
            self.period = int(usec) / 1_000_000
        self._next = 0.0

    @property
    def enabled(self) -> bool:
        return self.period is not None

    @property
    def interval(self) -> float:
        """How often the main loop should call ``ping`` (half the period)."""
        return self.period / 2 if self.period else 3600.0

    def ping(self, now: float | None = None) -> None:
        if self.period is None:
            return
        now = time.monotonic() if now is None else now
        if now >= self._next:
            self.notifier.watchdog()
            self._next = now + self.period / 2
