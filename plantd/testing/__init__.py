"""Test doubles and helpers that ship with plantd, for its own tests and for yours.

- :class:`ManagedProcess`: a real plantd process you can start, kill -9 and restart;
- :func:`write_config`, :func:`free_tcp_port`: a throwaway configuration directory;
- :func:`wait_for_broker`, :func:`wait_for_workers`: block until the stack serves.
"""

from __future__ import annotations

from plantd.testing._processes import (
    ManagedProcess,
    free_tcp_port,
    wait_for_broker,
    wait_for_workers,
    write_config,
)

__all__ = [
    "ManagedProcess",
    "free_tcp_port",
    "wait_for_broker",
    "wait_for_workers",
    "write_config",
]
