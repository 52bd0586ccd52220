"""Alarm events upstream (issue 18), each against a real upstream with a real sink process and
records published on the real bus (``event.alarm.<alarm>``, as plantd-control publishes them):

- plain MQTT (a private Mosquitto): every record arrives once at least, in order, as the
  record's JSON, through a broker outage during which the sink is also killed (-9) and
  restarted; a jump in an alarm's seq is counted;
- a jump in an alarm's seq is filled from the alarm history (a stand-in
  ``org.plantd.Alarms`` worker in this process), and what it has not is counted as missed;
- Sparkplug B (a private Mosquitto): an alarm's first record births it in the NBIRTH, its
  records come as NDATA by alias, and after a restart the NBIRTH declares it at once;
- PostgreSQL (through the TCP proxy): every record once in the events table across an outage.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from plantd.bus import BusPublisher
from plantd.config import load_config
from plantd.service import ServiceDefinition, ServiceWorker
from plantd.sinks.mqtt._sparkplug import DataType, Payload, decode_payload
from plantd.testing import ManagedProcess, wait_for_workers
from tests.conftest import Stack
from tests.integration.sinks._helpers import (
    Mosquitto,
    MqttCollector,
    TcpProxy,
    plant_json,
    start_sink,
    wait_until,
    write_file,
)

DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres"


def record(alarm: str, seq: int, state: str = "unacknowledged") -> dict[str, Any]:
    """An ``event.alarm.<alarm>`` record with every key of the contract (CONTROL.md §2)."""
    return {
        "alarm": alarm, "point": "field.level", "type": "high", "priority": "high",
        "message": f"{alarm} high", "state": state, "active": state != "normal",
        "acknowledged": state == "acknowledged", "shelved": False, "shelved_until": None,
        "suppressed": False, "transition": "raised", "value": 4.5 + seq / 100, "limit": 4.5,
        "time": 1_700_000_000.0 + seq, "sample_time": 1_700_000_000.0 + seq, "by": None,
        "comment": "", "seq": seq,
    }  # fmt: skip


def publisher_for(stack: Stack) -> BusPublisher:
    return BusPublisher(load_config(stack.config_dir, {}).bus.frontend)


def until_taken(publisher: BusPublisher, arrived: Callable[[], bool]) -> None:
    """Publish ``event.alarm.probe`` records until one arrives upstream: the sink's
    subscription is through (a record published before it would not reach the sink)."""
    seqs = itertools.count(1)

    def probe() -> bool:
        publisher.publish_record("event.alarm.probe", record("probe", next(seqs)))
        return arrived()

    assert wait_until(probe, 15)


def mqtt_sink(port: int, extra: str = "") -> str:
    return f"""
