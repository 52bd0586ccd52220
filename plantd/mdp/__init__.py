"""Sans-IO Majordomo: the MDP/0.2 (RFC 18) and MDP/0.1 (RFC 7) codec, the broker, worker and
client state machines, and MMI (RFC 8). No sockets, no clocks: frames and ``now`` in, frames out.
"""

from __future__ import annotations

from plantd.mdp._broker import Broker, Outgoing, error_body
from plantd.mdp._client import ClientProtocol, ReplyReceived
from plantd.mdp._frames import (
    CLIENT_V1,
    CLIENT_V2,
    WORKER_V1,
    WORKER_V2,
    ClientReply,
    ClientRequest,
    Disconnect,
    Heartbeat,
    Message,
    Version,
    WorkerReady,
    WorkerReply,
    WorkerRequest,
    decode,
    encode,
    is_valid_service_name,
)
from plantd.mdp._state import BrokerCounters
from plantd.mdp._worker import RequestReceived, TickResult, WorkerProtocol, WorkerState

__all__ = [
    "CLIENT_V1",
    "CLIENT_V2",
    "WORKER_V1",
    "WORKER_V2",
    "Broker",
    "BrokerCounters",
    "ClientProtocol",
    "ClientReply",
    "ClientRequest",
    "Disconnect",
    "Heartbeat",
    "Message",
    "Outgoing",
    "ReplyReceived",
    "RequestReceived",
    "TickResult",
    "Version",
    "WorkerProtocol",
    "WorkerReady",
    "WorkerReply",
    "WorkerRequest",
    "WorkerState",
    "decode",
    "encode",
    "error_body",
    "is_valid_service_name",
]
