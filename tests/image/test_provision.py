"""The provisioning import (image/layers/appliance/…/usr/lib/plantd/provision), offline: a boot
partition, /etc/plantd and /var/lib/device in temporary directories, the checkout's `plant`
checking the result. All or nothing; the file renamed either way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
