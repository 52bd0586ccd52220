"""The baseline hop: the ZeroMQ guide's load-balancing broker, and nothing more.

    python bench/relay.py FRONT BACK

Clients (DEALER) connect to FRONT, workers (DEALER speaking like REQ) to BACK. Frames as seen
by the relay (identity first):

    worker → BACK    worker . READY                  register: the worker is free
                     worker . client . body          a reply: forward it, the worker is free
    client → FRONT   client . body                   a request
    BACK → worker    worker . client . body          handed to the least recently freed worker
    FRONT → client   client . body

One request per worker at a time: FRONT is read only while some worker is free, so requests
wait in libzmq's queues as they would in the guide's ``lbbroker``. There is no protocol check,
no service name, no heartbeat, no expiry: this is the floor of a Python hop with Majordomo's
dispatch rule. Its I/O loop is the broker's (one poll per wake-up, then drain each readable
socket while ``EVENTS`` says there is more, up to a batch; frames received and sent one at a
time with int flags, as plantd/broker/_server.py does), so that plantd ÷ relay measures the MDP
work and nothing else.

It prints ``relay ready on FRONT BACK`` (as bound: either may be a wildcard, ``tcp://HOST:*``)
once both ends are bound, and runs until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import signal
import sys
from collections import deque

import zmq

_BATCH = 256  # as the broker: messages handled per socket per wake-up
_SNDMORE, _RCVMORE = int(zmq.SNDMORE), int(zmq.RCVMORE)
_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)


def _sender(sock: zmq.Socket[bytes]):  # type: ignore[no-untyped-def]
    send = sock.send

    def send_message(message: list[bytes]) -> None:
        for frame in message[:-1]:
            send(frame, _SNDMORE)
        send(message[-1])

    return send_message


def _receiver(sock: zmq.Socket[bytes]):  # type: ignore[no-untyped-def]
    recv, get = sock.recv, sock.get

    def recv_message() -> list[bytes]:
        frames = [recv()]
        while get(_RCVMORE):
            frames.append(recv())
        return frames

    return recv_message


def serve(front: zmq.Socket[bytes], back: zmq.Socket[bytes]) -> None:
    free: deque[bytes] = deque()  # worker identities, least recently freed first
    both, back_only = zmq.Poller(), zmq.Poller()
    both.register(back, zmq.POLLIN)
    both.register(front, zmq.POLLIN)
    back_only.register(back, zmq.POLLIN)
    send_front, send_back = _sender(front), _sender(back)
    recv_front, recv_back = _receiver(front), _receiver(back)
    while True:
        ready = dict((both if free else back_only).poll())
        if back in ready:
            for _ in range(_BATCH):
                frames = recv_back()
                free.append(frames[0])
                if len(frames) > 3:  # worker . client . body: a reply
                    send_front(frames[2:])
                if not back.get(_EVENTS) & _POLLIN:  # type: ignore[operator]
                    break
        if front in ready:
            for _ in range(_BATCH):
                if not free:
                    break
                frames = recv_front()
                send_back([free.popleft(), b"", *frames])
                if not front.get(_EVENTS) & _POLLIN:  # type: ignore[operator]
                    break


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python bench/relay.py FRONT BACK", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    context = zmq.Context()
    front, back = context.socket(zmq.ROUTER), context.socket(zmq.ROUTER)
    try:
        front.bind(argv[0])
        back.bind(argv[1])
        # As bound: FRONT and BACK may be wildcards (tcp://127.0.0.1:*), the caller reads these.
        bound = (sock.getsockopt_string(zmq.LAST_ENDPOINT) for sock in (front, back))
        print("relay ready on {} {}".format(*bound), flush=True)
        serve(front, back)
    except KeyboardInterrupt:
        pass
    finally:
        front.close(linger=0)
        back.close(linger=0)
        context.term()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
