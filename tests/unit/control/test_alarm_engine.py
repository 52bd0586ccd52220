"""The alarm engine: samples and operator actions in, event records out; restore."""

from __future__ import annotations

import pytest

from plantd.bus import Quality, Sample
from plantd.control._alarm import MAX_SHELVE, AlarmError
from plantd.control._alarm_config import AlarmConfig
from plantd.control._alarm_engine import RECORD_KEYS, AlarmEngine, AlarmEvent, AlarmSnapshot

P = "field.tank_level"
HIGH = AlarmConfig(
    name="level-high", point=P, type="high", limit=4.5, deadband=0.1, priority="high",
    message="Tank level high",
)  # fmt: skip


def engine(*alarms: AlarmConfig, restored: dict[str, AlarmSnapshot] | None = None) -> AlarmEngine:
    return AlarmEngine(alarms or (HIGH,), restored or {})


def raise_it(e: AlarmEngine, now: float = 10.0) -> list[AlarmEvent]:
    return e.observe(P, Sample(5.0, now - 0.5), now)


def test_a_raise_is_one_event_with_every_record_key() -> None:
    e = engine()
    assert e.inputs == {P}
    (event,) = raise_it(e)
    assert isinstance(event, AlarmEvent)
    assert list(event.to_record()) == list(RECORD_KEYS)
    assert event.to_record() == {
        "alarm": "level-high", "point": P, "type": "high", "priority": "high",
        "message": "Tank level high", "state": "unacknowledged", "active": True,
        "acknowledged": False, "shelved": False, "shelved_until": None, "suppressed": False,
        "transition": "raised", "value": 5.0, "limit": 4.5, "time": 10.0, "sample_time": 9.5,
        "by": None, "comment": "", "seq": 1,
    }  # fmt: skip
    assert raise_it(e, 11.0) == []


def test_acknowledge_names_who_and_why_then_clear() -> None:
    e = engine()
    raise_it(e)
    (ack,) = e.acknowledge("level-high", "alice", 12.0, "seen")
    assert (ack.transition, ack.state, ack.by, ack.comment, ack.seq) == (
        "acknowledged", "acknowledged", "alice", "seen", 2,
    )  # fmt: skip
    (clear,) = e.observe(P, Sample(4.0, 13.0), 13.0)
    assert (clear.transition, clear.state, clear.by, clear.seq) == ("cleared", "normal", "", 3)
    with pytest.raises(AlarmError) as caught:
        e.acknowledge("level-high", "alice", 14.0)
    assert caught.value.code == "alarm.not-acknowledgeable"


@pytest.mark.parametrize(
    "call",
    [
        lambda e: e.acknowledge("nope", "alice", 1.0),
        lambda e: e.shelve("nope", "alice", 100.0, 1.0),
        lambda e: e.unshelve("nope", "alice", 1.0),
        lambda e: e.set_suppressed("nope", True, 1.0),
    ],
)
def test_an_unknown_alarm_is_refused(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AlarmError) as caught:
        call(engine())
    assert caught.value.code == "alarm.unknown"
    assert "'nope'" in caught.value.message


def test_shelving_hides_a_raise_and_expiry_shows_it() -> None:
    e = engine()
    (shelved,) = e.shelve("level-high", "bob", 70.0, 10.0, "sensor work")
    assert (shelved.shelved, shelved.shelved_until, shelved.comment) == (True, 70.0, "sensor work")
    assert e.next_due() == 70.0
    (raised,) = raise_it(e, 20.0)
    assert (raised.transition, raised.state, raised.shelved) == ("raised", "unacknowledged", True)
    e.acknowledge("level-high", "bob", 21.0)
    assert e.tick(69.9) == []
    (expired,) = e.tick(70.0)
    assert (expired.transition, expired.state, expired.shelved) == (
        "shelve-expired", "unacknowledged", False,
    )  # fmt: skip
    assert e.next_due() is None


def test_unshelve_a_cleared_alarm_and_refusals() -> None:
    e = engine()
    for until in (10.0, 5.0, 10.0 + MAX_SHELVE + 1):
        with pytest.raises(AlarmError) as caught:
            e.shelve("level-high", "bob", until, 10.0)
        assert caught.value.code == "alarm.bad-duration"
    with pytest.raises(AlarmError) as caught:
        e.unshelve("level-high", "bob", 10.0)
    assert caught.value.code == "alarm.not-shelved"
    e.shelve("level-high", "bob", 100.0, 10.0)
    raise_it(e, 11.0)
    e.observe(P, Sample(4.0, 12.0), 12.0)
    (back,) = e.unshelve("level-high", "bob", 13.0)
    assert (back.transition, back.state, back.by) == ("unshelved", "normal", "bob")


def test_suppression_is_recorded_once_and_flags_a_raise() -> None:
    e = engine()
    (on,) = e.set_suppressed("level-high", True, 1.0)
    assert (on.transition, on.suppressed) == ("suppressed", True)
    assert e.set_suppressed("level-high", True, 2.0) == []
    (raised,) = raise_it(e, 3.0)
    assert raised.suppressed
    (off,) = e.set_suppressed("level-high", False, 4.0)
    assert (off.transition, off.state, off.suppressed) == ("unsuppressed", "unacknowledged", False)


