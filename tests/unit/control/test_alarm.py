"""The ISA-18.2 state machine of one alarm: every state × event, latching, and a property over
random event sequences."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantd.control._alarm import EVENTS, MAX_SHELVE, STATES, TRANSITIONS, Alarm, AlarmError
from plantd.service import OperationError

NOW = 1000.0
REFUSE = "alarm.not-acknowledgeable"

# (state, event) -> (next state, transition) or an error code. Written out by hand (not derived
# from TRANSITIONS), each state with the condition it has in a non-latching alarm.
EXPECTED: dict[tuple[str, str], tuple[str, str | None] | str] = {
    ("normal", "condition-active"): ("unacknowledged", "raised"),
    ("normal", "condition-clear"): ("normal", None),
    ("normal", "ack"): REFUSE,
    ("normal", "shelve"): ("normal", "shelved"),
    ("normal", "unshelve"): ("normal", "unshelved"),
    ("normal", "shelve-expiry"): ("normal", "shelve-expired"),
    ("normal", "suppress"): ("normal", "suppressed"),
    ("normal", "unsuppress"): ("normal", "unsuppressed"),
    ("unacknowledged", "condition-active"): ("unacknowledged", None),
    ("unacknowledged", "condition-clear"): ("returned", "cleared"),
    ("unacknowledged", "ack"): ("acknowledged", "acknowledged"),
    ("unacknowledged", "shelve"): ("unacknowledged", "shelved"),
    ("unacknowledged", "unshelve"): ("unacknowledged", "unshelved"),
    ("unacknowledged", "shelve-expiry"): ("unacknowledged", "shelve-expired"),
    ("unacknowledged", "suppress"): ("unacknowledged", "suppressed"),
    ("unacknowledged", "unsuppress"): ("unacknowledged", "unsuppressed"),
    ("acknowledged", "condition-active"): ("acknowledged", None),
    ("acknowledged", "condition-clear"): ("normal", "cleared"),
    ("acknowledged", "ack"): REFUSE,
    ("acknowledged", "shelve"): ("acknowledged", "shelved"),
    # back from the shelf while active: seen again, although acknowledged before
    ("acknowledged", "unshelve"): ("unacknowledged", "unshelved"),
    ("acknowledged", "shelve-expiry"): ("unacknowledged", "shelve-expired"),
    ("acknowledged", "suppress"): ("acknowledged", "suppressed"),
    ("acknowledged", "unsuppress"): ("acknowledged", "unsuppressed"),
    ("returned", "condition-active"): ("unacknowledged", "raised"),
    ("returned", "condition-clear"): ("returned", None),
    ("returned", "ack"): ("normal", "acknowledged"),
    ("returned", "shelve"): ("returned", "shelved"),
    ("returned", "unshelve"): ("normal", "unshelved"),
    ("returned", "shelve-expiry"): ("normal", "shelve-expired"),
    ("returned", "suppress"): ("returned", "suppressed"),
    ("returned", "unsuppress"): ("normal", "unsuppressed"),
}
# A latching alarm differs in one cell (with its condition active: see the latching tests).
LATCHED = {("unacknowledged", "condition-clear"): ("unacknowledged", None)}
CONDITION = {"normal": False, "unacknowledged": True, "acknowledged": True, "returned": False}


def apply(alarm: Alarm, event: str) -> str | None:
    if event == "condition-active":
        return alarm.condition_changed(True)
    if event == "condition-clear":
        return alarm.condition_changed(False)
    if event == "ack":
        return alarm.acknowledge()
    if event == "shelve":
        return alarm.shelve(NOW + 60, NOW)
    if event == "unshelve":
        return alarm.unshelve()
    if event == "shelve-expiry":
        return alarm.expire(alarm.shelved_until if alarm.shelved_until is not None else NOW)
    if event == "suppress":
        return alarm.set_suppressed(True)
    assert event == "unsuppress"
    return alarm.set_suppressed(False)


def state_of(alarm: Alarm) -> str:
    return alarm.state  # (not narrowed by mypy from one assert to the next)


def shelved(alarm: Alarm) -> bool:
    return alarm.shelved


def make(state: str, event: str, *, latch: bool = False, condition: bool | None = None) -> Alarm:
    """An alarm in ``state`` with the flag that ``event`` needs (shelved to unshelve, …)."""
    return Alarm(
        "a",
        latch=latch,
        state=state,  # type: ignore[arg-type]
        condition=CONDITION[state] if condition is None else condition,
        shelved_until=NOW + 10 if event in ("unshelve", "shelve-expiry") else None,
        suppressed=event == "unsuppress",
        seq=7,
    )


def test_the_table_has_a_rule_for_every_state_and_event() -> None:
    assert set(TRANSITIONS) == set(EVENTS)
    for event in EVENTS:
        assert set(TRANSITIONS[event]) == set(STATES)
    assert set(EXPECTED) == {(s, e) for s in STATES for e in EVENTS}


@pytest.mark.parametrize("latch", [False, True])
@pytest.mark.parametrize(("state", "event"), sorted(EXPECTED))
def test_every_state_and_event(state: str, event: str, latch: bool) -> None:
    alarm = make(state, event, latch=latch)
    expected = (LATCHED if latch else {}).get((state, event), EXPECTED[(state, event)])
    if isinstance(expected, str):
        with pytest.raises(AlarmError) as caught:
            apply(alarm, event)
        assert caught.value.code == expected
        assert (alarm.state, alarm.seq) == (state, 7)
        return
    target, transition = expected
    assert apply(alarm, event) == transition
    assert alarm.state == target
    assert alarm.seq == (7 if transition is None else 8)
    assert alarm.acknowledged == (target in ("normal", "acknowledged"))
    assert alarm.active == (target in ("unacknowledged", "acknowledged"))
    assert alarm.shelved == (event == "shelve")
    assert alarm.suppressed == (event == "suppress")


def test_a_latching_alarm_stays_active_after_its_condition_clears_until_acknowledged() -> None:
    alarm = Alarm("a", latch=True)
    assert alarm.condition_changed(True) == "raised"
    assert alarm.condition_changed(False) is None
    assert (alarm.state, alarm.active, alarm.condition) == ("unacknowledged", True, False)
    assert alarm.acknowledge() == "acknowledged"
    assert alarm.state == "normal"
    assert alarm.seq == 2


def test_a_latching_alarm_acknowledged_while_active_clears_like_any_other() -> None:
    alarm = Alarm("a", latch=True)
    alarm.condition_changed(True)
    assert alarm.acknowledge() == "acknowledged"
    assert state_of(alarm) == "acknowledged"
    assert alarm.condition_changed(False) == "cleared"
    assert state_of(alarm) == "normal"


def test_a_latched_alarm_leaves_the_shelf_by_its_condition() -> None:
    alarm = make("unacknowledged", "unshelve", latch=True, condition=False)
    assert alarm.unshelve() == "unshelved"
    assert alarm.state == "normal"


def test_shelving_refuses_a_time_not_after_now_or_too_far() -> None:
    alarm = Alarm("a")
    for until in (NOW, NOW - 1, NOW + MAX_SHELVE + 1, float("inf"), float("nan")):
        with pytest.raises(AlarmError) as caught:
            alarm.shelve(until, NOW)
        assert caught.value.code == "alarm.bad-duration"
    assert not alarm.shelved
    assert alarm.shelve(NOW + MAX_SHELVE, NOW) == "shelved"


def test_unshelving_an_alarm_that_is_not_shelved_is_refused() -> None:
    with pytest.raises(AlarmError) as caught:
        Alarm("a").unshelve()
    assert caught.value.code == "alarm.not-shelved"
    assert isinstance(caught.value, OperationError)


def test_shelve_expiry_waits_for_its_time() -> None:
    alarm = Alarm("a")
    alarm.shelve(NOW + 60, NOW)
    assert alarm.expire(NOW + 59.9) is None
    assert alarm.shelved_until == NOW + 60
    assert alarm.expire(NOW + 60) == "shelve-expired"
    assert not shelved(alarm)
    assert alarm.expire(NOW + 61) is None


def test_suppression_set_twice_is_one_transition() -> None:
    alarm = Alarm("a")
    assert alarm.set_suppressed(True) == "suppressed"
    assert alarm.set_suppressed(True) is None
    assert alarm.set_suppressed(False) == "unsuppressed"
    assert alarm.set_suppressed(False) is None
    assert alarm.seq == 2


def test_a_restored_alarm_takes_its_condition_from_its_state() -> None:
    assert Alarm("a", state="acknowledged").condition is True
    assert Alarm("a", state="returned").condition is False
    assert Alarm("a", state="acknowledged").condition_changed(True) is None


@settings(max_examples=300, deadline=None)
@given(latch=st.booleans(), events=st.lists(st.sampled_from(EVENTS), max_size=40))
def test_any_event_sequence_keeps_the_invariants(latch: bool, events: list[str]) -> None:
    alarm = Alarm("a", latch=latch)
    transitions = 0
    for event in events:
        before = (alarm.state, alarm.seq, alarm.shelved_until, alarm.suppressed)
        try:
            transition = apply(alarm, event)
        except AlarmError:
            assert (alarm.state, alarm.seq, alarm.shelved_until, alarm.suppressed) == before
            continue
        transitions += transition is not None
        assert alarm.state in STATES
        assert alarm.acknowledged == (alarm.state in ("normal", "acknowledged"))
        assert alarm.active == (alarm.state in ("unacknowledged", "acknowledged"))
        # a condition that holds is always shown; without a latch, only one that holds is
        assert not alarm.condition or alarm.active
        if not latch:
            assert alarm.active == alarm.condition
        assert alarm.seq == transitions
