"""A stand-in for systemd's notification socket: what a service under test tells systemd."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from types import TracebackType

__all__ = ["NotifySocket"]


class NotifySocket:
    """Bind an AF_UNIX datagram socket at ``path``; give ``NOTIFY_SOCKET=path`` to the service
    and read what it sends (``READY=1``, ``WATCHDOG=1``, ``STATUS=…``), each message stamped
    with the monotonic time it arrived. Use as ``with``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)

    def messages(self, seconds: float) -> list[tuple[float, dict[str, str]]]:
        """Everything received within ``seconds``: (arrival time, fields) pairs."""
        received = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            received.append((time.monotonic(), fields))
        return received

    def until(self, key: str, timeout: float = 30.0) -> list[dict[str, str]]:
        """Every message up to and including the first that has ``key`` (what came before it
        too: "no READY before the first WATCHDOG"); AssertionError after ``timeout``."""
        seen: list[dict[str, str]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _, fields in self.messages(0.1):
                seen.append(fields)
                if key in fields:
                    return seen
        raise AssertionError(f"no {key} within {timeout} s (got {seen})")

    def wait_for(self, key: str, timeout: float = 30.0) -> dict[str, str]:
        """The fields of the first message that has ``key``; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _, fields in self.messages(0.1):
                if key in fields:
                    return fields
        raise AssertionError(f"no {key} within {timeout} s")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> NotifySocket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
