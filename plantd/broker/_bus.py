"""The data bus: an XSUB (publishers connect) to XPUB (subscribers connect) forwarder.

It runs in a thread of its own, on sockets created inside that thread (ZeroMQ sockets are not
thread-safe), and is stopped or told about key changes through an inproc control socket.

Two forwarders, by ``security.mode``:

- ``none``: ``zmq.proxy_steerable``, whose loop is C and releases the GIL, so samples never
  wait behind the broker's Python loop;
- ``curve``: both ends are CURVE servers, and every message a publisher sends is checked
  before it goes on: the User-Id libzmq attached to it (the publisher's principal, from the ZAP
  handler) must be allowed its topic (a module publishes only ``data.<its name>.*``, only the
  state service ``state.*``: see ``plantd.security``). A refused message is dropped, counted
  and audited. This loop is Python; it drains everything readable per wake-up and caches
  decisions per (principal, topic), so its cost is a few microseconds per message.

Counts (``plantd_bus_*`` metrics, :mod:`plantd.broker._metrics`): the guarded forwarder counts
what it forwards and refuses; the C forwarder is asked for its statistics over the control
socket (a REP, so that several threads may ask, one at a time) when metrics are collected.
libzmq counts frames, and a bus message is two (docs/bus.md), so messages are frames ÷ 2.

In-process publishers (the audit log) connect to :attr:`BusProxy.internal_endpoint`, an inproc
endpoint that no other process can reach; their messages carry no User-Id and are the
broker's own.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Callable, Collection
from itertools import count

import zmq

from plantd.broker import _metrics
from plantd.config import BusConfig
from plantd.mdp._audit import denied_event
from plantd.security import BROKER, Connections, Policy
from plantd.security._audit_event import AuditEvent
from plantd.security._connections import sender_principal
from plantd.security._handshakes import MONITORED_EVENTS, HandshakeMonitor, drain_monitor

__all__ = ["BusProxy"]

# The ZAP domain of each end: refusals are recorded under it, and the broker names the end by
# the endpoint it bound instead (a wildcard, tcp://HOST:*, is the same text for every socket).
ZAP_FRONTEND = b"bus.frontend"
ZAP_BACKEND = b"bus.backend"

log = logging.getLogger(__name__)
_ids = count()

_BATCH = 512
_SNDMORE = int(zmq.SNDMORE)
_RCVMORE = int(zmq.RCVMORE)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_CONTROL_TIMEOUT_MS = 2000  # a forwarder that does not answer its control socket is gone
_FRAMES_PER_MESSAGE = 2  # [topic, payload]


class BusProxy:
    """Start with ``start()``; ``stop()`` ends the forwarding thread and closes its sockets.

    ``server_secret`` (the broker's CURVE secret key) makes it the guarded forwarder; then
    ``policy`` must be given, and ``update(policy, revoked)`` swaps it when keys change.
    ``on_audit`` gets every refusal. ``handshake_timeout`` (seconds, from
    ``broker.handshake_timeout``) closes connections that never complete their handshake.
    """

    def __init__(
        self,
        config: BusConfig,
        context: zmq.Context[zmq.Socket[bytes]],
        *,
        server_secret: bytes | None = None,
        policy: Policy | None = None,
        on_audit: Callable[[AuditEvent], None] | None = None,
        handshake_timeout: float = 5.0,
    ) -> None:
        if server_secret is not None and policy is None:
            raise ValueError("a guarded bus needs a policy")
        self.config = config
        number = next(_ids)
        self.internal_endpoint = f"inproc://plantd-bus-internal-{number}"
        self._context = context
        self._control_address = f"inproc://plantd-bus-control-{number}"
        self._server_secret = server_secret
        self._policy = policy
        self._revoked: frozenset[str] = frozenset()
        self._on_audit = on_audit or (lambda event: None)
        self._handshake_ms = round(handshake_timeout * 1000)
        self._thread: threading.Thread | None = None
        self._bound = threading.Event()
        self._error: BaseException | None = None
        self._control_lock = threading.Lock()  # one command at a time on the control socket
        # Messages forwarded and refused; for the C forwarder, as of its last statistics.
        self.forwarded = 0
        self.refused = 0
        # The endpoints as bound (a wildcard's real port), once start() returned.
        self.frontend = config.frontend
        self.backend = config.backend

    def start(self) -> None:
        """Bind both ends and start forwarding; raises if an endpoint cannot be bound."""
        self._thread = threading.Thread(target=self._run, name="plantd-bus", daemon=True)
        self._thread.start()
        self._bound.wait()
        if self._error is not None:
            raise self._error
        _metrics.watch_bus(self)

    def stop(self) -> None:
        if self._thread is None:
            return
        steerable = self._server_secret is None
        if steerable:
            self.counts()  # the C forwarder's last statistics, before it ends
        self._tell(b"TERMINATE")
        self._thread.join(timeout=5)
        self._thread = None
        _metrics.forget_bus(self, (self.forwarded, self.refused))

    def counts(self) -> tuple[int, int]:
        """Messages forwarded and publications refused since :meth:`start` (from any thread)."""
        if self._server_secret is None and self._thread is not None:
            reply = self._tell(b"STATISTICS")
            if reply is not None and len(reply) == 8:
                frames_in = struct.unpack("=Q", reply[0])[0]  # the frontend's messages in
                self.forwarded = max(self.forwarded, frames_in // _FRAMES_PER_MESSAGE)
        return self.forwarded, self.refused

    def update(self, policy: Policy, revoked: Collection[str]) -> None:
        """Decide with ``policy`` from now on, and cut the connections of ``revoked``."""
        self._policy = policy
        self._revoked = frozenset(revoked)
        if self._thread is not None:
            self._tell(b"KEYS")

    def _tell(self, command: bytes) -> list[bytes] | None:
        """Send ``command`` to the forwarder; its answer, or None if none came in time."""
        with self._control_lock:
            control = self._context.socket(zmq.REQ)
            try:
                control.connect(self._control_address)
                control.send(command)
                if control.poll(_CONTROL_TIMEOUT_MS, zmq.POLLIN):
                    return control.recv_multipart()
                log.warning("the bus forwarder did not answer %s", command.decode())
                return None
            finally:
                control.close(linger=0)

    def _run(self) -> None:
        context = self._context
        frontend = context.socket(zmq.XSUB)
        backend = context.socket(zmq.XPUB)
        control = context.socket(zmq.REP)
        sockets = [frontend, backend, control]
        try:
            for sock, domain in ((frontend, ZAP_FRONTEND), (backend, ZAP_BACKEND)):
                sock.set_hwm(self.config.high_water_mark)
                sock.linger = 0
                sock.handshake_ivl = self._handshake_ms
                if self._server_secret is not None:
                    sock.curve_server = True
                    sock.curve_secretkey = self._server_secret
                    sock.zap_domain = domain  # names the socket in audit records
            control.bind(self._control_address)
            frontend.bind(self.config.frontend)
            # As bound (a wildcard's real port), read before the next bind replaces it.
            self.frontend = frontend.getsockopt_string(zmq.LAST_ENDPOINT)
            frontend.bind(self.internal_endpoint)
            backend.bind(self.config.backend)
            self.backend = backend.getsockopt_string(zmq.LAST_ENDPOINT)
        except zmq.ZMQError as exc:
            self._error = exc
            self._bound.set()
            for sock in sockets:
                sock.close(linger=0)
            return
        self._bound.set()
        log.info(
            "data bus%s: publishers → %s, subscribers ← %s",
            " (CURVE, topics checked per principal)" if self._server_secret else "",
            self.frontend,
            self.backend,
        )
        try:
            if self._server_secret is None:
                zmq.proxy_steerable(frontend, backend, None, control)
            else:
                self._guard(frontend, backend, control, sockets)
        except zmq.ContextTerminated:
            pass
        finally:
            for sock in sockets:
                sock.close(linger=0)

    # -- the guarded forwarder ----------------------------------------------------------------

    def _guard(
        self,
        frontend: zmq.Socket[bytes],
        backend: zmq.Socket[bytes],
        control: zmq.Socket[bytes],
        sockets: list[zmq.Socket[bytes]],
    ) -> None:
        connections = Connections()
        poller = zmq.Poller()
        for sock in (frontend, backend, control):
            poller.register(sock, zmq.POLLIN)
        monitors: dict[zmq.Socket[bytes], HandshakeMonitor] = {}
        for sock, endpoint in ((frontend, self.frontend), (backend, self.backend)):
            monitor = sock.get_monitor_socket(MONITORED_EVENTS)
            sockets.append(monitor)
            monitors[monitor] = HandshakeMonitor(endpoint)
            poller.register(monitor, zmq.POLLIN)
        while True:
            ready = dict(poller.poll())
            if frontend in ready:
                self._forward(frontend, backend, connections)
            if backend in ready:
                self._subscriptions(backend, frontend, connections)
            for monitor, handshakes in monitors.items():
                if monitor in ready:
                    drain_monitor(monitor, handshakes, self._on_audit)
            if control in ready:
                command = control.recv()
                control.send(b"")  # REP: every command is answered
                if command == b"TERMINATE":
                    return
                if self._revoked:
                    connections.cut(self._revoked)
                    self._revoked = frozenset()

    def _forward(
        self, frontend: zmq.Socket[bytes], backend: zmq.Socket[bytes], connections: Connections
    ) -> None:
        recv, get = frontend.recv, frontend.get
        policy = self._policy
        assert policy is not None
        for _ in range(_BATCH):
            first = recv(copy=False)
            parts = [first]
            while get(_RCVMORE):
                parts.append(recv(copy=False))
            principal = sender_principal(first, connections, BROKER, policy.admitted)
            if principal is None:
                self.refused += 1  # a revoked key's connection, cut as it spoke
            else:
                self._pass_on(principal, parts, backend, policy)
            if not get(_EVENTS) & _POLLIN:  # type: ignore[operator]
                break

    def _pass_on(
        self, principal: str, parts: list[zmq.Frame], backend: zmq.Socket[bytes], policy: Policy
    ) -> None:
        """Forward one message if ``principal`` may publish its topic; else audit the refusal."""
        topic = parts[0].bytes
        if policy.may_publish(principal, topic):
            send = backend.send
            for part in parts[:-1]:
                send(part, _SNDMORE, copy=False)
            send(parts[-1], copy=False)
            self.forwarded += 1
            return
        self.refused += 1
        reason = f"{principal} may not publish on {topic[:64]!r}"
        topic_text = topic[:128].decode("ascii", "replace")
        self._on_audit(denied_event(principal, "publish", topic_text, reason, "bus"))

    def _subscriptions(
        self, backend: zmq.Socket[bytes], frontend: zmq.Socket[bytes], connections: Connections
    ) -> None:
        """Subscriptions travel upstream to the publishers, as ``zmq.proxy`` does."""
        for _ in range(_BATCH):
            message = backend.recv(copy=False)
            policy = self._policy
            assert policy is not None
            if sender_principal(message, connections, BROKER, policy.admitted) is not None:
                frontend.send(message, copy=False)
            if not backend.get(_EVENTS) & _POLLIN:  # type: ignore[operator]
                break
