"""The key set of an installation (plantd.security._keyset): init, add, revoke, rotate, list."""

from __future__ import annotations

import re
import stat
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from plantd.errors import SecurityError
from plantd.security import (
    SERVICES,
    KeyFile,
    KeySet,
    Listed,
    generate,
    load_keyring,
    local_principals,
    read_key_file,
    write_key_file,
)
from tests.unit.security._keys import write_config

SERVICE_PRINCIPALS = [f"service.{name}" for name in SERVICES]


@pytest.fixture
def keyset(tmp_path: Path) -> KeySet:
    return KeySet(write_config(tmp_path))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def public_of(keyset: KeySet, principal: str) -> bytes:
    return read_key_file(keyset.public_path(principal)).public


# -- where ----------------------------------------------------------------------------------------


def test_the_directories_come_from_the_config(tmp_path: Path, keyset: KeySet) -> None:
    assert keyset.keys_dir == tmp_path / "etc" / "keys"
    assert keyset.secrets_dir == tmp_path / "data" / "secrets"
    assert keyset.public_path("user.a") == tmp_path / "etc" / "keys" / "user.a.key"
    assert keyset.secret_path("user.a") == tmp_path / "data" / "secrets" / "user.a.key_secret"
    elsewhere = KeySet(
        write_config(tmp_path, security={"keys": str(tmp_path / "k"), "secrets": "/s"})
    )
    assert (elsewhere.keys_dir, elsewhere.secrets_dir) == (tmp_path / "k", Path("/s"))