type: mqtt
reconnect_initial: 200ms
reconnect_max: 1s
repair: {{enabled: false}}
mqtt:
  port: {port}
  ack_timeout: 5s
  connect_timeout: 2s
  event_topic: "t/events/{{kind}}/{{subject}}"
{extra}"""


def received(collector: MqttCollector, topic: str) -> list[dict[str, Any]]:
    with collector.lock:
        return [json.loads(p) for t, p in collector.raw if t == topic]


@pytest.mark.timeout(120)
def test_plain_mqtt_events_survive_an_outage_and_a_kill(stack: Stack) -> None:
    stack.start_broker()
    broker = Mosquitto(stack.log_dir / "mosquitto")
    broker.start()
    stack.processes.append(broker.process)
    collector = MqttCollector(broker.port, "t/events/#", "events-collector")
    assert collector.subscribed.wait(10)
    publisher = publisher_for(stack)
    try:
        write_file(stack, "sinks.d", "up", mqtt_sink(broker.port))
        sink = start_sink(stack, "up")
        until_taken(publisher, lambda: bool(received(collector, "t/events/alarm/probe")))
        for seq in range(1, 6):
            publisher.publish_record("event.alarm.tank-high", record("tank-high", seq))
        topic = "t/events/alarm/tank-high"
        assert wait_until(lambda: len(received(collector, topic)) >= 5, 15)

        broker.stop()
        for seq in range(6, 16):
            publisher.publish_record("event.alarm.tank-high", record("tank-high", seq))
        assert wait_until(
            lambda: plant_json(stack, "sink", "status", "up")["queue"]["events"] == 10, 15
        )
        sink.kill()  # -9 with the ten queued: they must be on disk
        sink.start()
        wait_for_workers(stack.endpoint, "org.plantd.sink.up")
        assert plant_json(stack, "sink", "status", "up")["queue"]["events"] == 10
        broker.start()
        assert wait_until(lambda: len({r["seq"] for r in received(collector, topic)}) == 15, 30)
        seen = received(collector, topic)
        assert seen[0] == record("tank-high", 1)  # the record itself, as JSON
        firsts = list(dict.fromkeys(r["seq"] for r in seen))
        assert firsts == list(range(1, 16))  # in order

        # A jump in the alarm's numbering: taken, counted, announced.
        publisher.publish_record("event.alarm.tank-high", record("tank-high", 18))
        assert wait_until(lambda: 18 in {r["seq"] for r in received(collector, topic)}, 15)
        assert wait_until(  # repair disabled: counted at the next round
            lambda: plant_json(stack, "sink", "status", "up")["counters"]["events_missed"] == 2,
            10,
        )
        status = plant_json(stack, "sink", "status", "up")
        counters = status["counters"]
        assert counters["events_dropped"] == 0
        assert counters["events_delivered"] >= 16
        assert counters["events_taken"] >= 16
        assert status["queue"]["events"] == 0
        assert status["events"]["prefixes"] == ["event.alarm."]
        shown = subprocess.run(
            [sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir), "sink",
             "status", "up"], capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
        assert "events      event.alarm.: 0 queued" in shown
        assert "missed 2" in shown
        assert status["upstream"]["events_sent"] >= 1
    finally:
        publisher.close()
        collector.close()


async def test_a_jump_is_filled_from_the_alarm_history(stack: Stack) -> None:
    stack.start_broker()
    broker = Mosquitto(stack.log_dir / "mosquitto")
    broker.start()
    stack.processes.append(broker.process)
    collector = MqttCollector(broker.port, "t/events/#", "repair-collector")
    assert collector.subscribed.wait(10)
    # The alarm history: seqs 2 and 3 of tank-high (the bus lost them), not 5.
    history = [record("tank-high", seq) for seq in (1, 2, 3, 4)]
    asked: list[dict[str, Any]] = []
    alarms = ServiceDefinition("org.plantd.Alarms", "stand-in alarm history")

    @alarms.operation("history", access="read")
    async def _history(params: dict[str, Any]) -> Any:
        asked.append(params)
        return [
            r for r in reversed(history)  # newest first, as plantd-control answers
            if r["alarm"] == params["alarm"] and params["since"] <= r["time"] < params["until"]
        ]  # fmt: skip

    worker = ServiceWorker(alarms, load_config(stack.config_dir, {}))
    serving = asyncio.create_task(worker.run())
    publisher = publisher_for(stack)
    try:
        await asyncio.to_thread(wait_for_workers, stack.endpoint, "org.plantd.Alarms")
        write_file(stack, "sinks.d", "up", mqtt_sink(broker.port).replace(
            "repair: {enabled: false}", "repair: {timeout: 3s}"
        ))  # fmt: skip
        await asyncio.to_thread(start_sink, stack, "up")
        await asyncio.to_thread(
            until_taken, publisher, lambda: bool(received(collector, "t/events/alarm/probe"))
        )
        topic = "t/events/alarm/tank-high"
        publisher.publish_record("event.alarm.tank-high", record("tank-high", 1))
        publisher.publish_record("event.alarm.tank-high", record("tank-high", 4))

        def seqs() -> set[int]:
            return {r["seq"] for r in received(collector, topic)}

        assert await asyncio.to_thread(wait_until, lambda: seqs() == {1, 2, 3, 4}, 15)
        assert [a["alarm"] for a in asked] == ["tank-high"]
        assert received(collector, topic)[-2:] == [record("tank-high", 2), record("tank-high", 3)]
        status = await asyncio.to_thread(plant_json, stack, "sink", "status", "up")
        assert status["counters"]["events_repaired"] == 2
        assert (status["counters"]["events_missed"], status["open_event_gaps"]) == (0, 0)

        # Seq 5 is in no history: after repair.timeout it is counted as missed.
        publisher.publish_record("event.alarm.tank-high", record("tank-high", 6))

        def missed() -> int:
            return int(plant_json(stack, "sink", "status", "up")["counters"]["events_missed"])

        assert await asyncio.to_thread(wait_until, lambda: missed() == 1, 15)
        assert 6 in seqs()
    finally:
        publisher.close()
        collector.close()
        worker.stop()
        await serving


def sparkplug_messages(collector: MqttCollector) -> list[tuple[str, Payload]]:
    with collector.lock:
        return [(t.split("/", 2)[2], decode_payload(p)) for t, p in collector.raw]


def node_values(collector: MqttCollector) -> list[tuple[str, object, int | None]]:
    """``(metric name, value, timestamp)`` of every NDATA metric, named through the aliases of
    the NBIRTH before it."""
    names: dict[int, str] = {}
    values = []
    for kind, payload in sparkplug_messages(collector):
        if kind == "NBIRTH/edge":
            names = {m.alias: m.name for m in payload.metrics if m.alias and m.name}
        elif kind == "NDATA/edge":
            assert all(m.name is None for m in payload.metrics)  # by alias only
            values += [(names[m.alias], m.value, m.timestamp) for m in payload.metrics if m.alias]
    return values


@pytest.mark.timeout(120)
def test_sparkplug_alarm_metrics(stack: Stack) -> None:
    stack.start_broker()
    broker = Mosquitto(stack.log_dir / "mosquitto")
    broker.start()
    stack.processes.append(broker.process)
    collector = MqttCollector(broker.port, "spBv1.0/alarms/#", "spb-alarms-collector")
    assert collector.subscribed.wait(10)
    publisher = publisher_for(stack)
    try:
        write_file(stack, "sinks.d", "edge", mqtt_sink(
            broker.port, "  format: sparkplug\n  sparkplug: {group_id: alarms}\n"
        ))  # fmt: skip
        sink = start_sink(stack, "edge")

        def ndata() -> list[Payload]:
            return [p for t, p in sparkplug_messages(collector) if t == "NDATA/edge"]

        until_taken(publisher, lambda: bool(ndata()))
        publisher.publish_record("event.alarm.tank-high", record("tank-high", 1))
        publisher.publish_record(
            "event.alarm.tank-high", record("tank-high", 2, state="acknowledged")
        )

        def tank_states() -> list[object]:
            return [v for name, v, _ in node_values(collector) if name == "Alarms/tank-high/State"]

        assert wait_until(lambda: len(tank_states()) >= 2, 15)
        seen = sparkplug_messages(collector)
        kinds = [t for t, _ in seen]
        assert kinds[0] == "NBIRTH/edge"
        # seq: 0 at every NBIRTH (the first, and each birth of a new alarm), then one up.
        expected = 0
        for kind, payload in seen:
            expected = 0 if kind == "NBIRTH/edge" else (expected + 1) % 256
            assert payload.seq == expected, (kind, payload.seq, expected)
        # Born at connect; born again for each alarm not declared yet: the probe (unless it
        # was queued before the sink connected, and so born with it) and tank-high. (Every
        # NDATA metric's alias is declared by the birth before it: node_values looks it up.)
        assert kinds.count("NBIRTH/edge") in (2, 3), kinds
        births = [p for t, p in seen if t == "NBIRTH/edge"]
        assert "Alarms/tank-high/State" not in {m.name for m in births[0].metrics}
        last_birth = births[-1]
        born = {m.name: m for m in last_birth.metrics}
        assert born["Alarms/tank-high/State"].datatype == DataType.STRING
        assert born["Alarms/tank-high/Active"].datatype == DataType.BOOLEAN
        assert born["Alarms/tank-high/Value"].datatype == DataType.DOUBLE
        assert born["bdSeq"].value == births[0].metrics[0].value  # the same session
        values = [v for v in node_values(collector) if v[0].startswith("Alarms/tank-high/")]
        states = [v for name, v, _ in values if name == "Alarms/tank-high/State"]
        assert states == ["unacknowledged", "acknowledged"]
        seq_stamps = [(v, ts) for name, v, ts in values if name == "Alarms/tank-high/Seq"]
        assert seq_stamps == [(1, 1_700_000_001_000), (2, 1_700_000_002_000)]

        # Restarted, the node is born with the alarm already, at its last state.
        assert sink.terminate() == 0
        with collector.lock:
            collector.raw.clear()
        sink.start()
        wait_for_workers(stack.endpoint, "org.plantd.sink.edge")
        assert wait_until(
            lambda: any(t == "NBIRTH/edge" for t, _ in sparkplug_messages(collector)), 15
        )
        nbirth = next(p for t, p in sparkplug_messages(collector) if t == "NBIRTH/edge")
        state = {m.name: m.value for m in nbirth.metrics}
        assert state["Alarms/tank-high/State"] == "acknowledged"
        assert state["Alarms/tank-high/Seq"] == 2
    finally:
        publisher.close()
        collector.close()


def pg_connect() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432 ({exc})")


@pytest.fixture
def tables() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    with pg_connect() as conn:
        for name in names:
            conn.execute(f'DROP TABLE IF EXISTS public."{name}"')


@pytest.mark.timeout(120)
def test_postgres_events_once_each_across_an_outage(stack: Stack, tables: list[str]) -> None:
    pg_connect().close()
    suffix = secrets.token_hex(4)
    samples, events = f"plantd_test_s_{suffix}", f"plantd_test_events_{suffix}"
    tables += [samples, events]
    proxy = TcpProxy(("127.0.0.1", 5432))
    stack.start_broker()
    publisher = publisher_for(stack)

    def rows() -> list[tuple[Any, ...]]:
        with pg_connect() as conn:
            return conn.execute(
                f"SELECT topic, kind, subject, seq, fields, source, time FROM {events} "
                "WHERE subject = 'tank-high' ORDER BY seq"
            ).fetchall()

    def probes() -> int:
        with pg_connect() as conn:
            found = conn.execute(f"SELECT count(*) FROM {events} WHERE subject = 'probe'")
            return int(found.fetchone()[0])  # type: ignore[index]

    try:
        write_file(stack, "sinks.d", "pg", f"""
