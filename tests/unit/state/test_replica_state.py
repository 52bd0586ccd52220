"""The replica's rules, sans I/O: snapshots and events in, outcomes out."""

from __future__ import annotations

import pytest

from plantd.bus import decode_record, encode_record
from plantd.state import (
    ChangeEvent,
    Entry,
    Outcome,
    ReplicaState,
    ScopeSnapshot,
    Snapshot,
    topic_for,
)
from plantd.state._replica import REMEMBERED

A, B = "plant.a", "plant.b"


def snapshot() -> Snapshot:
    """Revision 5: scope A created at 1, k set at 2 and 4; B created at 3, x set at 5."""
    return Snapshot(
        5,
        {
            A: ScopeSnapshot(True, 4, {"k": Entry(2, 4, 2)}),
            B: ScopeSnapshot(True, 5, {"x": Entry("x", 5, 1)}),
        },
    )


def set_event(scope: str, key: str, value: object, revision: int, prev: int) -> ChangeEvent:
    return ChangeEvent("set", scope, key, revision, prev, value, version=1)


def test_nothing_applies_before_the_first_snapshot() -> None:
    state = ReplicaState()
    assert state.apply(set_event(A, "k", 1, 1, 0)) is Outcome.GAP
    assert not state.synced


def test_whole_store_replica_needs_every_revision() -> None:
    state = ReplicaState()
    state.load(snapshot())
    assert state.apply(set_event(A, "k", 9, 4, 2)) is Outcome.STALE  # in the snapshot already
    assert state.apply(set_event(B, "y", 1, 6, 5)) is Outcome.APPLIED
    assert state.apply(set_event(B, "y", 1, 6, 5)) is Outcome.STALE  # a duplicate
    assert state.apply(set_event(A, "k", 3, 8, 4)) is Outcome.GAP  # 7 is missing
    assert state.revision == 6
    assert state.get(B, "y") == Entry(1, 6, 1)


def test_scope_replica_follows_the_prev_chain_and_ignores_other_scopes() -> None:
    state = ReplicaState(A)
    state.load(snapshot())
    assert list(state.scopes) == [A]
    assert state.apply(set_event(B, "x", 1, 6, 5)) is Outcome.IGNORED
    assert state.apply(set_event(A, "k", 3, 7, 4)) is Outcome.APPLIED  # 6 was B's: no gap
    assert state.apply(set_event(A, "k", 4, 9, 8)) is Outcome.GAP  # A's 8 is missing
    assert state.scopes[A].revision == 7


def test_events_that_contradict_the_copy_are_gaps() -> None:
    state = ReplicaState()
    state.load(snapshot())
    assert state.apply(ChangeEvent("delete", A, "nope", 6, 4, version=1)) is Outcome.GAP
    assert state.apply(ChangeEvent("create-scope", A, "", 6, 4)) is Outcome.GAP
    assert state.apply(set_event("ghost", "k", 1, 6, 0)) is Outcome.GAP


def test_scope_lifecycle_in_both_kinds_of_replica() -> None:
    events = [
        ChangeEvent("delete-scope", A, "", 6, 4, keys=1),
        ChangeEvent("create-scope", A, "", 7, 6),
        set_event(A, "n", 1, 8, 7),
        ChangeEvent("delete", A, "n", 9, 8, version=1),
    ]
    everything, one = ReplicaState(), ReplicaState(A)
    everything.load(snapshot())
    one.load(snapshot())
    states = []
    for event in events:
        assert everything.apply(event) is Outcome.APPLIED
        assert one.apply(event) is Outcome.APPLIED
        states.append((A in everything.scopes, one.scopes[A].exists))
    assert states == [(False, False), (True, True), (True, True), (True, True)]
    assert everything.scopes[A] == ScopeSnapshot(True, 9, {})


def test_canonical_form_matches_a_snapshot_of_the_same_content() -> None:
    state = ReplicaState()
    state.load(Snapshot(5, {B: ScopeSnapshot(True, 5, {"x": Entry("x", 5, 1)})}))
    state.apply(ChangeEvent("create-scope", A, "", 6, 0))
    state.apply(set_event(A, "k", {"b": 1, "a": [1.5]}, 7, 6))
    fresh = Snapshot(
        7,
        {
            A: ScopeSnapshot(True, 7, {"k": Entry({"a": [1.5], "b": 1}, 7, 1)}),
            B: ScopeSnapshot(True, 5, {"x": Entry("x", 5, 1)}),
        },
    )
    assert state.canonical() == fresh.canonical()


def test_a_scope_replica_of_a_missing_scope() -> None:
    state = ReplicaState("later")
    state.load(Snapshot(3, {"later": ScopeSnapshot(False, 0)}))
    assert state.apply(ChangeEvent("create-scope", "later", "", 4, 0)) is Outcome.APPLIED
    assert state.apply(set_event("later", "k", 1, 5, 4)) is Outcome.APPLIED
    with pytest.raises(ValueError, match="does not hold scope"):
        ReplicaState("x").load(Snapshot(1))


