"""What the clients conclude from an MMI probe or a broker error, and the exit status each
``plant`` error gets (docs/errors.md)."""

from __future__ import annotations

import json

import pytest

from plantd.cli import NO_BROKER, NO_WORKER, exit_status
from plantd.client._verdicts import presence_verdict, retry_after, service_hint
from plantd.errors import NoBroker, NoWorker, RemoteProtocolError, RequestTimeout, ServiceError

ENDPOINT = "tcp://127.0.0.1:9797"


def error_reply(code: str) -> list[bytes]:
    return [json.dumps({"ok": False, "error": {"code": code, "message": "m"}}).encode()]


def test_silence_is_no_broker() -> None:
    with pytest.raises(NoBroker, match=r"no broker at tcp://127\.0\.0\.1:9797 .*plantd-broker"):
        presence_verdict(None, "org.plantd.State", ENDPOINT, 1.0)


def test_404_is_no_worker_with_the_program_to_start() -> None:
    with pytest.raises(NoWorker) as caught:
        presence_verdict([b"404"], "org.plantd.Historian", ENDPOINT, 1.0)
    assert str(caught.value) == (
        "no worker serves org.plantd.Historian (is plantd-historian running?)"
    )


def test_200_is_someone_there_and_anything_else_a_protocol_error() -> None:
    presence_verdict([b"200"], "org.plantd.State", ENDPOINT, 1.0)
    with pytest.raises(RemoteProtocolError):
        presence_verdict([b"500"], "org.plantd.State", ENDPOINT, 1.0)


def test_hints_name_modules_and_sinks() -> None:
    assert "plantd-module@pump1" in service_hint("org.plantd.module.pump1")
    assert "plantd-sink@mqtt" in service_hint("org.plantd.sink.mqtt")
    assert "plant mmi services" in service_hint("org.example.Other")


def test_only_a_lost_worker_is_retried() -> None:
    assert retry_after(error_reply("broker.worker-lost"))
    for code in ("broker.no-worker", "broker.expired", "state.conflict", "worker-lost"):
        assert not retry_after(error_reply(code))
    assert not retry_after([b'{"ok": true, "result": 1}'])
    assert not retry_after([b"not json", b"two frames"])
    assert not retry_after([b"[" * 100_000])


def test_exit_statuses() -> None:
    assert exit_status(NoBroker(ENDPOINT, 1.0)) == NO_BROKER == 3
    assert exit_status(NoWorker("org.plantd.State", "hint")) == NO_WORKER == 4
    assert exit_status(RequestTimeout("org.plantd.State", 4, 5.0)) == 1
    assert exit_status(ServiceError("broker.worker-lost", "m")) == 1