type: postgres
reconnect_initial: 200ms
reconnect_max: 1s
repair: {{enabled: false}}
postgres:
  dsn: "host=127.0.0.1 port={proxy.port} dbname=test user=postgres"
  table: {samples}
  events_table: {events}
  connect_timeout: 2s
""")  # fmt: skip
        sink: ManagedProcess = start_sink(stack, "pg")
        assert wait_until(lambda: plant_json(stack, "sink", "status", "pg")["connected"], 10)
        until_taken(publisher, lambda: probes() > 0)
        for seq in range(1, 4):
            publisher.publish_record("event.alarm.tank-high", record("tank-high", seq))
        assert wait_until(lambda: len(rows()) == 3, 15)

        proxy.down()
        for seq in range(4, 11):
            publisher.publish_record("event.alarm.tank-high", record("tank-high", seq))
        assert wait_until(
            lambda: plant_json(stack, "sink", "status", "pg")["queue"]["events"] == 7, 15
        )
        proxy.up()
        assert wait_until(lambda: len(rows()) == 10, 30)
        stored = rows()
        assert [row[3] for row in stored] == list(range(1, 11))  # each once
        topic, kind, subject, seq, fields, source, stamp = stored[0]
        assert (topic, kind, subject, seq, source) == (
            "event.alarm.tank-high", "alarm", "tank-high", 1, "pg",
        )  # fmt: skip
        assert fields == record("tank-high", 1)
        assert stamp.timestamp() == 1_700_000_001.0
        status = plant_json(stack, "sink", "status", "pg")
        assert status["queue"]["events"] == 0
        assert status["counters"]["events_dropped"] == 0
        assert sink.terminate() == 0
    finally:
        publisher.close()
        proxy.close()
