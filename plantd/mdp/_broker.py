"""The Majordomo broker as a sans-IO state machine.

The socket loop around it calls ``receive(sender, frames, now)`` for every message that arrives
on the ROUTER and ``tick(now)`` whenever ``next_tick()`` is due; both return the messages to send,
each as ``[identity, *frames]``. Nothing here touches a socket or reads a clock.

Rules (RFC 18 and RFC 7, with RFC 8 MMI):

Workers
  W1  READY from an unknown peer registers a worker for the service (in the version of its
      header) and makes it idle; unless a queued request goes to it at once, it is sent a
      HEARTBEAT straight away, so it knows it is registered. READY for ``mmi.*`` is refused
      with DISCONNECT.
  W2  Every message from a registered worker refreshes its expiry
      (``heartbeat_interval × heartbeat_liveness`` from now); a worker past its expiry is removed,
      busy or idle, so a worker that dies mid-request is noticed.
  W3  PARTIAL from the busy worker is forwarded to its client; FINAL is forwarded and makes the
      worker idle again, which immediately serves the next queued request of its service.
  W4  Any valid but unexpected command (READY twice, a reply when idle or for another client, a
      REQUEST, HEARTBEAT before READY, a command in the other version) is answered with
      DISCONNECT and the peer is forgotten. DISCONNECT from a worker removes it silently.
  W5  Every heartbeat interval the broker sends HEARTBEAT to each worker it has not sent
      anything to during that interval.
  W6  When a busy worker is removed, its request is queued again at the head of its service
      queue (``worker_loss_retries`` times at most), unless a PARTIAL already reached the client;
      otherwise the client receives a ``broker.worker-lost`` error.

Clients
  C1  A REQUEST goes to the least recently used idle worker of its service, else into the
      service's FIFO queue. Requests for services nobody serves yet are queued too.
  C2  Queues are bounded per service and in total, in requests and in body bytes; a request
      that finds them full (``broker.queue-full``, naming the bound), or whose body exceeds
      ``max_message_bytes`` (``broker.too-large``), is answered at once with an error.
  C3  A request still queued ``request_expiry`` seconds after it arrived is answered with an
      error (``broker.no-worker`` when no worker is registered, else ``broker.expired``).
  C4  ``mmi.*`` requests are answered by the broker itself (see ``_mmi``).
  C5  MDP/0.1 clients get one REPLY: PARTIALs of a 0.2 worker are gathered (bounded) and sent
      with the FINAL.

Security (when the broker is given a :class:`~plantd.security.Policy`; docs/security.md)
  S1  Every message arrives with the sender's authenticated principal (the ZAP User-Id). A
      READY for a service the principal may not serve is answered with DISCONNECT, counted
      as ``denied`` and audited; the worker is not registered.
  S2  A REQUEST the principal may not make (the operation's access level is not among its
      roles') is answered at once with ``broker.denied``, counted and audited; it never
      reaches a worker. ``mmi.*`` is open to every admitted principal.
  S3  Under enforcement the worker sees the caller's principal packed into the client address
      (``_address``); its reply must carry the same address.
  S4  A request the policy marks audited (above ``read``, allowed by a role) is recorded once,
      when it ends: with the reply's result, or the broker's error code. Audit events collect
      in ``audit_events`` for the I/O shell.
  S5  ``revoke(principals)`` disconnects their workers and drops their queued requests.
  S6  Delegation: a request whose first body frame is ``@PRINCIPAL`` (followed by at least
      the operation) is made on behalf of PRINCIPAL when the sender may act for it
      (``Grants.act_for``: the proxy, for the person logged in to it). The frame is removed;
      S2–S4 then apply to PRINCIPAL — its roles decide, the worker sees it as the caller,
      and the audit record names it, with ``via <sender>`` as its source. A sender that may
      not act for it gets ``broker.denied`` (audited). Only with a policy: without CURVE the
      body goes on untouched, as RFC 18 has it.

Frames
  F1  A message of more than ``max_frames`` frames is refused before it is decoded: a client
      request (its first three frames say so) is answered with ``broker.too-many-frames``;
      anything else is malformed (below). The I/O shell may drain such a message without
      keeping its frames and call ``refuse_too_many_frames`` with the first three.

Malformed messages (not MDP at all, or breaking the frame rules) are dropped and counted; if the
sender is a registered worker it is treated as invalid (W4). Clients sending valid commands they
may not send (PARTIAL/FINAL) are dropped and counted as unexpected. Nothing a peer sends can
raise out of ``receive``.

Counts (for ``mmi.broker`` and the process's metrics, read from another thread while the
loop runs): ``counters``, plain ints; ``requests_by_service`` and ``replies_by_service``, by
service name (``mmi.*`` as-is), at most :data:`MAX_COUNTED_SERVICES` names, the rest under
:data:`OTHER_SERVICES`, so a client inventing names cannot grow them without bound; ``errors``,
by error code, for every request the broker ends with an error (plus ``broker.malformed`` for
dropped malformed messages and ``broker.revoked`` for queued requests dropped by S5, which no
reply tells). The loop only adds keys and increments values, never rebinds these dicts.

Broker errors reach clients as a FINAL (REPLY for 0.1) whose body is one JSON frame in the
service-call format: ``{"ok": false, "error": {"code": "broker.…", "message": "…"}}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from typing import TYPE_CHECKING

from plantd.config import BrokerConfig
from plantd.errors import RemoteProtocolError
from plantd.mdp import _mmi
from plantd.mdp._address import wrap_address
from plantd.mdp._audit import call_event, denied_event, reply_result, target
from plantd.mdp._frames import (
    CLIENT_V1,
    CLIENT_V2,
    WORKER_V1,
    WORKER_V2,
    ClientReply,
    ClientRequest,
    Disconnect,
    Heartbeat,
    Version,
    WorkerReady,
    WorkerReply,
    decode,
    is_valid_service_name,
)
from plantd.mdp._state import BrokerCounters, Request, Service, Worker
from plantd.security import AuditEvent

if TYPE_CHECKING:
    from plantd.security import Policy

__all__ = ["MAX_COUNTED_SERVICES", "OTHER_SERVICES", "Broker", "Outgoing"]

log = logging.getLogger(__name__)

Outgoing = list[list[bytes]]

# Command bytes the broker sends to workers (see _frames for the full tables).
_W2_REQUEST, _W2_HEARTBEAT, _W2_DISCONNECT = b"\x02", b"\x05", b"\x06"
_W1_REQUEST, _W1_HEARTBEAT, _W1_DISCONNECT = b"\x02", b"\x04", b"\x05"

# Service names counted one by one in requests_by_service / replies_by_service; beyond them,
# requests count under OTHER_SERVICES (with a space, so it can never be a service's name).
MAX_COUNTED_SERVICES = 1000
OTHER_SERVICES = b"(other services)"


def error_body(code: str, message: str) -> list[bytes]:
    """A broker error in the service-call reply format."""
    payload = {"ok": False, "error": {"code": code, "message": message}}
    return [json.dumps(payload, separators=(",", ":")).encode()]


class Broker:
    """Routes requests from clients to workers by service name."""

    def __init__(self, config: BrokerConfig, now: float, policy: Policy | None = None) -> None:
        self.config = config
        self.policy = policy  # None: no authorization and no audit (plain MDP)
        self.audit_events: list[AuditEvent] = []  # S4: drained by the I/O shell
        self.started = now
        self.counters = BrokerCounters()
        self.requests_by_service: dict[bytes, int] = {}
        self.replies_by_service: dict[bytes, int] = {}
        self.errors: dict[str, int] = {}  # by error code, "broker.…"
        self.workers: dict[bytes, Worker] = {}
        self.services: dict[bytes, Service] = {}
        self.queued = 0  # requests waiting in all service queues
        self.queued_bytes = 0  # their body bytes
        # The most ever queued since the I/O shell last reset it (it returns freed memory to
        # the system once a large queue has drained).
        self.queued_bytes_peak = 0
        self._expiry = config.heartbeat_interval * config.heartbeat_liveness
        self._next_heartbeat = now + config.heartbeat_interval
        # Ticks run often enough to notice expiries promptly, without scanning all the time.
        self._tick_period = min(config.heartbeat_interval, config.request_expiry) / 2

    # -- the two entry points ---------------------------------------------------------------

    def receive(
        self, sender: bytes, frames: list[bytes], now: float, principal: str | None = None
    ) -> Outgoing:
        """Handle one message from ``sender``, authenticated as ``principal`` (S1)."""
        out: Outgoing = []
        if len(frames) > self.config.max_frames:
            self._too_many_frames(sender, frames[:3], len(frames), now, out)
            return out
        # Fast paths for the bulk of the traffic, an MDP/0.2 REQUEST and an MDP/0.2 FINAL from
        # a registered worker: the same rules as below, without the generic decoding.
        if len(frames) >= 4:
            head, command = frames[0], frames[1]
            if head == CLIENT_V2 and command == b"\x01" and is_valid_service_name(frames[2]):
                self._client_request(
                    sender, Version.V2, frames[2], frames[3:], now=now, out=out, principal=principal
                )
                return out
            if head == WORKER_V2 and command == b"\x04" and len(frames) >= 5:
                worker = self.workers.get(sender)
                if frames[2] and not frames[3] and worker and worker.version is Version.V2:
                    worker.expiry = now + self._expiry
                    self._worker_reply(worker, frames[2], frames[4:], True, now=now, out=out)
                    return out
        try:
            message = decode(frames)
        except RemoteProtocolError as exc:
            self._malformed(sender, str(exc), now, out)
            return out
        if isinstance(message, ClientRequest):
            self._client_request(
                sender,
                message.version,
                message.service,
                message.body,
                now=now,
                out=out,
                principal=principal,
            )
        elif isinstance(message, ClientReply):
            self.counters.unexpected += 1
            log.debug(
                "dropped %s from client %s: clients may not send replies",
                "PARTIAL" if not message.final else "FINAL",
                sender.hex(),
            )
        else:
            self._worker_message(sender, message, now, out, principal)
        return out

    def refuse_too_many_frames(
        self, sender: bytes, head: list[bytes], count: int, now: float
    ) -> Outgoing:
        """F1 for a message the I/O shell drained: ``head`` is its first frames, ``count``
        how many it had."""
        out: Outgoing = []
        self._too_many_frames(sender, head, count, now, out)
        return out

    def peer_gone(self, identity: bytes, message: list[bytes], now: float) -> Outgoing:
        """W7: ``message`` could not be sent because ``identity``'s connection is gone (the
        shell routes with ROUTER_MANDATORY). A worker is forgotten at once rather than at its
        heartbeat expiry; if the message was the very request it was handed, the request never
        reached it and goes to another worker with no attempt counted."""
        out: Outgoing = []
        worker = self.workers.get(identity)
        if worker is None:
            return out  # a client that left: its reply has nowhere to go
        self.counters.workers_gone += 1
        request = worker.request
        undelivered = request is not None and message is worker.dispatch
        if undelivered:
            worker.request = None
        log.info(
            "worker %s for %r is gone (its connection closed)%s",
            identity.hex(),
            worker.service.label,
            "; its request goes to another worker" if undelivered else "",
        )
        self._remove_worker(worker, now, out)
        if undelivered and request is not None:
            service = self.services.get(worker.service.name) or worker.service
            idle = service.pop_idle()
            if idle is not None:
                self._dispatch(idle, request, out)
            else:
                self.services.setdefault(service.name, service)
                self._enqueue(service, request, first=True)
        return out

    def tick(self, now: float) -> Outgoing:
        out: Outgoing = []
        self._expire_workers(now, out)
        self._expire_requests(now, out)
        if now >= self._next_heartbeat:
            self._send_heartbeats(out)
            self._next_heartbeat = now + self.config.heartbeat_interval
        return out

    def next_tick(self, now: float) -> float:
        """When ``tick`` should run next (at most one tick period away)."""
        return min(now + self._tick_period, self._next_heartbeat)

    def set_policy(self, policy: Policy | None) -> None:
        """Decide with ``policy`` from now on (keys or configuration changed)."""
        self.policy = policy

    def revoke(self, principals: Collection[str], now: float) -> Outgoing:
        """S5: disconnect the workers of ``principals`` and drop their queued requests."""
        out: Outgoing = []
        for worker in [w for w in self.workers.values() if w.principal in principals]:
            log.warning(
                "disconnecting worker %s of %s: its key was revoked",
                worker.service.label,
                worker.principal,
            )
            self._send_disconnect(worker.identity, worker.version, out)
            self._remove_worker(worker, now, out)
        for service in list(self.services.values()):
            dropped = service.drop(lambda request: request.principal in principals)
            if dropped:
                self.errors["broker.revoked"] = self.errors.get("broker.revoked", 0) + len(dropped)
            self.queued -= len(dropped)
            self.queued_bytes -= sum(request.size for request in dropped)
            self._forget_if_unused(service)
        return out

    def shutdown(self) -> Outgoing:
        """DISCONNECT every worker (orderly stop); they will re-register with the next broker."""
        out: Outgoing = []
        for worker in list(self.workers.values()):
            self._send_disconnect(worker.identity, worker.version, out)
        self.workers.clear()
        return out

    # -- clients ----------------------------------------------------------------------------

    def _client_request(
        self,
        sender: bytes,
        version: Version,
        name: bytes,
        body: list[bytes],
        *,
        now: float,
        out: Outgoing,
        principal: str | None = None,
    ) -> None:
        counters = self.counters
        counters.requests += 1
        try:
            self.requests_by_service[name] += 1
        except KeyError:
            self._count_new_service(name)
        if name.startswith(b"mmi."):
            counters.mmi_requests += 1
            reply = _mmi.answer(self, name, body, now)
            self._reply_to_client(sender, version, name, reply, out)
            self._count_reply(name)
            return
        policy, audited, address, via = self.policy, False, sender, None
        if policy is not None and body[0][:1] == b"@" and len(body) > 1:
            on_behalf = body[0][1:].decode("utf-8", "replace")
            refusal = policy.check_act_for(principal, on_behalf)
            if refusal is not None:
                what = target(name, body[1:])
                self._deny(
                    sender, version, name, out, principal=principal, what=what, reason=refusal
                )
                return
            via, principal, body = f"via {principal or '-'}", on_behalf, body[1:]
        size = sum(map(len, body))
        if policy is not None:
            decision = policy.check_call(principal, name, body[0])
            if not decision.allowed:
                what, reason = target(name, body), decision.reason
                self._deny(
                    sender,
                    version,
                    name,
                    out,
                    principal=principal,
                    what=what,
                    reason=reason,
                    via=via,
                )
                return
            audited = decision.audited
            if policy.enforce and principal is not None:
                address = wrap_address(sender, principal)
        request = Request(
            sender,
            version,
            body,
            now + self.config.request_expiry,
            principal=principal,
            address=address,
            audit=audited,
            size=size,
            via=via,
        )
        if size > self.config.max_message_bytes:
            counters.rejected_too_large += 1
            text = (
                f"request body of {size} bytes exceeds broker.max_message_bytes "
                f"({self.config.max_message_bytes})"
            )
            self._fail(request, name, "broker.too-large", text, out)
            return
        service = self.services.get(name)
        if service is None:
            service = self.services[name] = Service(name)
        worker = service.pop_idle() if not service.requests else None
        if worker is not None:
            self._dispatch(worker, request, out)
            return
        full = self._queue_full(service, size)
        if full is not None:
            counters.rejected_queue_full += 1
            text = f"the queue for {service.label!r} is full: {full}; try again later"
            self._fail(request, name, "broker.queue-full", text, out)
            self._forget_if_unused(service)
            return
        self._enqueue(service, request)

    def _deny(
        self,
        sender: bytes,
        version: Version,
        name: bytes,
        out: Outgoing,
        *,
        principal: str | None,
        what: str,
        reason: str,
        via: str | None = None,
    ) -> None:
        """S2: answer ``broker.denied`` at once, count and audit it."""
        self.counters.denied += 1
        self._count_error("broker.denied")
        self.audit_events.append(denied_event(principal, "call", what, reason, via or "mdp"))
        self._reply_to_client(sender, version, name, error_body("broker.denied", reason), out)

    def _queue_full(self, service: Service, size: int) -> str | None:
        """Which bound (C2) a request of ``size`` body bytes would break, or None."""
        config = self.config
        if len(service.requests) >= config.max_queue_per_service:
            return (
                f"{len(service.requests)} requests wait for it "
                f"(broker.max_queue_per_service is {config.max_queue_per_service})"
            )
        if self.queued >= config.max_queued_total:
            return (
                f"{self.queued} requests wait in all "
                f"(broker.max_queued_total is {config.max_queued_total})"
            )
        if service.queued_bytes + size > config.max_queued_bytes_per_service:
            return (
                f"{service.queued_bytes} bytes wait for it and this request has {size} "
                f"(broker.max_queued_bytes_per_service is {config.max_queued_bytes_per_service})"
            )
        if self.queued_bytes + size > config.max_queued_bytes:
            return (
                f"{self.queued_bytes} bytes wait in all and this request has {size} "
                f"(broker.max_queued_bytes is {config.max_queued_bytes})"
            )
        return None

    def _enqueue(self, service: Service, request: Request, *, first: bool = False) -> None:
        if first:
            service.enqueue_first(request)
        else:
            service.enqueue(request)
        self.queued += 1
        self.queued_bytes += request.size
        self.queued_bytes_peak = max(self.queued_bytes_peak, self.queued_bytes)

    def _dequeue(self, service: Service) -> Request:
        request = service.dequeue()
        self.queued -= 1
        self.queued_bytes -= request.size
        return request

    def _fail(self, request: Request, service: bytes, code: str, text: str, out: Outgoing) -> None:
        """End ``request`` with a broker error (audited if the request is)."""
        self._count_error(code)
        if request.audit:
            self.audit_events.append(
                call_event(request.principal, service, request.body, code, request.via)
            )
        self._reply_to_client(request.client, request.version, service, error_body(code, text), out)

    def _count_error(self, code: str) -> None:
        errors = self.errors
        errors[code] = errors.get(code, 0) + 1

    def _count_new_service(self, name: bytes) -> None:
        """The first request for ``name``: counted under its name while fewer than
        MAX_COUNTED_SERVICES names are, else under OTHER_SERVICES."""
        counts = self.requests_by_service
        if len(counts) < MAX_COUNTED_SERVICES:
            counts[name] = 1
        else:
            counts[OTHER_SERVICES] = counts.get(OTHER_SERVICES, 0) + 1

    def _count_reply(self, name: bytes) -> None:
        replies = self.replies_by_service
        try:
            replies[name] += 1
        except KeyError:
            # Its request was counted first: under its name, or under OTHER_SERVICES.
            key = name if name in self.requests_by_service else OTHER_SERVICES
            replies[key] = replies.get(key, 0) + 1

    def _reply_to_client(
        self, client: bytes, version: Version, service: bytes, body: list[bytes], out: Outgoing
    ) -> None:
        if version is Version.V2:
            out.append([client, CLIENT_V2, b"\x03", service, *body])
        else:
            out.append([client, b"", CLIENT_V1, service, *body])

    # -- workers ----------------------------------------------------------------------------

    def _worker_message(
        self, sender: bytes, message: object, now: float, out: Outgoing, principal: str | None
    ) -> None:
        worker = self.workers.get(sender)
        if worker is not None:
            version_matches = getattr(message, "version", None) is worker.version
            if isinstance(message, WorkerReply) and version_matches:
                worker.expiry = now + self._expiry
                self._worker_reply(
                    worker, message.client, message.body, message.final, now=now, out=out
                )
                return
            if isinstance(message, Heartbeat) and version_matches:
                self.counters.heartbeats_received += 1
                worker.expiry = now + self._expiry
                return
            if isinstance(message, Disconnect):
                self._remove_worker(worker, now, out)
                log.info("worker %s for %r disconnected", sender.hex(), worker.service.label)
                return
            self._unexpected(
                sender,
                worker.version,
                f"{type(message).__name__} from a registered worker",
                out,
                worker=worker,
                now=now,
            )
            return
        if isinstance(message, WorkerReady):
            self._worker_ready(sender, message, now, out, principal)
        elif isinstance(message, Disconnect):
            pass  # a worker may disconnect before READY; there is nothing to forget
        else:
            version = getattr(message, "version", Version.V2)
            self._unexpected(sender, version, f"{type(message).__name__} from an unknown peer", out)

    def _worker_ready(
        self,
        sender: bytes,
        message: WorkerReady,
        now: float,
        out: Outgoing,
        principal: str | None,
    ) -> None:
        name = message.service
        if name.startswith(b"mmi."):
            self.counters.refused_mmi += 1
            log.warning("refused worker %s: %r is reserved for the broker", sender.hex(), name)
            self._send_disconnect(sender, message.version, out)
            return
        if self.policy is not None and not self.policy.may_serve(principal, name):
            self.counters.denied += 1
            reason = f"{principal or 'an unknown peer'} may not serve {name.decode()}"
            log.warning("refused worker %s: %s", sender.hex(), reason)
            self.audit_events.append(denied_event(principal, "register", name.decode(), reason))
            self._send_disconnect(sender, message.version, out)
            return
        service = self.services.get(name)
        if service is None:
            service = self.services[name] = Service(name)
        worker = Worker(sender, message.version, service, now + self._expiry, principal)
        self.workers[sender] = worker
        service.workers += 1
        self.counters.workers_registered += 1
        log.info(
            "worker %s ready for %r (MDP/0.%d)", sender.hex(), service.label, message.version.value
        )
        self._serve(worker, now, out)
        if worker.request is None:
            # Acknowledge at once with a HEARTBEAT (valid any time after READY): the worker
            # then knows it is registered, e.g. to tell systemd it is ready to serve.
            self._send_heartbeat(worker, out)

    def _worker_reply(
        self,
        worker: Worker,
        client: bytes,
        body: list[bytes],
        final: bool,
        *,
        now: float,
        out: Outgoing,
    ) -> None:
        request = worker.request
        if request is None or client != request.address:
            what = "a reply while idle" if request is None else "a reply for another client"
            self._unexpected(worker.identity, worker.version, what, out, worker=worker, now=now)
            return
        name = worker.service.name
        if not final:
            self.counters.partials += 1
            request.partial_sent = True
            if request.version is Version.V2:
                out.append([request.client, CLIENT_V2, b"\x02", name, *body])
            else:
                request.gather(body, self.config.max_message_bytes)
            return
        self.counters.replies += 1
        worker.request = None
        if request.audit:
            self.audit_events.append(
                call_event(request.principal, name, request.body, reply_result(body), request.via)
            )
        if request.version is Version.V2:
            out.append([request.client, CLIENT_V2, b"\x03", name, *body])
            try:
                self.replies_by_service[name] += 1
            except KeyError:
                self._count_reply(name)
        elif request.too_large:
            self._count_error("broker.too-large")
            self._reply_to_client(
                request.client,
                Version.V1,
                name,
                error_body(
                    "broker.too-large",
                    "the streamed reply exceeds broker.max_message_bytes and MDP/0.1 clients "
                    "take one reply",
                ),
                out,
            )
        else:
            gathered = request.gathered or []
            out.append([request.client, b"", CLIENT_V1, name, *gathered, *body])
            self._count_reply(name)
        self._serve(worker, now, out)

    def _serve(self, worker: Worker, now: float, out: Outgoing) -> None:
        """``worker`` is free: give it the next queued request, or make it idle."""
        if worker.service.requests:
            self._dispatch(worker, self._dequeue(worker.service), out)
        else:
            worker.service.push_idle(worker)

    def _dispatch(self, worker: Worker, request: Request, out: Outgoing) -> None:
        worker.request = request
        worker.sent_recently = True
        if worker.version is Version.V2:
            message = [worker.identity, WORKER_V2, _W2_REQUEST, request.address, b"", *request.body]
        else:
            message = [
                worker.identity, b"", WORKER_V1, _W1_REQUEST, request.address, b"", *request.body
            ]  # fmt: skip
        worker.dispatch = message
        out.append(message)

    def _remove_worker(self, worker: Worker, now: float, out: Outgoing) -> None:
        """Forget ``worker``; give its unfinished request another chance or an error (W6)."""
        del self.workers[worker.identity]
        service = worker.service
        service.workers -= 1
        service.discard_idle(worker)
        request, worker.request = worker.request, None
        if request is not None:
            self.counters.worker_lost += 1
            if request.partial_sent or request.attempts >= self.config.worker_loss_retries:
                text = (
                    f"the worker serving {service.label!r} was lost while "
                    f"handling the request (attempt {request.attempts + 1})"
                )
                self._fail(request, service.name, "broker.worker-lost", text, out)
            else:
                request.attempts += 1
                request.deadline = now + self.config.request_expiry
                self.counters.requeued += 1
                idle = service.pop_idle()
                if idle is not None:
                    self._dispatch(idle, request, out)
                else:
                    # At the head: it has waited longest. Its fresh deadline may sort after the
                    # ones behind it, which then expire at most one request_expiry late.
                    self._enqueue(service, request, first=True)
        self._forget_if_unused(service)

    def _forget_if_unused(self, service: Service) -> None:
        if service.workers == 0 and not service.requests:
            self.services.pop(service.name, None)

    # -- time -------------------------------------------------------------------------------

    def _expire_workers(self, now: float, out: Outgoing) -> None:
        for worker in [w for w in self.workers.values() if w.expiry <= now]:
            self.counters.workers_expired += 1
            log.warning(
                "worker %s for %r expired (no heartbeat for %.1f s)%s",
                worker.identity.hex(),
                worker.service.label,
                self._expiry,
                " while busy" if worker.request else "",
            )
            self._remove_worker(worker, now, out)

    def _expire_requests(self, now: float, out: Outgoing) -> None:
        for service in list(self.services.values()):
            requests = service.requests
            while requests and requests[0].deadline <= now:
                request = self._dequeue(service)
                self.counters.expired += 1
                expiry = self.config.request_expiry
                if service.workers == 0:
                    code = "broker.no-worker"
                    text = f"no worker for {service.label!r} registered within {expiry:g} s"
                else:
                    code = "broker.expired"
                    text = (
                        f"no worker of {service.label!r} became free within {expiry:g} s "
                        f"({service.workers} registered, all busy)"
                    )
                self._fail(request, service.name, code, text, out)
            self._forget_if_unused(service)

    def _send_heartbeats(self, out: Outgoing) -> None:
        for worker in self.workers.values():
            if worker.sent_recently:
                worker.sent_recently = False
            else:
                self._send_heartbeat(worker, out)
                worker.sent_recently = False

    def _send_heartbeat(self, worker: Worker, out: Outgoing) -> None:
        self.counters.heartbeats_sent += 1
        worker.sent_recently = True
        if worker.version is Version.V2:
            out.append([worker.identity, WORKER_V2, _W2_HEARTBEAT])
        else:
            out.append([worker.identity, b"", WORKER_V1, _W1_HEARTBEAT])

    # -- errors -----------------------------------------------------------------------------

    def _too_many_frames(
        self, sender: bytes, head: list[bytes], count: int, now: float, out: Outgoing
    ) -> None:
        """F1: answer a client request with an error; anything else is malformed."""
        limit = self.config.max_frames
        version = _client_request_version(head)
        if version is None:
            self._malformed(sender, f"{count} frames (broker.max_frames is {limit})", now, out)
            return
        self.counters.rejected_too_many_frames += 1
        service = head[2]
        try:
            self.requests_by_service[service] += 1
        except KeyError:
            self._count_new_service(service)
        self._count_error("broker.too-many-frames")
        text = f"the request has {count} frames; broker.max_frames is {limit}"
        self._reply_to_client(
            sender, version, service, error_body("broker.too-many-frames", text), out
        )

    def _malformed(self, sender: bytes, reason: str, now: float, out: Outgoing) -> None:
        self.counters.malformed += 1
        self._count_error("broker.malformed")
        if self.counters.malformed <= 10 or self.counters.malformed % 1000 == 0:
            log.warning(
                "dropped malformed message from %s: %s (%d so far)",
                sender.hex(),
                reason,
                self.counters.malformed,
            )
        worker = self.workers.get(sender)
        if worker is not None:
            self._send_disconnect(sender, worker.version, out)
            self._remove_worker(worker, now, out)

    def _unexpected(
        self,
        sender: bytes,
        version: Version,
        what: str,
        out: Outgoing,
        *,
        worker: Worker | None = None,
        now: float = 0.0,
    ) -> None:
        self.counters.unexpected += 1
        log.info("disconnecting %s: %s", sender.hex(), what)
        self._send_disconnect(sender, version, out)
        if worker is not None:
            self._remove_worker(worker, now, out)

    def _send_disconnect(self, identity: bytes, version: Version, out: Outgoing) -> None:
        self.counters.disconnects_sent += 1
        if version is Version.V2:
            out.append([identity, WORKER_V2, _W2_DISCONNECT])
        else:
            out.append([identity, b"", WORKER_V1, _W1_DISCONNECT])


def _client_request_version(head: list[bytes]) -> Version | None:
    """The MDP version of a client REQUEST starting with ``head``, or None if it is not one."""
    if len(head) < 3 or not is_valid_service_name(head[2]):
        return None
    if head[0] == CLIENT_V2 and head[1] == b"\x01":
        return Version.V2
    if head[0] == b"" and head[1] == CLIENT_V1:
        return Version.V1
    return None
