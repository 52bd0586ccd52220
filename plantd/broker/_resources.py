"""What the broker process asks of the operating system: file descriptors, and freed memory back.

File descriptors: every TCP connection holds one, including connections that never finish
their ZMTP handshake. At 1,024 (a common soft limit) a flood of idle connections leaves no fd
for a real client, and libzmq's listener spins on ``EMFILE``. The broker raises its soft limit
to the hard one (systemd's ``LimitNOFILE=`` sets both) and closes connections that have not
completed their handshake within ``broker.handshake_timeout``.

Memory: glibc keeps freed heap for reuse; after a burst of large requests (or a message of a
million frames, which libzmq holds as a million 64-byte parts) the process would stay at its
peak. ``malloc_trim(0)`` returns the free pages. It is glibc's; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import resource
from collections.abc import Callable

__all__ = ["raise_fd_limit", "release_free_memory"]

log = logging.getLogger(__name__)


def raise_fd_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard in (soft, resource.RLIM_INFINITY):  # nothing to gain, or no number to ask
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:  # a sandbox may refuse; the soft limit still works
        log.warning("could not raise the file descriptor limit from %d to %d: %s", soft, hard, exc)
        return soft
    return hard


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # not glibc (musl, macOS)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _find_malloc_trim()


def release_free_memory() -> bool:
    """Hand the heap's free pages back to the system; True if glibc released any."""
    return bool(_malloc_trim(0)) if _malloc_trim is not None else False
