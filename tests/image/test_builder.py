"""image/build.py without building: targets and layers load, the mmdebstrap command is the
layers in order, genimage gets the layout the boot relies on (no root needed)."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from image import build as builder

# Where a build would find its signing pair (these tests make no bundle).
SIGNING = builder.Signing(
    Path("/nonexistent/release.key.pem"), Path("/nonexistent/release.cert.pem")
)

TARGETS = sorted(p.stem for p in (builder.IMAGE_DIR / "targets").glob("*.toml"))


def test_the_two_targets() -> None:
    assert TARGETS == ["amd64", "rpi-arm64"]


@pytest.mark.parametrize("name", TARGETS)
def test_targets_and_their_layers_load(name: str) -> None:
    target = builder.load_target(name)
    assert "{root_partuuid}" in target.cmdline
    assert " ro " in f" {target.cmdline} "
    for layer_name in target.layers:
        layer = builder.load_layer(layer_name)
        assert layer.description
        if layer.customize:
            result = subprocess.run(["sh", "-n", str(layer.customize)], check=False)
            assert result.returncode == 0, layer.customize


def test_the_mmdebstrap_command_is_the_layers_in_order(tmp_path: Path) -> None:
    target = builder.load_target("amd64")
    build = builder.Build(target=target, out=tmp_path, work=tmp_path / "work", signing=SIGNING)
    layers = [builder.load_layer(name) for name in target.layers]
    command = builder.mmdebstrap_command(build, layers)
    assert command[:3] == ["mmdebstrap", "--mode=root", "--variant=essential"]
    include = next(a for a in command if a.startswith("--include=")).split("=", 1)[1].split(",")
    assert {"linux-image-amd64", "systemd", "python3-systemd", "openssh-server"} <= set(include)
    assert "--dpkgopt=path-exclude=/lib/modules/*/kernel/sound/*" in command
    hooks = [a for a in command if a.startswith("--customize-hook=")]
    order = [h.split("/layers/")[1].split("/")[0] for h in hooks]
    assert order == sorted(order, key=list(target.layers).index)
    assert order[-1] == "update"
    early = [a for a in command if a.startswith("--essential-hook=")]
    assert early == [f"--essential-hook=sync-in {builder.IMAGE_DIR}/layers/readonly/early /"]
    assert command[-3:] == ["bookworm", str(build.rootfs), "http://deb.debian.org/debian"]


def test_the_pip_platforms_cover_manylinux2014_to_bookworms_glibc() -> None:
    options = builder.pip_target_options(builder.load_target("rpi-arm64"))
    platforms = [o.split("=", 1)[1] for o in options if o.startswith("--platform=")]
    assert platforms[0] == "manylinux_2_36_aarch64"
    assert "manylinux_2_17_aarch64" in platforms
    assert platforms[-1] == "manylinux2014_aarch64"
    assert "--only-binary=:all:" in options


@pytest.mark.parametrize(("name", "table"), [("amd64", "gpt"), ("rpi-arm64", "mbr")])
def test_the_disk_layout(tmp_path: Path, name: str, table: str) -> None:
    target = builder.load_target(name)
    build = builder.Build(target=target, out=tmp_path, work=tmp_path, signing=SIGNING)
    build.uuids = builder.make_uuids(target)
    config = builder.genimage_config(build)
    assert f'partition-table-type = "{table}"' in config
    # boot, root A, root B (empty: the next update's slot), data (/var) — data last, so that
    # it can grow to the end of the disk.
    assert [line.split()[1] for line in config.splitlines() if line.startswith("  partition ")] == [
        "boot", "root-a", "root-b", "data",
    ]  # fmt: skip
    assert 'mountpoint = "/boot/firmware"' in config
    assert 'mountpoint = "/var"' in config
    assert 'label = "plantd-data"' in config
    assert "align = 4M" in config
    root_a = build.uuids["root_a"]
    assert f"root=PARTUUID={root_a} " in builder.cmdline(build)
    if table == "mbr":
        assert root_a.endswith("-02")
        assert root_a.startswith(build.uuids["disk"][2:])
    else:
        assert f'partition-uuid = "{root_a}"' in config
        assert builder.GPT_TYPES["var"] in config


@pytest.mark.skipif(
    shutil.which("genimage") is None or shutil.which("rauc") is None,
    reason="needs genimage and rauc (image/deps.sh)",
)
def test_genimage_accepts_the_configuration_and_rauc_the_bundle(tmp_path: Path) -> None:
    """A tiny tree through genimage and rauc themselves: the configuration's syntax and
    layout are real, and the update bundle beside the image is signed and verifies."""
    target = builder.load_target("amd64")
    small = builder.Target(**{**target.__dict__, "disk": builder.Disk("gpt", "8M", "8M", "8M")})
    signing = builder.development_signing(tmp_path / "signing")
    build = builder.Build(
        target=small, out=tmp_path / "out", work=tmp_path / "work", signing=signing
    )
    build.uuids = builder.make_uuids(small)
    for folder in ("boot/firmware/EFI", "var/lib", "etc"):
        (build.rootfs / folder).mkdir(parents=True)
    (build.rootfs / "etc/hostname").write_text("plantd\n")
    # Something that does not compress: RAUC refuses a squashfs of a single block.
    (build.rootfs / "etc/noise").write_bytes(random.randbytes(64 << 10))
    build.out.mkdir()
    image = builder.make_disk(build)
    layout = subprocess.run(
        ["sfdisk", "--json", str(image)], capture_output=True, text=True, check=True
    ).stdout
    assert layout.count('"node"') == 4
    assert build.uuids["root_a"].upper() in layout.upper()
    bundle = build.out / "plantd-amd64.raucb"
    info = subprocess.run(
        ["rauc", "info", "--keyring", str(signing.certificate), "--output-format=json",
         str(bundle)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert '"compatible": "plantd-amd64"' in info.replace('":"', '": "')
    # Another key's certificate does not verify it.
    other = builder.development_signing(tmp_path / "other")
    refused = subprocess.run(
        ["rauc", "info", "--keyring", str(other.certificate), str(bundle)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
