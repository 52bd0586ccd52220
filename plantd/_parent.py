"""A child of ``plant up`` ends with it, even when ``plant up`` is killed with SIGKILL.

``plant up`` starts each child in a session of its own (so that Ctrl-C reaches only
``plant up``, which stops them in order) and names itself in ``PLANTD_PARENT_PID``. The child
asks the kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``, Linux) — an orderly
stop — so a killed ``plant up`` leaves no orphans holding the stack's ports. The variable is
taken out of the environment at once: a grandchild has a parent of its own.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import MutableMapping

__all__ = ["PARENT_ENV", "follow_parent"]

PARENT_ENV = "PLANTD_PARENT_PID"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def follow_parent(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Stop (SIGTERM) when the parent named in ``PLANTD_PARENT_PID`` dies; True if set up."""
    parent = environ.pop(PARENT_ENV, "")
    if not parent.isdigit() or not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        return False
    if os.getppid() != int(parent):  # it died before the line above: nobody will signal us
        os.kill(os.getpid(), signal.SIGTERM)
    return True