def test_local_principals_are_the_services_modules_and_sinks(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    for folder, names in (
        ("modules.d", ["pump1.yaml", "tank-2.yaml", ".hidden.yaml", "a.b.yaml", "notes.txt"]),
        ("sinks.d", ["cloud.yaml"]),
    ):
        (etc / folder).mkdir(parents=True)
        for name in names:
            (etc / folder / name).write_text("driver: fake\n")
    assert local_principals(etc) == [
        *SERVICE_PRINCIPALS,
        "module.pump1",
        "module.tank-2",
        "sink.cloud",
    ]
    assert local_principals(None) == SERVICE_PRINCIPALS
    assert SERVICES == (
        "state",
        "historian",
        "echo",
        "sim",
        "logger",
        "modules",
        "proxy",
        "control",
    )


# -- init -----------------------------------------------------------------------------------------


def test_init_makes_the_brokers_pair_each_principals_and_admins(keyset: KeySet) -> None:
    done = keyset.init([*SERVICE_PRINCIPALS, "module.pump1"], ["alice"])
    assert done == [
        "broker: new key pair",
        *(f"{p}: new key pair" for p in SERVICE_PRINCIPALS),
        "module.pump1: new key pair",
        "user.alice: new key pair",
    ]
    for principal in ("broker", *SERVICE_PRINCIPALS, "module.pump1", "user.alice"):
        secret = read_key_file(keyset.secret_path(principal))
        public = read_key_file(keyset.public_path(principal))
        assert public.public == secret.public
        assert public.secret is None
        assert mode(keyset.secret_path(principal)) == 0o600
        assert mode(keyset.public_path(principal)) == 0o644
    assert mode(keyset.secrets_dir) == 0o700
    ring = load_keyring(keyset.keys_dir)
    assert ring.problems == ()
    assert ring.broker_key == public_of(keyset, "broker")
    assert set(ring.by_principal) == {*SERVICE_PRINCIPALS, "module.pump1", "user.alice"}
    assert ring.by_principal["user.alice"].grants.roles == frozenset({"admin"})
    assert ring.by_principal["module.pump1"].grants.roles == frozenset()
    assert read_key_file(keyset.public_path("module.pump1")).metadata == {
        "principal": "module.pump1"
    }


def test_init_is_idempotent(keyset: KeySet) -> None:
    keyset.init(SERVICE_PRINCIPALS, ["alice"])
    before = {
        p.name: p.read_bytes() for p in (*keyset.keys_dir.iterdir(), *keyset.secrets_dir.iterdir())
    }
    assert keyset.init(SERVICE_PRINCIPALS, ["alice"]) == []
    after = {
        p.name: p.read_bytes() for p in (*keyset.keys_dir.iterdir(), *keyset.secrets_dir.iterdir())
    }
    assert after == before


def test_init_tightens_the_secrets_directory(keyset: KeySet) -> None:
    keyset.secrets_dir.mkdir(parents=True, mode=0o755)
    keyset.secrets_dir.chmod(0o755)
    keyset.init([])
    assert mode(keyset.secrets_dir) == 0o700


def test_init_rewrites_a_missing_public_key_from_its_secret(keyset: KeySet) -> None:
    keyset.init(["service.echo"], ["alice"])
    secret = read_key_file(keyset.secret_path("service.echo"))
    keyset.public_path("service.echo").unlink()
    keyset.public_path("broker").unlink()
    keyset.public_path("user.alice").unlink()
    assert keyset.init(["service.echo"], ["alice"]) == [
        "broker: public key written again from its secret",
        "service.echo: public key written again from its secret",
        "user.alice: public key written again from its secret",
    ]
    assert read_key_file(keyset.public_path("service.echo")) == KeyFile(
        secret.public, None, {"principal": "service.echo"}
    )
    assert load_keyring(keyset.keys_dir).by_principal["user.alice"].grants.roles == {"admin"}


def test_init_keeps_a_key_admitted_with_its_secret_elsewhere(keyset: KeySet) -> None:
    laptop = generate()
    keyset.keys_dir.mkdir(parents=True)
    write_key_file(keyset.public_path("user.bob"), laptop, secret=False)
    assert keyset.init([], ["bob"]) == ["broker: new key pair"]
    assert public_of(keyset, "user.bob") == laptop.public
    assert not keyset.secret_path("user.bob").exists()


def test_init_never_readmits_a_revoked_principal(keyset: KeySet) -> None:
    keyset.init(["service.state", "module.pump1"], ["alice"])
    for principal in ("service.state", "module.pump1", "user.alice"):
        keyset.revoke(principal)
    assert keyset.init(["service.state", "module.pump1"], ["alice"]) == []
    ring = load_keyring(keyset.keys_dir)
    assert set(ring.by_principal) == set()
    assert sorted(ring.revoked.values()) == ["module.pump1", "service.state", "user.alice"]


def test_init_never_readmits_a_revoked_principal_whose_secret_is_gone(keyset: KeySet) -> None:
    keyset.init(["module.pump1"])
    keyset.revoke("module.pump1")
    keyset.secret_path("module.pump1").unlink()  # the compromised secret, removed
    keyset.init(["module.pump1"])
    assert "module.pump1" not in load_keyring(keyset.keys_dir).by_principal


def test_init_refuses_a_name_that_is_not_a_principal(keyset: KeySet) -> None:
    with pytest.raises(SecurityError, match=r"KIND\.NAME"):
        keyset.init(["pump1"])
    with pytest.raises(SecurityError, match=r"'user\.a b'"):
        keyset.init([], ["a b"])


# -- add ------------------------------------------------------------------------------------------


def test_add_a_public_key_file_made_elsewhere(tmp_path: Path, keyset: KeySet) -> None:
    theirs = generate({"principal": "whatever", "roles": "admin"})
    sent = tmp_path / "bob.key"
    write_key_file(sent, theirs, secret=False)
    path = keyset.add("user.bob", roles=("operator", "viewer"), public_file=sent)
    assert path == keyset.public_path("user.bob")
    # only the key is taken from their file: never their metadata
    assert read_key_file(path) == KeyFile(
        theirs.public, None, {"principal": "user.bob", "roles": "operator,viewer"}
    )
    assert mode(path) == 0o644
    entry = load_keyring(keyset.keys_dir).by_principal["user.bob"]
    assert entry.grants.roles == frozenset({"operator", "viewer"})


def test_add_from_a_secret_key_file_keeps_only_the_public_half(
    tmp_path: Path, keyset: KeySet
) -> None:
    theirs = generate()
    sent = tmp_path / "bob.key_secret"
    write_key_file(sent, theirs, secret=True)
    path = keyset.add("user.bob", public_file=sent)
    assert read_key_file(path) == KeyFile(theirs.public, None, {"principal": "user.bob"})
    assert "secret-key" not in path.read_text()


def test_add_generates_a_pair_and_writes_the_secret_where_asked(
    tmp_path: Path, keyset: KeySet
) -> None:
    out = tmp_path / "handover" / "alice.key_secret"
    keyset.add("user.alice", roles=("operator",), generate_secret=out)
    secret = read_key_file(out)
    assert secret.secret is not None
    assert mode(out) == 0o600
    assert public_of(keyset, "user.alice") == secret.public
    assert secret.metadata == {"principal": "user.alice", "roles": "operator"}


def test_add_with_serve_and_publish(tmp_path: Path, keyset: KeySet) -> None:
    keyset.add(
        "service.acme",
        serve=("org.acme.A", "org.acme.B*"),
        publish=("event.acme.",),
        generate_secret=tmp_path / "acme.key_secret",
    )
    assert read_key_file(keyset.public_path("service.acme")).metadata == {
        "principal": "service.acme",
        "serve": "org.acme.A,org.acme.B*",
        "publish": "event.acme.",
    }
    grants = load_keyring(keyset.keys_dir).grants("service.acme")
    assert grants is not None
    assert grants.serve == ("org.acme.A", "org.acme.B*")


def test_add_refuses_to_replace_unless_asked(tmp_path: Path, keyset: KeySet) -> None:
    first = keyset.add("user.alice", roles=("viewer",), generate_secret=tmp_path / "1")
    before = first.read_bytes()
    with pytest.raises(SecurityError, match=r"user\.alice is admitted already") as caught:
        keyset.add("user.alice", roles=("admin",), generate_secret=tmp_path / "2")
    assert "--replace" in str(caught.value)
    assert first.read_bytes() == before
    assert not (tmp_path / "2").exists()
    keyset.add("user.alice", roles=("admin",), generate_secret=tmp_path / "3", replace=True)
    assert public_of(keyset, "user.alice") == read_key_file(tmp_path / "3").public
    assert load_keyring(keyset.keys_dir).by_principal["user.alice"].grants.roles == {"admin"}


@pytest.mark.parametrize("principal", ["broker", "alice", "user.", "admin.x"])
def test_add_refuses_the_broker_and_names_that_are_not_principals(
    tmp_path: Path, keyset: KeySet, principal: str
) -> None:
    with pytest.raises(SecurityError):
        keyset.add(principal, generate_secret=tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert not keyset.public_path(principal).exists()


def test_add_of_the_broker_says_init_makes_it(tmp_path: Path, keyset: KeySet) -> None:
    with pytest.raises(SecurityError, match="plant keys init"):
        keyset.add("broker", generate_secret=tmp_path / "x")


def test_add_needs_a_key_file_or_a_new_pair(keyset: KeySet) -> None:
    with pytest.raises(SecurityError, match="public key file, or ask for a new pair"):
        keyset.add("user.alice")
    assert not keyset.public_path("user.alice").exists()


def test_add_of_an_unreadable_key_file_names_it(tmp_path: Path, keyset: KeySet) -> None:
    with pytest.raises(SecurityError, match=re.escape(str(tmp_path / "nope.key"))):
        keyset.add("user.alice", public_file=tmp_path / "nope.key")


# -- revoke ---------------------------------------------------------------------------------------


def test_revoke_moves_the_key_to_revoked_and_the_keyring_says_so(
    tmp_path: Path, keyset: KeySet
) -> None:
    keyset.add("user.alice", roles=("admin",), generate_secret=tmp_path / "a")
    public = public_of(keyset, "user.alice")
    moved = keyset.revoke("user.alice")
    assert moved.parent == keyset.keys_dir / "revoked"
    assert moved.name.startswith("user.alice.")
    assert moved.name.endswith(".key")
    assert not keyset.public_path("user.alice").exists()
    assert read_key_file(moved).public == public
    ring = load_keyring(keyset.keys_dir)
    assert "user.alice" not in ring.by_principal
    assert dict(ring.revoked) == {public: "user.alice"}


def test_revoke_of_somebody_not_admitted(keyset: KeySet) -> None:
    with pytest.raises(SecurityError, match=r"user\.ghost is not admitted"):
        keyset.revoke("user.ghost")


def test_two_revocations_in_the_same_second_keep_both_keys(
    tmp_path: Path, keyset: KeySet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same second, made certain: strftime answers one stamp throughout.
    monkeypatch.setattr(
        "plantd.security._keyset.time",
        SimpleNamespace(strftime=lambda fmt: time.strftime(fmt, (2024, 1, 1) + (0,) * 6)),
    )
    keyset.init(["service.state"])
    first = public_of(keyset, "service.state")
    keyset.rotate("service.state")
    second = public_of(keyset, "service.state")
    keyset.rotate("service.state")
    revoked = load_keyring(keyset.keys_dir).revoked
    assert set(revoked) == {first, second}


# -- rotate ---------------------------------------------------------------------------------------


def test_rotate_makes_a_new_pair_revokes_the_old_and_keeps_the_roles(
    keyset: KeySet,
) -> None:
    keyset.init(["service.state"], ["alice"])
    old_public = public_of(keyset, "service.state")
    old_admin = public_of(keyset, "user.alice")
    path = keyset.rotate("service.state")
    keyset.rotate("user.alice")
    assert path == keyset.public_path("service.state")
    new_public = public_of(keyset, "service.state")
    assert new_public != old_public
    secret = read_key_file(keyset.secret_path("service.state"))
    assert secret.public == new_public
    assert mode(keyset.secret_path("service.state")) == 0o600
    ring = load_keyring(keyset.keys_dir)
    assert ring.by_principal["service.state"].public == new_public
    assert ring.by_principal["user.alice"].grants.roles == frozenset({"admin"})
    assert ring.revoked[old_public] == "service.state"
    assert ring.revoked[old_admin] == "user.alice"
    assert read_key_file(keyset.public_path("user.alice")).metadata == {
        "principal": "user.alice",
        "roles": "admin",
    }


def test_rotate_needs_the_secret_here(tmp_path: Path, keyset: KeySet) -> None:
    sent = tmp_path / "bob.key"
    write_key_file(sent, generate(), secret=False)
    keyset.add("user.bob", public_file=sent)
    with pytest.raises(SecurityError, match="secret key is not on this machine") as caught:
        keyset.rotate("user.bob")
    assert "plant keys add --replace" in str(caught.value)
    assert keyset.public_path("user.bob").exists()


def test_rotate_needs_the_principal_admitted(keyset: KeySet) -> None:
    keyset.init(["service.state"])
    keyset.revoke("service.state")
    with pytest.raises(SecurityError, match=r"service\.state is not admitted"):
        keyset.rotate("service.state")


# -- list -----------------------------------------------------------------------------------------


def test_list_shows_admitted_then_revoked_then_broken(tmp_path: Path, keyset: KeySet) -> None:
    keyset.init(["service.state"], ["alice"])
    sent = tmp_path / "bob.key"
    bob = generate()
    write_key_file(sent, bob, secret=False)
    keyset.add("user.bob", roles=("viewer", "operator"), public_file=sent)
    keyset.add("user.carol", generate_secret=tmp_path / "carol")
    carol = public_of(keyset, "user.carol")
    keyset.revoke("user.carol")
    (keyset.keys_dir / "user.dave.key").write_text('curve\n    public-key = "short"\n')
    listed = keyset.list()
    assert [(item.principal, item.status[:7]) for item in listed] == [
        ("service.state", "admitte"),
        ("user.alice", "admitte"),
        ("user.bob", "admitte"),
        ("user.carol", "revoked"),
        ("user.dave", "broken:"),
    ]
    state, alice, bob_listed, carol_listed, dave = listed
    assert state.secret_here
    assert alice.secret_here
    assert not bob_listed.secret_here
    assert alice.roles == ("admin",)
    assert bob_listed == Listed(
        "user.bob",
        bob.public.decode(),
        ("operator", "viewer"),
        "admitted",
        False,
        keyset.public_path("user.bob"),
    )
    assert (carol_listed.public, carol_listed.secret_here) == (carol.decode(), False)
    assert dave.status == "broken: public-key is not a Z85-encoded CURVE key (40 characters)"
    assert dave.path == keyset.public_path("user.dave")


def test_list_names_a_file_broken_on_a_line(keyset: KeySet) -> None:
    keyset.keys_dir.mkdir(parents=True)
    (keyset.keys_dir / "user.erin.key").write_text("curve\n    public-key: nope\n")
    (broken,) = keyset.list()
    assert broken.principal == "user.erin"
    assert broken.path == keyset.public_path("user.erin")
