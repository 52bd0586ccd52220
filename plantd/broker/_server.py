"""The broker process: the sans-IO :class:`~plantd.mdp.Broker` behind one ROUTER socket.

The hot loop is a plain poll loop rather than asyncio: one poll per wake-up, then every message
already queued on the socket is handled before polling again (checking ``EVENTS`` rather than
catching ``zmq.Again``, which costs a Python exception per wake-up). The clock is read once per
batch. Frames are sent one ``send(frame, SNDMORE)`` at a time with a plain int flag: pyzmq's
``send_multipart`` type-checks every frame and combines enum flags in Python, which made it
three times slower per message (measured: 5.5 µs against 1.8 µs for a six-frame request).
Signals and ``stop()`` wake the poll through a socketpair, so shutdown is immediate.

Abuse (docs/protocol.md, "Bounded memory"): a message of more than ``broker.max_frames`` frames
is drained without keeping its frames (a million empty frames cost ~1 s of receiving, against
8 s and 145 MiB as a list), then refused by the core. libzmq hands a message over whole, so
the drain cannot be split; instead a batch ends at its second drained message, so timers run
and the other peers (fairly queued by the ROUTER) are read between abusive messages. Once a
large queue has drained, or after refusals of large messages, the freed heap goes back to the
system (``malloc_trim``); otherwise the process would stay at its peak. Connections that have
not completed their handshake within ``broker.handshake_timeout`` are closed by libzmq.

Security (``security.mode: curve``, docs/security.md): before anything binds, the
:class:`~plantd.security.Gatekeeper` thread starts answering ZAP requests from the keys
directory; the ROUTER (and the bus) are CURVE servers. The first frame of every message is
then received as a ``zmq.Frame`` to read the sender's principal (User-Id) and descriptor,
about a microsecond more per message. When the keys change, the Gatekeeper posts the new key
ring and wakes the loop, which builds a new policy, disconnects revoked workers, cuts revoked
connections (here and on the bus) and records the change in the audit trail.

Reload (SIGHUP, ``systemctl reload``): the handler only sets a flag and wakes the loop, which
re-reads ``plantd.yaml`` between batches and applies what can change live
(:mod:`plantd.broker._reload`); a file with problems is logged and changes nothing. It also
re-reads the keys directory at once, rather than at the Gatekeeper's next poll.

The process also binds :data:`INTERNAL_ENDPOINT` (inproc): the broker's own ``org.plantd.Audit``
worker connects there, without a handshake, as the ``broker`` principal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import cast

import zmq

from plantd.broker import _metrics
from plantd.broker._bus import ZAP_BACKEND, ZAP_FRONTEND, BusProxy
from plantd.broker._reload import merge
from plantd.broker._resources import release_free_memory
from plantd.config import PlantdConfig
from plantd.errors import ConfigError, SecurityError
from plantd.mdp import Broker
from plantd.security import (
    BROKER,
    Connections,
    Gatekeeper,
    KeyRing,
    Policy,
    read_key_file,
    secret_key_path,
)
from plantd.security._audit_event import UNKNOWN_PRINCIPAL, AuditEvent
from plantd.security._connections import sender_principal
from plantd.security._handshakes import MONITORED_EVENTS, HandshakeMonitor, drain_monitor
from plantd.security._keyring import changes, load_keyring

__all__ = ["INTERNAL_ENDPOINT", "BrokerServer"]

log = logging.getLogger(__name__)

INTERNAL_ENDPOINT = "inproc://plantd-broker"
ZAP_BROKER = b"broker.endpoint"  # the ROUTER's ZAP domain, see _audit
_BATCH = 256  # messages handled per wake-up before timers get a look in
_SNDMORE = int(zmq.SNDMORE)
_SNDMORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
_RCVMORE = int(zmq.RCVMORE)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_MIN_FRAME_CAP = 64 * 1024
# Give freed memory back once this much was queued and three quarters of it left the queues.
_TRIM_AFTER_BYTES = 4 * 1024 * 1024

AuditSink = Callable[[AuditEvent], None]


class BrokerServer:
    """Binds the MDP endpoint and the data bus, then routes until ``stop()`` or a signal.

    ``on_audit`` receives every audit event (the broker process hands them to its audit log);
    it must not block and may be called from any of the broker's threads. ``context`` is the
    process's ZeroMQ context unless given (a second broker in one process needs its own: the
    inproc endpoints are per context).
    """

    def __init__(
        self,
        config: PlantdConfig,
        *,
        with_bus: bool = True,
        on_audit: AuditSink | None = None,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
    ) -> None:
        self.config = config
        self._context: zmq.Context[zmq.Socket[bytes]] = context or zmq.Context.instance()
        self._router: zmq.Socket[bytes] | None = None
        self._monitor: zmq.Socket[bytes] | None = None
        self._with_bus = with_bus
        self._bus: BusProxy | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = False
        self._audit_sink: AuditSink = on_audit or (lambda event: None)
        self._on_audit: AuditSink = self._audit
        self._gatekeeper: Gatekeeper | None = None
        self._server_secret: bytes | None = None
        self._keyring = KeyRing()
        self._posted: tuple[KeyRing | None, KeyRing] | None = None  # from the ZAP thread
        self._posted_lock = threading.Lock()
        self._connections = Connections()
        self._refusals_seen = 0  # refusals of large or oversized messages, when last trimmed
        self._reread: Callable[[], PlantdConfig] | None = None  # plantd.yaml, for SIGHUP
        self._reload_requested = False
        self.core: Broker | None = None
        self.endpoint = config.broker.endpoint
        """The MDP endpoint as bound (a wildcard's real port), once :meth:`bind` returned."""

    @property
    def secure(self) -> bool:
        return self.config.security.enabled

    @property
    def bus(self) -> BusProxy | None:
        return self._bus

    def bound_endpoints(self) -> dict[str, dict[str, str]]:
        """Where the broker and its bus listen, as bound, shaped like the config's sections:
        ``{"broker": {"endpoint": …}, "bus": {"frontend": …, "backend": …}}``."""
        bound: dict[str, dict[str, str]] = {"broker": {"endpoint": self.endpoint}}
        if self._bus is not None:
            bound["bus"] = {"frontend": self._bus.frontend, "backend": self._bus.backend}
        return bound

    def _audit(self, event: AuditEvent) -> None:
        """Hand ``event`` on; a refused connection names the socket by its ZAP domain, which
        becomes the endpoint as bound (from any of the broker's threads)."""
        if event.action == "connect":
            bus = self._bus
            bound = {ZAP_BROKER.decode(): self.endpoint}
            if bus is not None:
                bound |= {ZAP_FRONTEND.decode(): bus.frontend, ZAP_BACKEND.decode(): bus.backend}
            if event.target in bound:
                event = dataclasses.replace(event, target=bound[event.target])
        self._audit_sink(event)

    def policy(self) -> Policy:
        """A policy for the current key ring (each user keeps its own: caches are per thread)."""
        return Policy(self.config.security, self._keyring)

    def bind(self) -> None:
        """Bind every endpoint; raises ``zmq.ZMQError`` naming the one that failed, or
        ``SecurityError`` when the broker's own key cannot be read."""
        broker = self.config.broker
        if self.secure:
            self._start_gatekeeper()
        router = self._context.socket(zmq.ROUTER)
        router.linger = 0
        # libzmq drops a peer whose single frame exceeds this, before Python sees it; up to
        # it, the broker answers oversized requests with a clear error (broker.too-large).
        router.maxmsgsize = max(4 * broker.max_message_bytes, _MIN_FRAME_CAP)
        router.handshake_ivl = round(broker.handshake_timeout * 1000)
        # A send to a peer whose connection is gone fails (EHOSTUNREACH) instead of vanishing:
        # the core then forgets a dead worker at once, not at its heartbeat expiry (W7).
        router.router_mandatory = True
        if self._server_secret is not None:
            router.curve_server = True
            router.curve_secretkey = self._server_secret
            router.zap_domain = ZAP_BROKER  # names the socket in audit records (_audit)
        try:
            router.bind(broker.endpoint)
            # What was bound, read before the inproc bind replaces it: the port a wildcard
            # (``tcp://127.0.0.1:*``) got.
            self.endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
            router.bind(INTERNAL_ENDPOINT)
        except zmq.ZMQError as exc:
            router.close()
            raise zmq.ZMQError(
                exc.errno, f"cannot bind broker.endpoint {broker.endpoint}: {exc}"
            ) from exc
        self._router = router
        if self.secure:
            self._monitor = router.get_monitor_socket(MONITORED_EVENTS)
        if self._with_bus:
            self._bus = BusProxy(
                self.config.bus,
                self._context,
                handshake_timeout=broker.handshake_timeout,
                server_secret=self._server_secret,
                policy=self.policy() if self.secure else None,
                on_audit=self._on_audit,
            )
            try:
                self._bus.start()
            except zmq.ZMQError as exc:
                self.close()
                raise zmq.ZMQError(exc.errno, f"cannot bind the data bus: {exc}") from exc
        log.info(
            "broker ready on %s (MDP/0.2, MDP/0.1, MMI; %s)",
            self.endpoint,
            "CURVE" if self.secure else "security.mode none: no authentication",
        )

    def _start_gatekeeper(self) -> None:
        security = self.config.security
        path = secret_key_path(self.config, BROKER)
        if not path.exists():
            raise SecurityError(
                f"{path}: the broker's secret key is missing; make keys with "
                "`plant keys init` (docs/security.md)"
            )
        own = read_key_file(path)
        if own.secret is None:
            raise SecurityError(f"{path}: holds no secret-key (a public key file?)")
        self._server_secret = own.secret
        self._gatekeeper = Gatekeeper(
            self._context,
            security.keys_dir(self.config.source_dir),
            self._post_keyring,
            self._on_audit,
        )
        self._keyring = self._gatekeeper.start()

    def _post_keyring(self, old: KeyRing | None, new: KeyRing) -> None:
        """From the ZAP thread: hand the new key ring to the routing loop, and wake it."""
        if old is None:
            self._keyring = new  # the first read, before anything is bound
            return
        with self._posted_lock:
            first_old = self._posted[0] if self._posted is not None else old
            self._posted = (first_old, new)
        self._wake()

    def stop(self) -> None:
        """Ask ``run`` to return; safe from another thread or a signal handler."""
        self._stopping = True
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full: run() is already waking
            self._wake_w.send(b"\0")

    def request_reload(self, reread: Callable[[], PlantdConfig]) -> None:
        """Re-read the configuration with ``reread`` (it raises ConfigError on a bad file)
        and the keys, in the routing loop at its next wake-up; safe from a signal handler."""
        self._reread = reread
        self._reload_requested = True
        self._wake()

    def install_signal_handlers(self, reread: Callable[[], PlantdConfig] | None = None) -> None:
        """SIGTERM and SIGINT stop; SIGHUP reloads with ``reread`` (ignored without one)."""

        def handle(signum: int, frame: FrameType | None) -> None:
            log.info("received %s, stopping", signal.Signals(signum).name)
            self.stop()

        def reload(signum: int, frame: FrameType | None) -> None:
            if reread is None:
                log.info("SIGHUP: nothing here to reload (restart to apply changes)")
            else:
                self.request_reload(reread)

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGHUP, reload)

    def run(
        self, on_idle: Callable[[], None] | None = None, *, wake_every: float | None = None
    ) -> None:
        """Route until stopped. ``on_idle`` runs after every wake-up, and the loop wakes at
        least every ``wake_every`` seconds (a watchdog pinged from ``on_idle`` needs that)."""
        if self._router is None:
            self.bind()
        router = self._router
        assert router is not None
        clock = time.monotonic
        now = clock()
        # Without CURVE nobody is known: no policy, no audit trail, plain MDP as RFC 18 has it.
        core = self.core = Broker(self.config.broker, now, self.policy() if self.secure else None)
        _metrics.watch_broker(core)  # its counts, read at collection time (_metrics)
        send = _sender(router, core, clock)
        audit = self._on_audit

        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        handshakes = HandshakeMonitor(self.endpoint)
        if self._monitor is not None:
            poller.register(self._monitor, zmq.POLLIN)
        next_tick = core.next_tick(now)
        try:
            while not self._stopping:
                wait = next_tick - now if wake_every is None else min(next_tick - now, wake_every)
                timeout_ms = max(0.0, wait * 1000.0)
                ready = dict(poller.poll(int(timeout_ms)))
                now = clock()
                if router in ready:
                    now = self._route(router, core, now, send, clock)
                if self._wake_r.fileno() in ready:
                    self._drain_wakeups()
                    if self._reload_requested:
                        self._reload_requested = False
                        self._reload(core, router)
                    for message in self._apply_keyring(core, now):
                        send(message)
                if self._monitor is not None and self._monitor in ready:
                    drain_monitor(self._monitor, handshakes, audit)
                if core.audit_events:
                    for event in core.audit_events:
                        audit(event)
                    core.audit_events.clear()
                if now >= next_tick:
                    for message in core.tick(now):
                        send(message)
                    next_tick = core.next_tick(now)
                    self._release_memory(core)
                if on_idle is not None:
                    on_idle()
            for message in core.shutdown():
                send(message)
        finally:
            _metrics.forget_broker(core)
            self.close()

    def _route(
        self,
        router: zmq.Socket[bytes],
        core: Broker,
        now: float,
        send: Callable[[list[bytes]], None],
        clock: Callable[[], float],
    ) -> float:
        """Every message waiting on the ROUTER (up to a batch), through the core; returns the
        time it was read at (read again after draining an oversized message)."""
        recv_frame, get = router.recv, router.get
        connections, secure = self._connections, self.secure
        admitted = self._keyring.by_principal.__contains__
        max_frames = self.config.broker.max_frames
        drained = 0
        for _ in range(_BATCH):
            principal: str | None = None
            if secure:
                first = recv_frame(copy=False)
                sender = first.bytes
                principal = sender_principal(first, connections, BROKER, admitted)
            else:
                sender = recv_frame()
            frames: list[bytes] = []
            append = frames.append
            for _ in range(max_frames):
                if not get(_RCVMORE):
                    break
                append(recv_frame())
            else:
                if get(_RCVMORE):
                    count = max_frames + _drain(router)
                    drained += 1
                    now = clock()
                    if principal is not None or not secure:
                        for message in core.refuse_too_many_frames(sender, frames[:3], count, now):
                            send(message)
                    if drained > 1:
                        break  # let the timers run before draining a third
                    continue
            # None under CURVE: a revoked key's connection, cut as it spoke; drop what it said.
            if principal is not None or not secure:
                for message in core.receive(sender, frames, now, principal):
                    send(message)
            if not cast(int, get(_EVENTS)) & _POLLIN:
                break
        return now

    def _release_memory(self, core: Broker) -> None:
        """Return freed heap to the system after a large queue drained or large messages were
        refused (rare events; a trim with nothing to give back costs microseconds)."""
        counters = core.counters
        refusals = (
            counters.rejected_queue_full
            + counters.rejected_too_large
            + counters.rejected_too_many_frames
            + counters.malformed
        )
        peak = core.queued_bytes_peak
        drained = peak >= _TRIM_AFTER_BYTES and core.queued_bytes <= peak // 4
        if drained or (refusals != self._refusals_seen and core.queued_bytes <= peak // 4):
            self._refusals_seen = refusals
            core.queued_bytes_peak = core.queued_bytes
            release_free_memory()

    def _reload(self, core: Broker, router: zmq.Socket[bytes]) -> None:
        """SIGHUP: the live settings of a re-read ``plantd.yaml`` into the core, the sockets
        and the policy; a file with problems changes nothing. Never raises: a reload that
        fails leaves the broker routing as it was."""
        try:
            self._reload_config(core, router)
        except Exception:  # the supervisor edge: keep routing with what we have
            log.exception("SIGHUP: reload failed; running on with the settings as they were")
        try:
            self._reread_keys()
        except Exception:
            log.exception("SIGHUP: could not re-read the keys; keeping the previous ones")

    def _reload_config(self, core: Broker, router: zmq.Socket[bytes]) -> None:
        assert self._reread is not None
        try:
            read = self._reread()
        except ConfigError as exc:
            log.error(
                "SIGHUP: the configuration has problems; nothing applied, running on with "
                "the settings as they were:\n%s",
                exc,
            )
            return
        running = self._as_bound(self.config)
        merged = merge(running, read)
        for line in merged.restart:
            log.warning("SIGHUP: %s: needs a restart, not applied", line)
        if not merged.changed:
            log.info("SIGHUP: no setting that applies live has changed")
            return
        self.config = merged.config
        core.config = merged.config.broker
        # New connections only: libzmq copies socket options into a connection as it opens.
        router.maxmsgsize = max(4 * merged.config.broker.max_message_bytes, _MIN_FRAME_CAP)
        if self.secure and merged.config.security != running.security:
            core.set_policy(self.policy())
            if self._bus is not None:
                self._bus.update(self.policy(), ())
        for line in merged.applied:
            log.info("SIGHUP: applied %s", line)

    def _as_bound(self, config: PlantdConfig) -> PlantdConfig:
        """``config`` with the endpoints as bound (a wildcard's real port), as a re-read
        finds them in the endpoints file."""
        bus = config.bus
        if self._bus is not None:
            bus = dataclasses.replace(bus, frontend=self._bus.frontend, backend=self._bus.backend)
        broker = dataclasses.replace(config.broker, endpoint=self.endpoint)
        return dataclasses.replace(config, broker=broker, bus=bus)

    def _reread_keys(self) -> None:
        """Read the keys directory now (the Gatekeeper polls it by file times and sizes,
        which a copy within the same instant could slip past); a change is applied as the
        Gatekeeper's own are, by :meth:`_apply_keyring`."""
        gatekeeper = self._gatekeeper
        if gatekeeper is None:
            return
        new = load_keyring(gatekeeper.keys_dir)
        old = self._keyring
        unchanged = (new.by_key, new.revoked) == (old.by_key, old.revoked)
        log.info("SIGHUP: keys re-read: %d principal(s), %s", len(new.by_principal),
                 "unchanged" if unchanged else "changed")  # fmt: skip
        if unchanged:
            return
        for problem in new.problems:
            log.error("key not admitted: %s", problem)
        gatekeeper.keyring = new  # the ZAP thread answers from it from now on
        self._post_keyring(old, new)

    def _apply_keyring(self, core: Broker, now: float) -> list[list[bytes]]:
        """The keys changed: new policies here and on the bus; revoked peers cut (within the
        Gatekeeper's poll interval of the change); the change in the audit trail."""
        with self._posted_lock:
            posted, self._posted = self._posted, None
        if posted is None:
            return []
        old, new = posted
        assert old is not None
        self._keyring = new
        revoked, lines = changes(old, new)
        core.set_policy(self.policy())
        out = core.revoke(revoked, now)
        cut = self._connections.cut(revoked)
        if self._bus is not None:
            self._bus.update(self.policy(), revoked)
        for line in lines:
            log.warning("keys: %s", line)
            principal, _, what = line.partition(": ")
            self._on_audit(
                AuditEvent(UNKNOWN_PRINCIPAL, "key", principal, "ok", what, source="keys")
            )
        if cut:
            log.warning("cut %d connection(s) of revoked keys", cut)
        return out

    def close(self) -> None:
        if self._bus is not None:
            self._bus.stop()
            self._bus = None
        if self._monitor is not None:
            self._monitor.close(linger=0)
            self._monitor = None
        if self._router is not None:
            self._router.close(linger=100)
            self._router = None
        if self._gatekeeper is not None:
            self._gatekeeper.stop()
            self._gatekeeper = None
        self._wake_r.close()
        self._wake_w.close()

    def _drain_wakeups(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(512):
                pass


def _drain(router: zmq.Socket[bytes]) -> int:
    """Receive and drop the rest of the current message; return how many frames it had."""
    recv_frame, get = router.recv, router.get
    count = 0
    while get(_RCVMORE):
        recv_frame()
        count += 1
    return count


def _sender(
    router: zmq.Socket[bytes], core: Broker, clock: Callable[[], float]
) -> Callable[[list[bytes]], None]:
    """Sends the core's messages on ``router``, telling the core of peers that are gone."""
    send_frame = router.send

    def send(message: list[bytes]) -> None:
        # The first frame picks the peer and is where ROUTER_MANDATORY says no: the peer is
        # gone (EHOSTUNREACH) or its queue is full (EAGAIN: dropped, as ZeroMQ does without
        # the option). The other frames of an accepted message always go.
        try:
            send_frame(message[0], _SNDMORE_NOBLOCK)
        except zmq.ZMQError as exc:
            if exc.errno == errno.EHOSTUNREACH:
                for more in core.peer_gone(message[0], message, clock()):
                    send(more)
            elif exc.errno != errno.EAGAIN:
                raise
            return
        for frame in message[1:-1]:
            send_frame(frame, _SNDMORE)
        send_frame(message[-1])

    return send
