"""``plant keys`` (plantd.cli._keys_cmd) through ``plantd.cli.main`` on a temporary config."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from plantd.cli import main
from plantd.security import load_keyring, read_key_file, use_identity


@pytest.fixture
def etc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A config directory (data in tmp_path/data, one module) and a clean environment."""
    for name in list(os.environ):
        if name.startswith("PLANTD_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    config_dir = tmp_path / "etc"
    (config_dir / "modules.d").mkdir(parents=True)
    (config_dir / "plantd.yaml").write_text(
        yaml.safe_dump({"paths": {"data": str(tmp_path / "data")}})
    )
    (config_dir / "modules.d" / "pump1.yaml").write_text("driver: fake\n")
    try:
        yield config_dir
    finally:
        use_identity(None)  # main() set the user's identity for the process


@pytest.fixture
def keys(etc: Path) -> Path:
    return etc / "keys"


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    return tmp_path / "data" / "secrets"


def plant(etc: Path, *argv: str) -> int:
    return main(["--config", str(etc), *argv])


def plant_json(etc: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert plant(etc, *argv, "--json") == 0
    return json.loads(capsys.readouterr().out)


LOCAL = [
    "service.state",
    "service.historian",
    "service.echo",
    "service.sim",
    "service.logger",
    "service.modules",
    "service.proxy",
    "service.control",
    "module.pump1",
]


# -- init -----------------------------------------------------------------------------------------


def test_init_makes_every_key_then_has_nothing_to_do(
    etc: Path, keys: Path, secrets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plant(etc, "keys", "init", "--admin", "alice") == 0
    out, err = capsys.readouterr()
    *made, certificate, where = out.splitlines()
    assert made == [
        "broker: new key pair",
        *(f"{p}: new key pair" for p in LOCAL),
        "user.alice: new key pair",
    ]
    assert certificate.startswith("tls: new device certificate for ")
    assert "localhost, 127.0.0.1, ::1" in certificate
    assert certificate.endswith(f"({keys / 'tls' / 'device.crt'})")
    assert where == f"(keys in {keys}, secrets in {secrets})"
    assert err == ""
    ring = load_keyring(keys)
    assert set(ring.by_principal) == {*LOCAL, "user.alice"}
    assert ring.broker_key is not None
    assert plant(etc, "keys", "init", "--admin", "alice") == 0
    assert capsys.readouterr().out == (
        f"every key is there already\n(keys in {keys}, secrets in {secrets})\n"
    )


def test_init_json(
    etc: Path, keys: Path, secrets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = plant_json(etc, capsys, "keys", "init")
    *made, certificate = report.pop("done")
    assert report == {"keys": str(keys), "secrets": str(secrets)}
    assert made == ["broker: new key pair", *(f"{p}: new key pair" for p in LOCAL)]
    assert certificate.startswith("tls: new device certificate for ")
    assert plant_json(etc, capsys, "keys", "init")["done"] == []


def test_init_with_an_owner_that_does_not_exist(
    etc: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plant(etc, "keys", "init", "--owner", "no-such-user-here") == 1
    assert capsys.readouterr().err == "plant: error: --owner: no system user 'no-such-user-here'\n"
    assert not keys.exists()


# -- list -----------------------------------------------------------------------------------------


def test_list_json(etc: Path, keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plant(etc, "keys", "init", "--admin", "alice")
    capsys.readouterr()
    listed = plant_json(etc, capsys, "keys", "list")
    assert [item["principal"] for item in listed] == sorted([*LOCAL, "user.alice"])
    alice = next(item for item in listed if item["principal"] == "user.alice")
    assert alice == {
        "principal": "user.alice",
        "status": "admitted",
        "roles": ["admin"],
        "secret_here": True,
        "public_key": read_key_file(keys / "user.alice.key").public.decode(),
        "file": str(keys / "user.alice.key"),
    }


def test_list_shows_a_table_and_broken_files(
    etc: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant(etc, "keys", "init")
    (keys / "user.zed.key").write_text("nothing\n")
    capsys.readouterr()
    assert plant(etc, "keys", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["PRINCIPAL", "STATUS", "ROLES", "SECRET", "HERE", "KEY"]
    assert lines[1].split()[:4] == ["module.pump1", "admitted", "-", "yes"]
    assert lines[-2].split()[:2] == ["user.zed", "broken:"]
    assert lines[-1] == (f"    {keys / 'user.zed.key'}: broken: no public-key in its curve section")


# -- add ------------------------------------------------------------------------------------------


def test_add_generates_a_pair(
    tmp_path: Path, etc: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant(etc, "keys", "init")
    capsys.readouterr()
    secret = tmp_path / "alice.key_secret"
    assert (
        plant(etc, "keys", "add", "user.alice", "--generate", str(secret), "--role", "operator")
        == 0
    )
    assert capsys.readouterr().out == (
        f"user.alice admitted ({keys / 'user.alice.key'}); its secret key is in {secret}: "
        "hand it over securely, then delete it\n"
    )
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    entry = load_keyring(keys).by_principal["user.alice"]
    assert entry.public == read_key_file(secret).public
    assert entry.grants.roles == frozenset({"operator"})


def test_add_json_with_a_public_key_and_several_roles(
    tmp_path: Path, etc: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plant(etc, "keys", "new", "user.bob", "--out", str(tmp_path / "bob.key_secret")) == 0
    capsys.readouterr()
    report = plant_json(
        etc,
        capsys,
        "keys",
        "add",
        "user.bob",
        "--key",
        str(tmp_path / "bob.key"),
        "--role",
        "viewer",
        "--role",
        "engineer",
    )
    assert report == {"principal": "user.bob", "file": str(keys / "user.bob.key")}
    entry = load_keyring(keys).by_principal["user.bob"]
    assert entry.grants.roles == frozenset({"viewer", "engineer"})
    assert entry.public == read_key_file(tmp_path / "bob.key_secret").public


def test_add_refuses_an_admitted_principal_unless_replace(
    tmp_path: Path, etc: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant(etc, "keys", "add", "user.alice", "--generate", str(tmp_path / "a1"), "--role", "viewer")
    capsys.readouterr()
    code = plant(etc, "keys", "add", "user.alice", "--generate", str(tmp_path / "a2"))
    assert code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"plant: user.alice is admitted already ({keys / 'user.alice.key'})")
    assert "--replace" in err
    assert not (tmp_path / "a2").exists()
    args = ["keys", "add", "user.alice", "--generate", str(tmp_path / "a3"), "--replace"]
    assert plant(etc, *args, "--role", "admin") == 0
    assert load_keyring(keys).by_principal["user.alice"].grants.roles == frozenset({"admin"})


def test_add_refuses_to_overwrite_a_secret_file(
    tmp_path: Path, etc: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "precious"
    existing.write_text("keep me")
    assert plant(etc, "keys", "add", "user.alice", "--generate", str(existing)) == 1
    assert capsys.readouterr().err == (
        f"plant: error: --generate: {existing} exists; not overwriting a secret key\n"
    )
    assert existing.read_text() == "keep me"
    assert not (keys / "user.alice.key").exists()


@pytest.mark.parametrize(
    ("principal", "expected"),
    [("alice", "'alice'"), ("broker", "plant keys init"), ("user.a.b", "'user.a.b'")],
)
def test_add_names_a_bad_principal(
    tmp_path: Path,
    etc: Path,
    capsys: pytest.CaptureFixture[str],
    principal: str,
    expected: str,
) -> None:
    assert plant(etc, "keys", "add", principal, "--generate", str(tmp_path / "x")) == 2
    err = capsys.readouterr().err
    assert err.startswith("plant: ")
    assert expected in err


def test_add_names_a_key_file_that_is_not_a_key(
    tmp_path: Path, etc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text('curve\n    public-key = "nope"\n')
    assert plant(etc, "keys", "add", "user.alice", "--key", str(bad)) == 2
    assert capsys.readouterr().err == (
        f"plant: {bad}: public-key is not a Z85-encoded CURVE key (40 characters)\n"
    )


def test_add_needs_a_key_or_generate(etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        plant(etc, "keys", "add", "user.alice")
    assert caught.value.code == 2
    assert "one of the arguments --key --generate is required" in capsys.readouterr().err


# -- revoke and rotate ----------------------------------------------------------------------------


def test_revoke(tmp_path: Path, etc: Path, keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plant(etc, "keys", "add", "user.alice", "--generate", str(tmp_path / "a"))
    public = read_key_file(keys / "user.alice.key").public
    capsys.readouterr()
    report = plant_json(etc, capsys, "keys", "revoke", "user.alice")
    moved = Path(report["file"])
    assert report["principal"] == "user.alice"
    assert moved.parent == keys / "revoked"
    ring = load_keyring(keys)
    assert "user.alice" not in ring.by_principal
    assert ring.revoked[public] == "user.alice"
    assert plant(etc, "keys", "revoke", "user.alice") == 2
    assert capsys.readouterr().err == (
        f"plant: user.alice is not admitted (no {keys / 'user.alice.key'})\n"
    )


def test_revoke_human_output(tmp_path: Path, etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plant(etc, "keys", "add", "user.alice", "--generate", str(tmp_path / "a"))
    capsys.readouterr()
    assert plant(etc, "keys", "revoke", "user.alice") == 0
    out = capsys.readouterr().out
    assert out.startswith("user.alice revoked (kept as ")
    assert out.endswith("its connections are cut within a second\n")


def test_rotate_a_service(
    etc: Path, keys: Path, secrets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant(etc, "keys", "init")
    old = read_key_file(keys / "service.state.key").public
    capsys.readouterr()
    assert plant(etc, "keys", "rotate", "service.state") == 0
    assert capsys.readouterr().out == (
        f"service.state has a new key ({keys / 'service.state.key'}); the old one is revoked\n"
    )
    ring = load_keyring(keys)
    new = ring.by_principal["service.state"].public
    assert new != old
    assert read_key_file(secrets / "service.state.key_secret").public == new
    assert ring.revoked[old] == "service.state"


def test_rotate_without_the_secret_here(
    tmp_path: Path, etc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant(etc, "keys", "new", "user.bob", "--out", str(tmp_path / "bob.key_secret"))
    plant(etc, "keys", "add", "user.bob", "--key", str(tmp_path / "bob.key"))
    capsys.readouterr()
    assert plant(etc, "keys", "rotate", "user.bob") == 2
    assert "user.bob's secret key is not on this machine" in capsys.readouterr().err


# -- new ------------------------------------------------------------------------------------------


def test_new_writes_both_halves(
    tmp_path: Path, etc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "me" / "bob.key_secret"
    assert plant(etc, "keys", "new", "user.bob", "--out", str(out)) == 0
    public = tmp_path / "me" / "bob.key"
    assert capsys.readouterr().out == (
        f"secret key: {out} (keep it)\npublic key: {public} — send it to an administrator, "
        "who runs: plant keys add user.bob --key bob.key --role ROLE\n"
    )
    secret_half, public_half = read_key_file(out), read_key_file(public)
    assert secret_half.secret is not None
    assert public_half.secret is None
    assert public_half.public == secret_half.public
    assert public_half.metadata == {"principal": "user.bob"}
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644


def test_new_defaults_to_the_users_config_directory(
    tmp_path: Path, etc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = plant_json(etc, capsys, "keys", "new", "user.bob")
    where = tmp_path / "xdg" / "plantd"
    assert report == {
        "secret": str(where / "identity.key_secret"),
        "public": str(where / "identity.key"),
    }
    assert read_key_file(where / "identity.key_secret").secret is not None


def test_new_refuses_to_overwrite_a_secret(
    tmp_path: Path, etc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bob.key_secret"
    out.write_text("keep me")
    assert plant(etc, "keys", "new", "user.bob", "--out", str(out)) == 2
    assert capsys.readouterr().err == (
        f"plant: {out} exists; not overwriting a secret key (use --out)\n"
    )
    assert out.read_text() == "keep me"


def test_new_refuses_a_name_that_is_not_a_principal(
    tmp_path: Path, etc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plant(etc, "keys", "new", "bob", "--out", str(tmp_path / "b")) == 1
    err = capsys.readouterr().err
    assert err.startswith("plant: error: a principal is KIND.NAME")
    assert "'bob'" in err
    assert not (tmp_path / "b").exists()


# -- configuration --------------------------------------------------------------------------------


def test_a_missing_config_directory(
    tmp_path: Path, etc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope"
    assert main(["--config", str(missing), "keys", "list"]) == 2
    assert capsys.readouterr().err == (
        f"plant: invalid configuration:\n{missing}: config directory does not exist\n"
    )


def test_keys_go_where_the_security_section_says(
    tmp_path: Path, etc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (etc / "plantd.yaml").write_text(
        yaml.safe_dump(
            {
                "paths": {"data": str(tmp_path / "data")},
                "security": {"keys": str(tmp_path / "k"), "secrets": str(tmp_path / "s")},
            }
        )
    )
    report = plant_json(etc, capsys, "keys", "init")
    assert (report["keys"], report["secrets"]) == (str(tmp_path / "k"), str(tmp_path / "s"))
    assert (tmp_path / "k" / "broker.key").exists()
    assert (tmp_path / "s" / "broker.key_secret").exists()