def test_a_latching_alarm_holds_until_acknowledged() -> None:
    e = engine(AlarmConfig(name="trip", point=P, type="high", limit=4.5, latch=True))
    raise_it(e)
    assert e.observe(P, Sample(1.0, 11.0), 11.0) == []
    (snap,) = e.snapshots()
    assert (snap.state, snap.active) == ("unacknowledged", True)
    (ack,) = e.acknowledge("trip", "carol", 12.0)
    assert (ack.state, ack.active) == ("normal", False)


def test_delays_are_ticked_at_next_due() -> None:
    e = engine(AlarmConfig(name="slow", point=P, type="high", limit=4.5, on_delay=2.0))
    assert raise_it(e, 10.0) == []
    assert e.next_due() == 12.0
    (event,) = e.tick(12.0)
    assert (event.transition, event.time, event.value) == ("raised", 12.0, 5.0)


def test_every_type_through_the_engine() -> None:
    sp = "station.sp"
    alarms = [
        AlarmConfig(name="dev", point=P, type="deviation", limit=1.0, setpoint=sp),
        AlarmConfig(name="bad", point=P, type="bad-quality"),
        AlarmConfig(name="low", point=P, type="low-low", limit=0.5),
    ]
    e = AlarmEngine(alarms)
    assert e.inputs == {P, sp}
    assert e.observe(sp, Sample(3.0, 1.0), 1.0) == []
    events = e.observe(P, Sample(0.1, 2.0, Quality.BAD), 2.0)
    assert [ev.alarm for ev in events] == ["bad"]  # bad data: no limit/deviation alarm
    events = e.observe(P, Sample(0.1, 3.0), 3.0)
    assert sorted((ev.alarm, ev.transition) for ev in events) == [
        ("bad", "cleared"), ("dev", "raised"), ("low", "raised"),
    ]  # fmt: skip


def test_restore_carries_state_and_seq_on() -> None:
    first = engine()
    raise_it(first)
    first.shelve("level-high", "bob", 500.0, 11.0)
    saved = {s.alarm: s for s in first.snapshots()}
    saved["gone"] = AlarmSnapshot.from_record({**saved["level-high"].to_record(), "alarm": "gone"})
    new = AlarmConfig(name="new", point=P, type="low", limit=1.0)

    second = engine(HIGH, new, restored=saved)
    snaps = {s.alarm: s for s in second.snapshots()}
    assert set(snaps) == {"level-high", "new"}  # "gone" is no longer configured: ignored
    assert snaps["level-high"].to_record() == saved["level-high"].to_record()
    assert (snaps["new"].state, snaps["new"].seq, snaps["new"].transition) == ("normal", 0, None)
    assert second.next_due() == 500.0
    assert raise_it(second, 20.0) == []  # still high: not raised again
    (cleared,) = second.observe(P, Sample(4.0, 21.0), 21.0)
    assert (cleared.transition, cleared.state, cleared.seq) == ("cleared", "returned", 3)


def test_a_snapshot_record_round_trips_and_a_bad_one_is_refused() -> None:
    e = engine()
    raise_it(e)
    (snap,) = e.snapshots()
    assert AlarmSnapshot.from_record(snap.to_record()) == snap
    with pytest.raises(ValueError, match="missing"):
        AlarmSnapshot.from_record({"alarm": "x"})
    with pytest.raises(ValueError, match="state"):
        AlarmSnapshot.from_record({**snap.to_record(), "state": "confused"})


def test_a_value_that_is_not_json_is_recorded_as_null() -> None:
    e = engine(AlarmConfig(name="bad", point=P, type="bad-quality"))
    (event,) = e.observe(P, Sample(float("nan"), 1.0, Quality.BAD), 1.0)
    assert event.value is None
    assert event.sample_time == 1.0


def test_a_shelf_that_expired_while_the_process_was_down_expires_at_the_first_tick() -> None:
    first = engine()
    raise_it(first)
    first.shelve("level-high", "bob", 100.0, 11.0)
    second = engine(restored={s.alarm: s for s in first.snapshots()})
    assert second.next_due() == 100.0
    (expired,) = second.tick(5000.0)
    assert (expired.transition, expired.seq) == ("shelve-expired", 3)
    assert expired.state == "unacknowledged"


def test_a_suppression_is_restored_only_while_the_alarm_has_a_suppress_when() -> None:
    when = AlarmConfig(name="level-high", point=P, type="high", limit=4.5, suppress_when="x.y")
    first = engine(when)
    first.set_suppressed("level-high", True, 1.0)
    saved = {s.alarm: s for s in first.snapshots()}
    assert [s.suppressed for s in engine(when, restored=saved).snapshots()] == [True]
    assert [s.suppressed for s in engine(HIGH, restored=saved).snapshots()] == [False]
