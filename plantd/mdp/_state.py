"""The broker's bookkeeping: requests, workers, services and counters (plain records)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

from plantd.mdp._frames import Version

__all__ = ["BrokerCounters", "Request", "Service", "Worker"]


class Request:
    """A client request, queued or being handled."""

    __slots__ = (
        "address",
        "attempts",
        "audit",
        "body",
        "client",
        "deadline",
        "gathered",
        "partial_sent",
        "principal",
        "size",
        "too_large",
        "version",
        "via",
    )

    def __init__(
        self,
        client: bytes,
        version: Version,
        body: list[bytes],
        deadline: float,
        *,
        principal: str | None = None,
        address: bytes | None = None,
        audit: bool = False,
        size: int | None = None,
        via: str | None = None,
    ) -> None:
        self.client = client  # the ROUTER routing id replies go to
        self.version = version
        self.body = body
        self.size = sum(map(len, body)) if size is None else size  # body bytes, for the bounds
        self.deadline = deadline
        self.principal = principal
        # What the worker sees as the client address (the routing id, with the principal
        # packed in under CURVE: see _address); its reply must name the same.
        self.address = client if address is None else address
        self.audit = audit  # recorded in the audit trail when it ends
        self.via = via  # "via <principal>": a delegate made it for ``principal``
        self.attempts = 0  # times re-queued after losing its worker
        self.partial_sent = False  # a PARTIAL reached the client: it cannot be re-run
        # PARTIAL bodies kept for an MDP/0.1 client (one REPLY); created on the first PARTIAL,
        # and dropped (``too_large``) once over the limit.
        self.gathered: list[bytes] | None = None
        self.too_large = False

    def gather(self, body: list[bytes], limit: int) -> None:
        if self.too_large:
            return
        if self.gathered is None:
            self.gathered = []
        self.gathered.extend(body)
        if sum(map(len, self.gathered)) > limit:
            self.gathered = None
            self.too_large = True


class Worker:
    """A registered worker; ``request`` is set while it is busy."""

    __slots__ = (
        "dispatch",
        "expiry",
        "identity",
        "principal",
        "request",
        "sent_recently",
        "service",
        "version",
    )

    def __init__(
        self,
        identity: bytes,
        version: Version,
        service: Service,
        expiry: float,
        principal: str | None = None,
    ) -> None:
        self.identity = identity
        self.principal = principal
        self.version = version
        self.service = service
        self.expiry = expiry
        self.request: Request | None = None
        self.dispatch: list[bytes] | None = None  # the message that handed it ``request``
        self.sent_recently = False  # a command went to it this heartbeat interval


class Service:
    """A named queue of requests and the pool of its idle workers, least recently used first.

    ``queued_bytes`` is the body size of the queued requests; change ``requests`` only through
    ``enqueue``, ``enqueue_first``, ``dequeue`` and ``drop`` so that it stays true.

    Removing a worker from the middle of a deque is O(n), so idle workers that go away are
    only marked and skipped when they reach the front; the deque is compacted when more than
    half of it is stale, which keeps its memory proportional to the live idle workers.
    """

    __slots__ = ("_idle", "_idle_live", "label", "name", "queued_bytes", "requests", "workers")

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.label = name.decode("ascii")
        self.requests: deque[Request] = deque()
        self.queued_bytes = 0
        self.workers = 0  # registered, idle or busy
        self._idle: deque[Worker] = deque()
        self._idle_live: set[Worker] = set()

    def enqueue(self, request: Request) -> None:
        self.requests.append(request)
        self.queued_bytes += request.size

    def enqueue_first(self, request: Request) -> None:
        self.requests.appendleft(request)
        self.queued_bytes += request.size

    def dequeue(self) -> Request:
        request = self.requests.popleft()
        self.queued_bytes -= request.size
        return request

    def drop(self, unwanted: Callable[[Request], bool]) -> list[Request]:
        """Take the requests ``unwanted`` picks out of the queue; return them."""
        dropped = [r for r in self.requests if unwanted(r)]
        if dropped:
            kept = [r for r in self.requests if not unwanted(r)]
            self.requests.clear()
            self.requests.extend(kept)
            self.queued_bytes -= sum(r.size for r in dropped)
        return dropped

    @property
    def idle(self) -> int:
        return len(self._idle_live)

    def push_idle(self, worker: Worker) -> None:
        self._idle.append(worker)
        self._idle_live.add(worker)

    def pop_idle(self) -> Worker | None:
        idle, live = self._idle, self._idle_live
        while idle:
            worker = idle.popleft()
            if worker in live:
                live.discard(worker)
                return worker
        return None

    def discard_idle(self, worker: Worker) -> None:
        self._idle_live.discard(worker)
        if len(self._idle) > 2 * len(self._idle_live) + 8:
            self._idle = deque(w for w in self._idle if w in self._idle_live)


@dataclass(slots=True)
class BrokerCounters:
    """Monotonic counters since the broker started (reported by ``mmi.broker``)."""

    requests: int = 0
    replies: int = 0
    partials: int = 0
    mmi_requests: int = 0
    malformed: int = 0
    unexpected: int = 0
    disconnects_sent: int = 0
    heartbeats_sent: int = 0
    heartbeats_received: int = 0
    workers_registered: int = 0
    workers_expired: int = 0
    workers_gone: int = 0  # dropped when a send found their connection closed (W7)
    worker_lost: int = 0
    requeued: int = 0
    expired: int = 0
    rejected_queue_full: int = 0
    rejected_too_large: int = 0
    rejected_too_many_frames: int = 0
    refused_mmi: int = 0
    denied: int = 0  # calls and registrations the security policy refused

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
