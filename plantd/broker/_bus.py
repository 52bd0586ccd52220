"""The data bus: an XSUB (publishers connect) to XPUB (subscribers connect) forwarder.

It runs ``zmq.proxy_steerable`` in a thread of its own: the forwarding loop is C and releases
the GIL, so samples never wait behind the broker's Python loop. The sockets are created inside
that thread (ZeroMQ sockets are not thread-safe) and it is stopped through an inproc control
socket.
"""

from __future__ import annotations

import logging
import threading
from itertools import count

import zmq

from plantd.config import BusConfig

__all__ = ["BusProxy"]

log = logging.getLogger(__name__)
_ids = count()


class BusProxy:
    """Start with ``start()``; ``stop()`` ends the forwarding thread and closes its sockets."""

    def __init__(self, config: BusConfig, context: zmq.Context[zmq.Socket[bytes]]) -> None:
        self.config = config
        self._context = context
        self._control_address = f"inproc://plantd-bus-control-{next(_ids)}"
        self._thread: threading.Thread | None = None
        self._bound = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        """Bind both ends and start forwarding; raises if an endpoint cannot be bound."""
        self._thread = threading.Thread(target=self._run, name="plantd-bus", daemon=True)
        self._thread.start()
        self._bound.wait()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._thread is None:
            return
        control = self._context.socket(zmq.PAIR)
        try:
            control.connect(self._control_address)
            control.send(b"TERMINATE")
        finally:
            control.close(linger=0)
        self._thread.join(timeout=5)
        self._thread = None

    def _run(self) -> None:
        context = self._context
        frontend = context.socket(zmq.XSUB)
        backend = context.socket(zmq.XPUB)
        control = context.socket(zmq.PAIR)
        try:
            for sock in (frontend, backend):
                sock.set_hwm(self.config.high_water_mark)
                sock.linger = 0
            control.bind(self._control_address)
            frontend.bind(self.config.frontend)
            backend.bind(self.config.backend)
        except zmq.ZMQError as exc:
            self._error = exc
            self._bound.set()
            for sock in (frontend, backend, control):
                sock.close(linger=0)
            return
        self._bound.set()
        log.info(
            "data bus: publishers → %s, subscribers ← %s", self.config.frontend, self.config.backend
        )
        try:
            zmq.proxy_steerable(frontend, backend, None, control)
        except zmq.ContextTerminated:
            pass
        finally:
            for sock in (frontend, backend, control):
                sock.close(linger=0)
