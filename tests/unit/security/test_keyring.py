"""The allow-list (plantd.security._keyring): a keys directory read into a KeyRing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from plantd.security import (
    BROKER,
    Grants,
    KeyFile,
    fingerprint,
    generate,
    kind_grants,
    load_keyring,
    write_key_file,
)
from plantd.security._keyring import changes
from tests.unit.security._keys import admit


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    directory.mkdir()
    return directory


# -- load_keyring ---------------------------------------------------------------------------------


def test_good_files_are_admitted_by_key_and_by_principal(keys: Path) -> None:
    alice = admit(keys, "user.alice", roles="operator")
    pump = admit(keys, "module.pump1")
    broker = generate()
    write_key_file(keys / "broker.key", broker, secret=False)
    ring = load_keyring(keys)
    assert ring.problems == ()
    assert set(ring.by_principal) == {"user.alice", "module.pump1"}
    assert set(ring.by_key) == {alice.public, pump.public}
    entry = ring.by_key[alice.public]
    assert ring.by_principal["user.alice"] is entry
    assert entry.principal == "user.alice"
    assert entry.path == keys / "user.alice.key"
    assert entry.grants.roles == frozenset({"operator"})
    assert ring.broker_key == broker.public
    assert ring.revoked == {}


def test_a_missing_directory_admits_nobody(tmp_path: Path) -> None:
    ring = load_keyring(tmp_path / "nowhere")
    assert (dict(ring.by_key), dict(ring.by_principal), ring.broker_key) == ({}, {}, None)
    assert ring.problems == ()


def test_a_broken_file_is_left_out_and_reported(keys: Path) -> None:
    alice = admit(keys, "user.alice")
    (keys / "user.bob.key").write_text('curve\n    public-key = "short"\n')
    ring = load_keyring(keys)
    assert set(ring.by_principal) == {"user.alice"}
    assert set(ring.by_key) == {alice.public}
    assert ring.problems == (
        f"{keys / 'user.bob.key'}: public-key is not a Z85-encoded CURVE key (40 characters)",
    )


def test_a_key_that_overflows_z85_does_not_take_the_keyring_down(keys: Path) -> None:
    admit(keys, "user.alice")
    (keys / "user.bob.key").write_text('curve\n    public-key = "' + "#" * 40 + '"\n')
    ring = load_keyring(keys)
    assert set(ring.by_principal) == {"user.alice"}
    assert len(ring.problems) == 1


@pytest.mark.parametrize("stem", ["alice", "admin.alice", "user.a.b", "user.", "User.alice"])
def test_a_file_named_for_no_principal_is_reported(keys: Path, stem: str) -> None:
    write_key_file(keys / f"{stem}.key", generate(), secret=False)
    ring = load_keyring(keys)
    assert dict(ring.by_key) == {}
    assert len(ring.problems) == 1
    assert ring.problems[0].startswith(f"{keys / (stem + '.key')}: not a principal's key file: ")
    assert repr(stem) in ring.problems[0]


def test_metadata_that_disagrees_with_the_file_name_is_reported(keys: Path) -> None:
    key = generate({"principal": "user.admin"})
    write_key_file(keys / "user.mallory.key", key, secret=False)
    ring = load_keyring(keys)
    assert dict(ring.by_key) == {}
    assert ring.problems == (
        f"{keys / 'user.mallory.key'}: the file says it is 'user.admin'; its name says otherwise",
    )


def test_a_file_without_principal_metadata_takes_its_name(keys: Path) -> None:
    key = generate({"roles": "viewer"})
    write_key_file(keys / "user.carol.key", key, secret=False)
    ring = load_keyring(keys)
    assert ring.by_key[key.public].principal == "user.carol"


def test_two_files_with_the_same_key_admit_neither(keys: Path) -> None:
    shared = generate()
    write_key_file(keys / "user.a.key", KeyFile(shared.public, None, {}), secret=False)
    write_key_file(keys / "user.b.key", KeyFile(shared.public, None, {}), secret=False)
    carol = admit(keys, "user.carol")
    ring = load_keyring(keys)
    assert set(ring.by_principal) == {"user.carol"}
    assert set(ring.by_key) == {carol.public}
    assert ring.problems == (
        f"{keys / 'user.b.key'}: the same key as {keys / 'user.a.key'}; neither is admitted",
    )


def test_three_files_with_the_same_key_admit_none(keys: Path) -> None:
    shared = generate()
    for name in ("user.a", "user.b", "user.c"):
        write_key_file(keys / f"{name}.key", KeyFile(shared.public, None, {}), secret=False)
    ring = load_keyring(keys)
    assert dict(ring.by_key) == {}
    assert dict(ring.by_principal) == {}
    assert len(ring.problems) == 2


def test_broker_key_is_the_brokers_and_admits_nobody(keys: Path) -> None:
    broker = generate()
    write_key_file(keys / "broker.key", broker, secret=False)
    ring = load_keyring(keys)
    assert ring.broker_key == broker.public
    assert broker.public not in ring.by_key
    assert BROKER not in ring.by_principal
    assert ring.grants(BROKER) == kind_grants(BROKER)  # the broker always is


def test_files_being_written_and_other_files_are_ignored(keys: Path) -> None:
    admit(keys, "user.alice")
    write_key_file(keys / ".user.bob.key", generate(), secret=False)  # a dot file
    write_key_file(keys / "user.carol.key_secret", generate(), secret=True)  # not *.key
    (keys / "README").write_text("the allow-list\n")
    ring = load_keyring(keys)
    assert set(ring.by_principal) == {"user.alice"}
    assert ring.problems == ()


def test_revoked_keys_admit_nobody_and_say_whose_they_were(keys: Path) -> None:
    revoked = keys / "revoked"
    revoked.mkdir()
    old = generate({"principal": "user.dave"})
    write_key_file(revoked / "user.dave.20240101T000000.key", old, secret=False)
    (revoked / "user.eve.20240101T000000.key").write_text("garbage\n")  # skipped quietly
    ring = load_keyring(keys)
    assert dict(ring.revoked) == {old.public: "user.dave"}
    assert dict(ring.by_key) == {}
    assert ring.problems == ()


def test_a_revoked_file_without_metadata_is_named_from_its_file_name(keys: Path) -> None:
    revoked = keys / "revoked"
    revoked.mkdir()
    old = generate()
    write_key_file(revoked / "user.frank.20240101T000000.key", old, secret=False)
    assert dict(load_keyring(keys).revoked) == {old.public: "user.frank"}


# -- grants: the kind's, merged with the key file's -----------------------------------------------


def test_grants_of_somebody_not_admitted_is_none(keys: Path) -> None:
    admit(keys, "user.alice")
    ring = load_keyring(keys)
    assert ring.grants("user.bob") is None
    assert ring.grants("user.alice") == Grants()


def test_key_file_roles_replace_the_kinds(keys: Path) -> None:
    admit(keys, "sink.cloud", roles="admin")
    admit(keys, "sink.plain")
    admit(keys, "sink.none", roles="")
    ring = load_keyring(keys)
    assert ring.grants("sink.cloud") == kind_grants("sink.cloud").merged(roles=frozenset({"admin"}))
    assert (ring.grants("sink.cloud") or Grants()).roles == frozenset({"admin"})
    assert (ring.grants("sink.plain") or Grants()).roles == frozenset({"viewer", "operator"})
    assert (ring.grants("sink.none") or Grants()).roles == frozenset()


def test_key_file_serve_and_publish_add_to_the_kinds(keys: Path) -> None:
    admit(keys, "module.pump1", serve="org.acme.*, org.acme2", publish="event.acme.")
    admit(keys, "service.custom", serve="org.acme.Custom", publish="event.custom.,x.")
    ring = load_keyring(keys)
    assert ring.grants("module.pump1") == Grants(
        serve=("org.plantd.module.pump1", "org.acme.*", "org.acme2"),
        call=(("org.plantd.State", "*"),),
        publish=(
            "data.pump1.",
            "log.module.pump1.",
            "metrics.module.pump1.",
            "event.acme.",
        ),
    )
    assert ring.grants("service.custom") == Grants(
        serve=("org.acme.Custom",),
        publish=("log.custom.", "metrics.custom.", "event.custom.", "x."),
    )


# -- fingerprint ----------------------------------------------------------------------------------


def test_fingerprint_changes_when_a_file_is_added_removed_or_rewritten(keys: Path) -> None:
    admit(keys, "user.alice")
    first = fingerprint(keys)
    assert [name for name, _, _ in first] == ["user.alice.key"]
    admit(keys, "user.bob")
    added = fingerprint(keys)
    assert added != first
    (keys / "user.bob.key").unlink()
    removed = fingerprint(keys)
    assert removed != added
    assert removed == first
    admit(keys, "user.alice", roles="admin")  # rewritten, longer
    assert fingerprint(keys) != removed


def test_fingerprint_changes_when_a_file_is_rewritten_with_the_same_size(keys: Path) -> None:
    admit(keys, "user.alice")
    before = fingerprint(keys)
    path = keys / "user.alice.key"
    stamp = path.stat().st_mtime_ns
    admit(keys, "user.alice")  # another key: same size
    os.utime(path, ns=(stamp + 1_000_000, stamp + 1_000_000))  # even on a coarse clock
    after = fingerprint(keys)
    assert [size for _, size, _ in after] == [size for _, size, _ in before]
    assert after != before


def test_fingerprint_ignores_other_files_and_the_revoked_folder(keys: Path) -> None:
    admit(keys, "user.alice")
    before = fingerprint(keys)
    (keys / "README").write_text("x")
    write_key_file(keys / "user.a.key_secret", generate(), secret=True)
    (keys / "revoked").mkdir()
    write_key_file(keys / "revoked" / "user.b.1.key", generate(), secret=False)
    (keys / "folder.key").mkdir()  # not a file
    assert fingerprint(keys) == before


def test_fingerprint_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert fingerprint(tmp_path / "nowhere") == ()


# -- changes --------------------------------------------------------------------------------------


def test_changes_added_revoked_rotated_and_roles_changed(keys: Path) -> None:
    admit(keys, "user.stays")
    admit(keys, "user.revoked")
    admit(keys, "user.rotated", roles="viewer")
    admit(keys, "user.promoted", roles="viewer")
    old = load_keyring(keys)
    (keys / "user.revoked.key").unlink()
    admit(keys, "user.rotated", roles="viewer")
    promoted = old.by_principal["user.promoted"]
    write_key_file(
        keys / "user.promoted.key",
        KeyFile(promoted.public, None, {"roles": "operator,admin"}),
        secret=False,
    )
    admit(keys, "user.new", roles="engineer")
    new = load_keyring(keys)
    cut, lines = changes(old, new)
    assert cut == frozenset({"user.revoked", "user.rotated"})
    assert sorted(lines) == [
        "user.new: added (roles: engineer)",
        "user.promoted: grants changed (roles: admin, operator)",
        "user.revoked: revoked",
        "user.rotated: key rotated",
    ]


def test_no_changes_between_equal_keyrings(keys: Path) -> None:
    admit(keys, "user.alice", roles="viewer")
    assert changes(load_keyring(keys), load_keyring(keys)) == (frozenset(), [])


def test_changes_name_a_principal_added_without_roles(keys: Path) -> None:
    old = load_keyring(keys)
    admit(keys, "user.alice")
    assert changes(old, load_keyring(keys)) == (frozenset(), ["user.alice: added (roles: none)"])


def test_changes_note_a_new_broker_key_file_but_cut_nobody(keys: Path) -> None:
    write_key_file(keys / "broker.key", generate(), secret=False)
    old = load_keyring(keys)
    write_key_file(keys / "broker.key", generate(), secret=False)
    cut, lines = changes(old, load_keyring(keys))
    assert cut == frozenset()
    assert lines == ["broker: public key file changed (the broker keeps the key it started with)"]
    # The first broker key (there was none before) is no change worth a line.
    empty = load_keyring(keys.parent / "nowhere")
    assert changes(empty, old) == (frozenset(), [])
