"""The ZAP handler (ZeroMQ RFC 27): libzmq asks it whether a CURVE client key may connect.

libzmq does the cryptography. During each handshake on a socket with ``curve_server`` set, it
sends this handler, over ``inproc://zeromq.zap.01`` in the same context, the client's public
key and address; the handler answers 200 with the principal as User-Id (which then rides on
every message of that connection) or 400. :func:`answer` is the decision, sans-IO;
:class:`Gatekeeper` is the thread that serves it and watches the keys directory, so that a key
added, revoked or rotated takes effect without a restart.

Request frames: version ``1.0``, request id, domain, address, routing id, mechanism, then the
mechanism's credentials (CURVE: the client's 32-byte public key). Reply frames: version,
request id, status code, status text, user id, metadata.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import zmq
from zmq.utils import z85

from plantd.security._audit_event import UNKNOWN_PRINCIPAL, AuditEvent
from plantd.security._keyring import KeyRing, fingerprint, load_keyring

__all__ = ["ZAP_ENDPOINT", "Gatekeeper", "answer"]

log = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
_VERSION = b"1.0"


def answer(frames: list[bytes], keyring: KeyRing) -> tuple[list[bytes], AuditEvent | None]:
    """The reply to one ZAP request, and the audit event of a refusal (None if admitted)."""
    if len(frames) < 6 or frames[0] != _VERSION:
        request_id = frames[1] if len(frames) > 1 else b""
        reply = [_VERSION, request_id, b"500", b"malformed ZAP request", b"", b""]
        return reply, None
    request_id, domain, address, mechanism = frames[1], frames[2], frames[3], frames[5]
    source = address.decode("ascii", "replace")
    if mechanism != b"CURVE" or len(frames) != 7 or len(frames[6]) != 32:
        why = f"{mechanism.decode('ascii', 'replace')} mechanism (plantd takes CURVE only)"
        return _refuse(request_id, why, domain, source)
    key = z85.encode(frames[6])
    entry = keyring.by_key.get(key)
    if entry is None:
        whose = keyring.revoked.get(key)
        why = f"revoked key of {whose}" if whose else f"unknown key {key.decode()}"
        return _refuse(request_id, why, domain, source)
    return [_VERSION, request_id, b"200", b"OK", entry.principal.encode(), b""], None


def _refuse(
    request_id: bytes, why: str, domain: bytes, source: str
) -> tuple[list[bytes], AuditEvent]:
    event = AuditEvent(
        UNKNOWN_PRINCIPAL,
        "connect",
        domain.decode("ascii", "replace"),
        "denied",
        detail=why,
        source=source,
    )
    return [_VERSION, request_id, b"400", why.encode()[:255], b"", b""], event


class Gatekeeper:
    """A thread that answers ZAP requests and re-reads the keys directory when it changes.

    ``on_keyring(old, new)`` runs in this thread after every change (and once at start, with
    ``old`` None); ``on_audit`` gets every refusal. Start it before binding any CURVE socket:
    a handshake that finds no handler fails.
    """

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        keys_dir: Path,
        on_keyring: Callable[[KeyRing | None, KeyRing], None],
        on_audit: Callable[[AuditEvent], None],
        *,
        poll_interval: float = 0.25,
    ) -> None:
        self.keys_dir = keys_dir
        self.keyring = KeyRing()
        self._context = context
        self._on_keyring = on_keyring
        self._on_audit = on_audit
        self._poll_interval = poll_interval
        self._stamp: tuple[tuple[str, int, int], ...] | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.admitted = 0
        self.refused = 0

    def start(self) -> KeyRing:
        """Read the keys, bind the handler, and return the key ring it starts with."""
        self._reload()
        self._thread = threading.Thread(target=self._run, name="plantd-zap", daemon=True)
        self._thread.start()
        self._ready.wait()
        return self.keyring

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _reload(self) -> None:
        stamp = fingerprint(self.keys_dir)
        if stamp == self._stamp:
            return
        old = self.keyring if self._stamp is not None else None
        self.keyring = load_keyring(self.keys_dir)
        self._stamp = stamp  # only once read: a failed read is tried again
        for problem in self.keyring.problems:
            log.error("key not admitted: %s", problem)
        log.info("%d principal(s) admitted from %s", len(self.keyring.by_principal), self.keys_dir)
        self._on_keyring(old, self.keyring)

    def _run(self) -> None:
        handler = self._context.socket(zmq.REP)
        handler.linger = 0
        bound = False
        try:
            handler.bind(ZAP_ENDPOINT)
            bound = True
        finally:
            self._ready.set()
        next_check = time.monotonic() + self._poll_interval
        try:
            while not self._stop.is_set():
                wait_ms = max(0, int((next_check - time.monotonic()) * 1000))
                if handler.poll(wait_ms, zmq.POLLIN):
                    handler.send_multipart(self._answer(handler.recv_multipart()))
                if time.monotonic() >= next_check:  # also under a flood of handshakes
                    self._reload_safely()
                    next_check = time.monotonic() + self._poll_interval
        except zmq.ContextTerminated:
            bound = False  # the context is gone, and the endpoint with it
        finally:
            # Unbinding an inproc endpoint is done at once; closing the socket frees it only
            # when libzmq's reaper gets to it, so a Gatekeeper started right after this one
            # stopped could find the endpoint still taken.
            if bound:
                with contextlib.suppress(zmq.ZMQError):
                    handler.unbind(ZAP_ENDPOINT)
            handler.close(linger=0)

    def _answer(self, frames: list[bytes]) -> list[bytes]:
        try:
            reply, refusal = answer(frames, self.keyring)
        except Exception:  # the supervisor edge: refuse this one, keep serving
            log.exception("the ZAP handler failed on a request; refused it")
            return [_VERSION, frames[1] if len(frames) > 1 else b"", b"500", b"error", b"", b""]
        if refusal is not None:
            self.refused += 1
            self._on_audit(refusal)
        elif reply[2] == b"200":
            self.admitted += 1
        return reply

    def _reload_safely(self) -> None:
        try:
            self._reload()
        except Exception:  # the supervisor edge: keep the key ring we have
            log.exception(
                "could not re-read the keys in %s; keeping the previous ones", self.keys_dir
            )
