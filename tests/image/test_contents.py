"""What the images hold, read from the image files themselves (mtools for the boot partition,
debugfs for the ext4 root; nothing mounted): for both targets, the Raspberry Pi's without
booting it (the amd64 one boots in test_boot.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from image.qemu import list_boot_partition, read_boot_partition
from tests.image.conftest import Built, Progress

pytestmark = [pytest.mark.image, pytest.mark.timeout(3600)]


def partitions(image: Path) -> list[dict[str, object]]:
    table = json.loads(
        subprocess.run(
            ["sfdisk", "--json", str(image)], capture_output=True, text=True, check=True
        ).stdout
    )["partitiontable"]
    parts: list[dict[str, object]] = table["partitions"]
    for part in parts:
        part["table"] = table["label"]
        part["disk_id"] = table.get("id")
    return parts


def debugfs(image: Path, start_sector: int, request: str) -> str:
    result = subprocess.run(
        ["debugfs", "-R", request, f"{image}?offset={start_sector * 512}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout


def root_has(built: Built, path: str) -> bool:
    root = partitions(built.image)[1]
    return "Inode:" in debugfs(built.image, int(str(root["start"])), f"stat {path}")


def check_root(built: Built) -> None:
    for path in (
        "/usr/lib/systemd/system/plantd-broker.service",
        "/usr/lib/systemd/system/plantd-state.service",
        "/usr/lib/systemd/system/plantd-module@.service",
        "/usr/lib/systemd/system/plantd.target",
        "/usr/lib/systemd/system-generators/plantd-module-generator",
        "/usr/lib/sysusers.d/plantd.conf",
        "/etc/systemd/system/multi-user.target.wants/plantd.target",
        "/etc/systemd/system/plantd.target.wants/plantd-broker.service",
        "/etc/systemd/system/plantd.target.wants/plantd-state.service",
        "/etc/systemd/system/plantd.target.wants/plantd-keys.service",
        "/usr/lib/tmpfiles.d/plantd.conf",
        "/etc/systemd/system/multi-user.target.wants/plantd-firstboot.service",
        "/opt/plantd/venv/bin/plant",
        "/etc/plantd/plantd.yaml",
        "/etc/plantd/modules.d/energy-meter.yaml.example",
        "/usr/share/doc/plantd/appliance.md",
    ):
        assert root_has(built, path), path
    for secret in ("/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key"):
        assert not root_has(built, secret), f"{secret}: host keys must be made per device"
    # No CURVE key either: plantd-keys.service makes them on the device, at every boot.
    parts = partitions(built.image)
    root_start, data_start = int(str(parts[1]["start"])), int(str(parts[3]["start"]))
    # (/var/lib/plantd/secrets is /lib/plantd/secrets on the data partition.)
    for start, folder in ((root_start, "/etc/plantd/keys"), (data_start, "/lib/plantd/secrets")):
        listing = debugfs(built.image, start, f"ls -l {folder}")
        assert "Inode:" in debugfs(built.image, start, f"stat {folder}"), folder
        assert ".key" not in listing, f"{folder} in the image holds keys:\n{listing}"
    # /var is the data partition's: the root's is an empty mount point.
    root = partitions(built.image)[1]
    listing = debugfs(built.image, int(str(root["start"])), "ls -p /var")
    assert [line for line in listing.splitlines() if line.strip()][2:] == []


def check_manifest(built: Built, kernel: str, arch: str) -> None:
    manifest = built.manifest
    assert re.search(rf"^deb\t{kernel}\t\S+\t{arch}$", manifest, re.M), kernel
    assert re.search(r"^deb\tpython3-systemd\t", manifest, re.M)
    assert re.search(r"^python\tplantd\t0\.", manifest, re.M)
    assert re.search(r"^python\tpyzmq\t\d", manifest, re.M)


def check_update(built: Built) -> None:
    """The signed bundle beside the image, and what the image needs to install one."""
    bundle = built.out / f"plantd-{built.target}.raucb"
    assert built.report["bundle"] == bundle.name
    certificate = built.report["signing"]["certificate"]
    info = subprocess.run(
        ["rauc", "info", "--keyring", certificate, "--output-format=json", str(bundle)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    manifest = json.loads(info)
    assert manifest["compatible"] == f"plantd-{built.target}"
    assert [image["filename"] for image in manifest["images"][0].values()] == ["root.ext4"]
    for path in (
        "/etc/rauc/system.conf",
        "/etc/rauc/keyring.pem",
        "/usr/lib/plantd/cmdline",
        "/usr/lib/systemd/system/plantd-boot-check.service",
        "/etc/systemd/system/multi-user.target.wants/plantd-boot-check.service",
        "/opt/plantd/venv/bin/plantd-slots",
        "/usr/bin/rauc",
    ):
        assert root_has(built, path), path


def test_amd64_contents(amd64: Built) -> None:
    parts = partitions(amd64.image)
    assert [p["table"] for p in parts[:1]] == ["gpt"]
    assert len(parts) == 4
    uuids = amd64.report["partuuids"]
    assert [str(p["uuid"]).lower() for p in parts] == [
        uuids["boot"], uuids["root_a"], uuids["root_b"], uuids["data"],
    ]  # fmt: skip
    assert all(int(str(p["start"])) % 8192 == 0 for p in parts)  # 4 MiB aligned
    boot = list_boot_partition(amd64.image)
    assert sorted(boot) == [
        "EFI/BOOT/BOOTX64.EFI", "a/initrd.img", "a/vmlinuz",
        "loader/entries/plantd-1-a.conf", "loader/loader.conf",
    ]  # fmt: skip
    entry = read_boot_partition(amd64.image, "loader/entries/plantd-1-a.conf")
    assert entry is not None
    assert f"root=PARTUUID={uuids['root_a']} ro " in entry.decode()
    assert "plantd.slot=a rauc.slot=a" in entry.decode()
    # No default: the first entry in systemd-boot's order boots (plantd/system/_slots.py).
    loader = read_boot_partition(amd64.image, "loader/loader.conf")
    assert loader is not None
    assert "default" not in loader.decode()
    # RAUC finds the slots by GPT partition name, the same on every device of the target.
    assert [p.get("name") for p in parts] == ["boot", "root-a", "root-b", "data"]
    check_update(amd64)
    check_root(amd64)
    check_manifest(amd64, "linux-image-amd64", "amd64")


@pytest.fixture(scope="module")
def rpi(tmp_path_factory: pytest.TempPathFactory, progress: Progress) -> Built:
    """The Pi image: PLANTD_IMAGE_RPI_OUT reuses a build; PLANTD_IMAGE_ARM64=1 builds one (its
    maintainer scripts and initramfs run under qemu-user: about 20 minutes here, too long for
    every CI run; `make test-image-arm64`)."""
    from tests.image.conftest import _require_builder, build

    reuse = os.environ.get("PLANTD_IMAGE_RPI_OUT")
    if reuse:
        out = Path(reuse).resolve()
        return Built("rpi-arm64", out, json.loads((out / "build.json").read_text()))
    if os.environ.get("PLANTD_IMAGE_ARM64") != "1":
        pytest.skip("the arm64 build takes ~20 min under qemu-user: PLANTD_IMAGE_ARM64=1")
    _require_builder(("qemu-aarch64-static",))
    return build("rpi-arm64", tmp_path_factory.mktemp("image-rpi"), progress)


def test_raspberry_pi_contents(rpi: Built) -> None:
    parts = partitions(rpi.image)
    assert len(parts) == 4
    assert parts[0]["table"] == "dos"
    assert [str(p["type"]) for p in parts] == ["c", "83", "83", "83"]
    signature = str(parts[0]["disk_id"]).removeprefix("0x")
    assert rpi.report["partuuids"]["root_a"] == f"{signature}-02"
    boot = list_boot_partition(rpi.image)
    for name in ("config.txt", "cmdline.txt", "start4.elf", "fixup4.dat", "bootcode.bin",
                 "bcm2711-rpi-4-b.dtb", "bcm2837-rpi-3-b.dtb"):  # fmt: skip
        assert name in boot, name
    assert any(name.startswith("vmlinuz-") for name in boot)
    assert any(name.startswith("initrd.img-") for name in boot)
    config = (read_boot_partition(rpi.image, "config.txt") or b"").decode()
    assert "arm_64bit=1" in config
    assert re.search(r"^kernel=vmlinuz-\S+-arm64$", config, re.M)
    assert re.search(r"^initramfs initrd\.img-\S+-arm64", config, re.M)
    cmdline = (read_boot_partition(rpi.image, "cmdline.txt") or b"").decode()
    assert f"root=PARTUUID={signature}-02 ro " in cmdline
    assert "console=ttyS1,115200" in cmdline
    check_root(rpi)
    check_manifest(rpi, "linux-image-arm64", "arm64")
    assert re.search(r"^deb\traspi-firmware\t", rpi.manifest, re.M)
    # The venv's compiled extensions are aarch64's.
    root = int(str(parts[1]["start"]))
    cython = debugfs(
        rpi.image, root, "ls /opt/plantd/venv/lib/python3.11/site-packages/zmq/backend/cython"
    )
    assert "aarch64-linux-gnu.so" in cython
