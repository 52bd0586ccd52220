"""The provisioning import (image/layers/appliance/…/usr/lib/plantd/provision), offline: a boot
partition, /etc/plantd and /var/lib/device in temporary directories, the checkout's `plant`
checking the result (and admitting the people of ``users:`` by their public keys). All or
nothing; the file renamed either way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from plantd.security import generate, write_key_file

REPO = Path(__file__).resolve().parents[2]
PROVISION = REPO / "image/layers/appliance/overlay/usr/lib/plantd/provision"
PLANT = Path(sys.executable).with_name("plant")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGvXc2kBPm8pTKwTJKcJYk2QtDQ5Y8cFmQqQJ8r3E6kE me@laptop"
MODULE = """\
  demo:
    driver: fake
    groups:
      - name: main
        interval: 1s
        points:
          - {name: level, value: 1.0}
"""


class Device:
    def __init__(self, root: Path) -> None:
        self.boot = root / "boot"
        self.config = root / "etc/plantd"
        self.device = root / "var/lib/device"
        for folder in (self.boot, self.config / "modules.d", self.device):
            folder.mkdir(parents=True)
        (self.config / "plantd.yaml").write_text("logging: {level: info}\n")
        (self.config / "modules.d/old.yaml").write_text("driver: fake\n")
        (self.device / "hostname").write_text("plantd-abc123\n")

    def run(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(PROVISION), "--offline", "--boot", str(self.boot),
             "--config", str(self.config), "--device", str(self.device), "--plant", str(PLANT)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    def files(self) -> list[str]:
        return sorted(p.name for p in self.boot.iterdir())


@pytest.fixture
def device(tmp_path: Path) -> Device:
    return Device(tmp_path)


def test_a_full_provisioning_file(device: Device) -> None:
    (device.boot / "plantd-provision.yaml").write_text(
        f"hostname: pump-station-3\n"
        f"ssh_authorized_keys: ['{KEY}']\n"
        f"plantd:\n  logging: {{level: debug}}\n"
        f"modules:\n{MODULE}"
        f"remove_modules: [old]\n"
    )
    result = device.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert device.files() == ["plantd-provision.yaml.imported"]
    assert (device.device / "hostname").read_text() == "pump-station-3\n"
    assert (device.device / "ssh/authorized_keys/root").read_text() == KEY + "\n"
    assert (device.device / "ssh/authorized_keys/root").stat().st_mode & 0o777 == 0o600
    assert "level: debug" in (device.config / "plantd.yaml").read_text()
    demo = device.config / "modules.d/demo.yaml"
    assert demo.read_text().startswith("# Written by plantd-provision")
    assert demo.stat().st_mode & 0o777 == 0o640
    assert not (device.config / "modules.d/old.yaml").exists()
    assert "/etc/plantd/modules.d/demo.yaml" in result.stdout


def test_authorized_keys_alone_and_merged(device: Device) -> None:
    keys = device.device / "ssh/authorized_keys/root"
    keys.parent.mkdir(parents=True)
    keys.write_text("ssh-ed25519 AAAAexisting old@key\n")
    (device.boot / "authorized_keys").write_text(f"# the engineer's laptop\n{KEY}\n\n")
    result = device.run()
    assert result.returncode == 0, result.stderr
    assert device.files() == ["authorized_keys.imported"]
    assert keys.read_text().splitlines() == ["ssh-ed25519 AAAAexisting old@key", KEY]
    assert (device.config / "modules.d/old.yaml").exists()  # nothing else changed


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("hostname: -bad-\n", "hostname: expected letters"),
        ("modules:\n  bad.name: {driver: fake}\n", "a name has letters"),
        ("ssh_authorized_keys: [not a key]\n", "ssh_authorized_keys[0]: not an OpenSSH"),
        ("hostnam: typo\n", "hostnam: unknown key"),
        ("modules: [demo]\n", "modules: expected a mapping"),
        ("[unclosed\n", "plantd-provision.yaml:"),
        # Valid shape, but plant config check refuses it: nothing may change either.
        (
            "plantd:\n  broker: {endpoint: 'tcp://0.0.0.0:9797'}\n  security: {mode: none}\n",
            "is not on loopback",
        ),
        ("modules:\n  demo: {drivr: fake}\n", "driver: required key is missing"),
    ],
)
def test_a_bad_file_changes_nothing_and_says_why(
    device: Device, document: str, problem: str
) -> None:
    (device.boot / "plantd-provision.yaml").write_text(document)
    before = {p: p.read_text() for p in device.config.rglob("*.yaml")}
    result = device.run()
    assert result.returncode == 1
    assert device.files() == ["plantd-provision.errors.txt", "plantd-provision.yaml.failed"]
    errors = (device.boot / "plantd-provision.errors.txt").read_text()
    assert errors.startswith("plantd-provision: nothing was changed, because:\n")
    assert problem in errors
    assert {p: p.read_text() for p in device.config.rglob("*.yaml")} == before
    assert (device.device / "hostname").read_text() == "plantd-abc123\n"
    assert str(device.config) not in errors  # paths as the technician knows them


def test_a_bad_authorized_keys_file(device: Device) -> None:
    (device.boot / "authorized_keys").write_text("my password is hunter2\n")
    assert device.run().returncode == 1
    assert device.files() == ["authorized_keys.failed", "plantd-provision.errors.txt"]


def test_an_empty_file_is_imported_and_changes_nothing(device: Device) -> None:
    (device.boot / "plantd-provision.yaml").write_text("# nothing yet\n")
    assert device.run().returncode == 0
    assert device.files() == ["plantd-provision.yaml.imported"]
    assert (device.config / "modules.d/old.yaml").exists()


def test_a_later_success_clears_the_old_errors(device: Device) -> None:
    (device.boot / "plantd-provision.errors.txt").write_text("old\n")
    (device.boot / "plantd-provision.yaml").write_text("hostname: line-2\n")
    assert device.run().returncode == 0
    assert device.files() == ["plantd-provision.yaml.imported"]


# -- users: people admitted by their public key -----------------------------------------------


def public_key_file(tmp_path: Path, principal: str) -> tuple[str, str]:
    """A key pair made as `plant keys new` makes it: (the Z85 public key, the .key file's text)."""
    key = generate({"principal": principal})
    path = tmp_path / f"{principal}.key"
    write_key_file(path, key, secret=False, comment=f"plantd public key of {principal}")
    return key.public.decode(), path.read_text()


def block(text: str, indent: int = 6) -> str:
    """``text`` as a YAML literal block under a key."""
    return "|\n" + "".join(" " * indent + line + "\n" for line in text.splitlines())


def admitted(device: Device) -> dict[str, tuple[str, list[str], str]]:
    """`plant keys list` of the device's configuration: principal -> (status, roles, key)."""
    listed = subprocess.run(
        [str(PLANT), "--config", str(device.config), "--json", "keys", "list"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return {
        item["principal"]: (item["status"], item["roles"], item["public_key"])
        for item in json.loads(listed.stdout)
    }


def test_users_are_admitted_by_their_public_key(device: Device, tmp_path: Path) -> None:
    alice, _ = public_key_file(tmp_path, "user.alice")
    bob, bob_file = public_key_file(tmp_path, "user.bob")
    (device.boot / "plantd-provision.yaml").write_text(
        f"users:\n"
        f"  alice: {{public_key: '{alice}', roles: [admin]}}\n"
        f"  bob:\n    public_key: {block(bob_file)}    roles: [viewer, operator]\n"
    )
    result = device.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert device.files() == ["plantd-provision.yaml.imported"]
    assert admitted(device) == {
        "user.alice": ("admitted", ["admin"], alice),
        "user.bob": ("admitted", ["operator", "viewer"], bob),
    }
    key = device.config / "keys/user.alice.key"
    assert key.stat().st_mode & 0o777 == 0o640  # the plantd group reads it, nobody else
    assert "secret" not in key.read_text()
    assert "/etc/plantd/keys/user.alice.key" in result.stdout
    assert not list(device.config.glob("keys/.*"))  # no temporary file left behind


def test_a_user_admitted_again_gets_the_new_key_and_roles(device: Device, tmp_path: Path) -> None:
    old, _ = public_key_file(tmp_path, "user.old")
    subprocess.run(
        [str(PLANT), "--config", str(device.config), "keys", "add", "user.alice",
         "--key", str(tmp_path / "user.old.key"), "--role", "viewer"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert admitted(device)["user.alice"] == ("admitted", ["viewer"], old)
    new, _ = public_key_file(tmp_path, "user.alice")
    (device.boot / "plantd-provision.yaml").write_text(
        f"users:\n  alice: {{public_key: '{new}', roles: [engineer]}}\n"
    )
    assert device.run().returncode == 0
    assert admitted(device)["user.alice"] == ("admitted", ["engineer"], new)


def test_a_role_the_same_file_defines(device: Device, tmp_path: Path) -> None:
    alice, _ = public_key_file(tmp_path, "user.alice")
    (device.boot / "plantd-provision.yaml").write_text(
        "plantd:\n  security:\n    roles: [{name: maintainer, access: [read, operate]}]\n"
        f"users:\n  alice: {{public_key: '{alice}', roles: [maintainer]}}\n"
    )
    result = device.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert admitted(device)["user.alice"] == ("admitted", ["maintainer"], alice)


ALICE_BLOCK = "users:\n  alice:\n    public_key: {}    roles: [admin]\n"  # a .key file's text
BAD_USERS = [
    ("users: [alice]\n", "users: expected a mapping"),
    ("users:\n  bad.name: {public_key: KEY, roles: [admin]}\n", "users: 'bad.name': a name"),
    ("users:\n  root: {public_key: KEY, roles: [admin]}\n", "users.root: root has its own"),
    ("users:\n  alice: KEY\n", "users.alice: expected a mapping with public_key and roles"),
    ("users:\n  alice: {roles: [admin]}\n", "users.alice.public_key: expected the person's"),
    ("users:\n  alice: {public_key: 'abc', roles: [admin]}\n", "users.alice.public_key: expected"),
    ("users:\n  alice: {public_key: KEY}\n", "users.alice.roles: expected a list of roles"),
    ("users:\n  alice: {public_key: KEY, roles: admin}\n", "users.alice.roles: expected a list"),
    ("users:\n  alice: {public_key: KEY, role: [admin]}\n", "users.alice.role: unknown key"),
    ("users:\n  alice: {public_key: KEY, roles: [boss]}\n", "users.alice.roles: 'boss': not a"),
    (ALICE_BLOCK.format("SECRET"), "users.alice.public_key: this is a SECRET"),
    (ALICE_BLOCK.format("FILE"), "users.alice.public_key: the key file says"),
    (ALICE_BLOCK.format("BROKEN"), "users.alice.public_key: public-key is not"),
    (
        "users:\n  alice: {public_key: KEY, roles: [admin]}\n"
        "  carol: {public_key: KEY, roles: [viewer]}\n",
        "users.carol.public_key: the same key as /etc/plantd/keys/user.alice.key",
    ),
]


@pytest.mark.parametrize(("users", "problem"), BAD_USERS)
def test_bad_users_change_nothing_and_say_why(
    device: Device, tmp_path: Path, users: str, problem: str
) -> None:
    key, _ = public_key_file(tmp_path, "user.alice")
    _, bob_file = public_key_file(tmp_path, "user.bob")
    secret = tmp_path / "user.alice.key_secret"
    write_key_file(secret, generate({"principal": "user.alice"}), secret=True)
    broken = bob_file.replace("user.bob", "user.alice").replace('public-key = "', 'public-key = "x')
    users = (
        users.replace("KEY", f"'{key}'")
        .replace("SECRET", block(secret.read_text()))
        .replace("FILE", block(bob_file))
        .replace("BROKEN", block(broken))
    )
    # A good module in the same file: all or nothing, it must not be written either.
    (device.boot / "plantd-provision.yaml").write_text(f"modules:\n{MODULE}{users}")
    result = device.run()
    assert result.returncode == 1, result.stdout
    assert device.files() == ["plantd-provision.errors.txt", "plantd-provision.yaml.failed"]
    errors = (device.boot / "plantd-provision.errors.txt").read_text()
    assert f"plantd-provision.yaml: {problem}" in errors
    assert not (device.config / "keys").exists()
    assert not (device.config / "modules.d/demo.yaml").exists()
    assert str(device.config) not in errors
    assert str(tmp_path) not in errors