def test_a_forged_jump_in_a_scope_replica_is_contradicted_by_the_next_real_event() -> None:
    state = ReplicaState(A)
    state.load(snapshot())
    forged = set_event(A, "k", "forged", 10**9, 4)  # prev = A's revision: it fits rule 3
    assert state.apply(forged) is Outcome.APPLIED
    assert state.apply(forged) is Outcome.STALE  # a repeat of what it applied
    real = set_event(A, "k", 3, 7, 4)  # the store's next change to A (6 was B's)
    assert state.apply(real) is Outcome.CONFLICT  # below the copy's revision, never applied
    assert state.ahead_of(7, 7) == (
        "the copy's revision is 1000000000 through event 1000000000 on 'state.plant.a.k', "
        "the store's is 7"
    )


def test_a_forged_next_revision_conflicts_with_the_real_one() -> None:
    state = ReplicaState()
    state.load(snapshot())
    assert state.apply(set_event(B, "x", "forged", 10**9, 5)) is Outcome.GAP  # no jumps at all
    forged = set_event(B, "x", "forged", 6, 5)
    assert state.apply(forged) is Outcome.APPLIED
    assert state.apply(set_event(A, "k", 3, 6, 4)) is Outcome.CONFLICT  # the real revision 6
    assert state.applied_at(6) == forged
    assert state.apply(set_event(A, "k", 9, 4, 2)) is Outcome.STALE  # the snapshot has it


def test_a_copy_ahead_of_the_store_names_the_first_event_past_it() -> None:
    everything, one = ReplicaState(), ReplicaState(A)
    assert everything.ahead_of(0) is None  # nothing loaded, nothing to be ahead with
    everything.load(snapshot())
    one.load(snapshot())
    assert everything.ahead_of(5) is None
    assert one.ahead_of(5, 4) is None
    everything.apply(set_event(B, "y", 1, 6, 5))
    everything.apply(set_event(B, "y", 2, 7, 6))
    assert everything.ahead_of(7) is None
    assert everything.ahead_of(5) == (
        "the copy's revision is 7 through event 6 on 'state.plant.b.y', the store's is 5"
    )
    assert one.apply(set_event(A, "k", 3, 9, 4)) is Outcome.APPLIED  # a legitimate jump
    assert one.ahead_of(9, 9) is None
    assert one.ahead_of(12, 4) == (  # the store went on, but not in A
        "the copy's revision of 'plant.a' is 9 through event 9 on 'state.plant.a.k', "
        "the store's is 4"
    )
    assert one.ahead_of(12, None) is None  # the store lists no A: only the global revision


def test_stale_events_below_what_it_remembers_are_taken_as_reflected() -> None:
    state = ReplicaState(A)
    state.load(Snapshot(0, {A: ScopeSnapshot(True, 0)}))
    events = [set_event(A, "k", n, n, n - 1) for n in range(1, REMEMBERED + 11)]
    assert {state.apply(event) for event in events} == {Outcome.APPLIED}
    assert state.apply(set_event(A, "k", "other", 5, 4)) is Outcome.STALE  # forgotten
    assert state.apply(events[-1]) is Outcome.STALE
    assert state.apply(set_event(A, "k", "other", events[-1].revision, 0)) is Outcome.CONFLICT
    assert state.applied_at(5) is None
    assert len([n for n in range(len(events) + 1) if state.applied_at(n)]) == REMEMBERED


def test_events_round_trip_through_the_bus_codec() -> None:
    events = [
        set_event(A, "k", {"deep": [None, True, "é"]}, 7, 4),
        ChangeEvent("delete", A, "k", 8, 7, version=3),
        ChangeEvent("create-scope", A, "", 9, 8),
        ChangeEvent("delete-scope", A, "", 10, 9, keys=12),
    ]
    for event in events:
        fields = decode_record(encode_record(event.to_record())).fields
        assert ChangeEvent.from_record(fields) == event
    assert events[0].topic == topic_for(A, "k") == "state.plant.a.k"
    assert events[2].topic == "state.plant.a."


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"op": "nuke"}, "unknown op"),
        ({"op": "set", "scope": 1, "key": "k"}, "'scope' is not text"),
        ({"op": "set", "scope": "a", "key": "k", "revision": -1, "prev": 0}, "revision"),
        ({"op": "set", "scope": "a", "key": "k", "revision": True, "prev": 0}, "revision"),
        ({"op": "set", "scope": "a", "key": "k", "revision": 1, "prev": 0}, "no 'value'"),
    ],
)
def test_malformed_records_are_named(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ChangeEvent.from_record(fields)
