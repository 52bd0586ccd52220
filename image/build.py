#!/usr/bin/env python3
"""Build a plantd appliance image: ``python3 image/build.py TARGET [--out DIR]``.

A target (``image/targets/NAME.toml``) names an architecture, a Debian suite, a partition layout,
a kernel command line and an ordered list of layers. A layer (``image/layers/NAME/``) is a
``layer.toml`` with Debian packages and dpkg path excludes, an optional ``early/`` tree copied in
before the packages are installed, an optional ``overlay/`` tree copied in after, and an
optional ``customize.sh`` run after that with the root directory as ``$1``. The layers'
packages go into one ``mmdebstrap`` run; its hooks copy the trees and run the scripts in layer
order. ``genimage`` then makes the file systems from the directory (``mke2fs -d``, mtools: no
loop mounts, no mounting at all) and the partitioned disk image.

Outputs, in ``--out`` (default ``image/out/TARGET``): ``plantd-TARGET.img`` (raw disk image),
``plantd-TARGET.raucb`` (for a target with the ``update`` layer: the same root file system as a
RAUC update bundle, signed with ``--signing-key``/``--signing-cert``, whose certificate is the
image's key ring; without them a development pair is made once in ``image/out/signing/``),
``plantd-TARGET.manifest`` (every Debian and Python package with its version), the kernel,
initrd and command line beside it (``.vmlinuz``, ``.initrd``, ``.cmdline``: QEMU boots them
directly), and ``build.json`` (timings, sizes, partition UUIDs).

The plantd wheel is built from this checkout; its dependencies come from PyPI as binary wheels
for the target's architecture and are installed on the host into the image's virtual
environment (``/opt/plantd/venv``), so nothing Python runs under emulation for arm64.

Runs as root (mmdebstrap's root mode, file ownership in the images). Build dependencies:
``image/deps.sh``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_DIR = Path(__file__).resolve().parent
REPO = IMAGE_DIR.parent
VENV = "/opt/plantd/venv"

# Partition type UUIDs (the Discoverable Partitions Specification) for GPT disks.
GPT_TYPES = {
    "esp": "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
    "root-amd64": "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
    "root-arm64": "b921b045-1df0-41c3-af44-4c6f280d3fae",
    "var": "4d21b016-b534-45c2-a9fb-5c16e091fd2d",
}
# pip's machine names, and the newest glibc of the target (Debian bookworm's 2.36): wheels for
# manylinux_2_17 (manylinux2014) up to that one run there. pip does not infer the older tags.
PIP_MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
GLIBC_MINOR = 36
# What the plantd wheel is built from (pyproject.toml's packages: plantd, plantd_drivers, hil).
WHEEL_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "plantd", "drivers", "hil")


@dataclass(frozen=True)
class Disk:
    table: str  # gpt | mbr
    boot: str
    root: str
    data: str


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    arch: str
    suite: str
    mirror: str
    components: tuple[str, ...]
    layers: tuple[str, ...]
    cmdline: str
    disk: Disk
    python: str = "3.11"


@dataclass(frozen=True)
class Layer:
    name: str
    path: Path
    description: str
    packages: tuple[str, ...] = ()
    path_exclude: tuple[str, ...] = ()

    @property
    def early(self) -> Path | None:
        return self.path / "early" if (self.path / "early").is_dir() else None

    @property
    def overlay(self) -> Path | None:
        return self.path / "overlay" if (self.path / "overlay").is_dir() else None

    @property
    def customize(self) -> Path | None:
        script = self.path / "customize.sh"
        return script if script.is_file() else None


@dataclass(frozen=True)
class Signing:
    """The key an update bundle is signed with, and the certificate devices check it against
    (it goes into the image as RAUC's key ring)."""

    key: Path
    certificate: Path


@dataclass
class Build:
    target: Target
    out: Path
    work: Path
    signing: Signing
    timings: dict[str, float] = field(default_factory=dict)
    uuids: dict[str, str] = field(default_factory=dict)

    @property
    def stem(self) -> str:
        return f"plantd-{self.target.name}"

    @property
    def rootfs(self) -> Path:
        return self.work / "rootfs"

    @property
    def wheelhouse(self) -> Path:
        return self.work / "wheels"


def load_target(name: str) -> Target:
    path = IMAGE_DIR / "targets" / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in (IMAGE_DIR / "targets").glob("*.toml"))
        raise SystemExit(f"build.py: no target {name!r} (known: {', '.join(known)})")
    data = tomllib.loads(path.read_text())
    return Target(
        name=name,
        description=data["description"],
        arch=data["arch"],
        suite=data["suite"],
        mirror=data["mirror"],
        components=tuple(data.get("components", ["main"])),
        layers=tuple(data["layers"]),
        cmdline=data["cmdline"],
        disk=Disk(**data["disk"]),
    )


def load_layer(name: str) -> Layer:
    path = IMAGE_DIR / "layers" / name
    data = tomllib.loads((path / "layer.toml").read_text())
    return Layer(
        name=name,
        path=path,
        description=data["description"],
        packages=tuple(data.get("packages", [])),
        path_exclude=tuple(data.get("path_exclude", [])),
    )


def run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], check=True, env=env, cwd=cwd)


def timed(build: Build, step: str) -> _Timer:
    return _Timer(build, step)


class _Timer:
    def __init__(self, build: Build, step: str) -> None:
        self.build, self.step = build, step

    def __enter__(self) -> None:
        print(f"== {self.step}", flush=True)
        self.start = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        elapsed = time.monotonic() - self.start
        self.build.timings[self.step] = round(elapsed, 1)
        print(f"== {self.step}: {elapsed:.1f} s", flush=True)


# ---------------------------------------------------------------------------------------------
# Partition identity: fixed per build, known before the root file system is made, so that the
# kernel command line (root=PARTUUID=) can be written into the boot partition.


def make_uuids(target: Target) -> dict[str, str]:
    if target.disk.table == "gpt":
        return {
            "disk": str(uuid.uuid4()),
            "boot": str(uuid.uuid4()),
            "root_a": str(uuid.uuid4()),
            "root_b": str(uuid.uuid4()),
            "data": str(uuid.uuid4()),
        }
    signature = random.SystemRandom().randrange(1, 2**32)
    return {
        "disk": f"0x{signature:08x}",
        "boot": f"{signature:08x}-01",
        "root_a": f"{signature:08x}-02",
        "root_b": f"{signature:08x}-03",
        "data": f"{signature:08x}-04",
    }


def cmdline(build: Build) -> str:
    """Slot A's kernel command line (the target's, with slot A's partition and name)."""
    return build.target.cmdline.format(root_partuuid=build.uuids["root_a"], slot="a")


# ---------------------------------------------------------------------------------------------
# Python: the plantd wheel and its dependencies, for the target's architecture.


def pip_target_options(target: Target) -> list[str]:
    machine = PIP_MACHINES[target.arch]
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(GLIBC_MINOR, 16, -1)]
    return [
        "--only-binary=:all:",
        *(f"--platform={platform}" for platform in [*platforms, f"manylinux2014_{machine}"]),
        f"--python-version={target.python}",
        "--implementation=cp",
        f"--abi=cp{target.python.replace('.', '')}",
    ]


def build_wheelhouse(build: Build) -> None:
    wheels = build.wheelhouse
    wheels.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    # From a copy of what the wheel is made of: setuptools writes build/ and *.egg-info/
    # beside the sources, and the checkout is not the place for them.
    source = build.work / "source"
    for name in WHEEL_SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.egg-info", "*.pyc"))  # fmt: skip
        elif (REPO / name).is_file():
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / name, source / name)
    run(*pip, "wheel", "--no-deps", "--wheel-dir", wheels, source)
    (wheel,) = wheels.glob("plantd-*.whl")
    run(
        *pip,
        "download",
        "--dest",
        wheels,
        *pip_target_options(build.target),
        f"plantd[all] @ {wheel.as_uri()}",
    )


def install_venv(root: Path) -> None:
    """Fill the image's /opt/plantd/venv (made by the ``plantd`` layer) from the wheelhouse.

    pip runs on the host (``--target`` with the target's platform tags): no Python under
    emulation. Console scripts get the venv's interpreter; byte code is compiled for the image's
    paths, with hash-based .pyc files that never go stale on a read-only root.
    """
    target = load_target(os.environ["PLANTD_IMAGE_TARGET"])
    wheels = Path(os.environ["PLANTD_IMAGE_WHEELHOUSE"])
    venv = root / VENV.lstrip("/")
    site = venv / "lib" / f"python{target.python}" / "site-packages"
    if not (venv / "pyvenv.cfg").is_file():
        raise SystemExit(f"build.py: {venv} is not a virtual environment")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--disable-pip-version-check",
            "--quiet",
            "install",
            "--no-index",
            "--find-links",
            str(wheels),
            "--target",
            str(site),
            "--no-compile",
            *pip_target_options(target),
            "plantd[all]",
        ],
        check=True,
    )
    shebang = f"#!{VENV}/bin/python3\n".encode()
    for script in sorted((site / "bin").iterdir()):
        body = script.read_bytes()
        if body.startswith(b"#!"):
            body = shebang + body.split(b"\n", 1)[1]
        destination = venv / "bin" / script.name
        destination.write_bytes(body)
        destination.chmod(0o755)
    shutil.rmtree(site / "bin")
    # Debian's python3-systemd (native journal fields) without the rest of dist-packages.
    (site / "systemd").symlink_to("/usr/lib/python3/dist-packages/systemd")
    image_python = (root / "usr/bin/python3").resolve().name
    if image_python == f"python{sys.version_info.major}.{sys.version_info.minor}":
        compile_with = [sys.executable]
    else:  # a different Python on the host: compile inside the image (slower under qemu-user)
        compile_with = ["chroot", str(root), "python3"]
    relative = site if compile_with[0] == sys.executable else Path("/") / site.relative_to(root)
    subprocess.run(
        [
            *compile_with,
            "-m",
            "compileall",
            "-q",
            "-j0",
            "--invalidation-mode=unchecked-hash",
            *(["-s", str(root), "-p", "/"] if compile_with[0] == sys.executable else []),
            str(relative),
        ],
        check=True,
    )


# ---------------------------------------------------------------------------------------------
# The root file system: one mmdebstrap run, layers as hooks.


def mmdebstrap_command(build: Build, layers: list[Layer]) -> list[str]:
    target = build.target
    packages = sorted({p for layer in layers for p in layer.packages})
    command = [
        "mmdebstrap",
        "--mode=root",
        "--variant=essential",
        f"--arch={target.arch}",
        f"--components={','.join(target.components)}",
        f"--include={','.join(packages)}",
        "--aptopt=Acquire::Retries 3",
    ]
    # Documentation, manual pages and translations are not needed on an appliance.
    excludes = ["/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*", "/usr/share/doc/*"]
    excludes += [p for layer in layers for p in layer.path_exclude]
    command += [f"--dpkgopt=path-exclude={p}" for p in excludes]
    command.append("--dpkgopt=path-include=/usr/share/doc/*/copyright")
    for layer in layers:
        if layer.early:
            command.append(f"--essential-hook=sync-in {layer.early} /")
    for layer in layers:
        if layer.overlay:
            command.append(f"--customize-hook=sync-in {layer.overlay} /")
        if layer.customize:
            command.append(f'--customize-hook=sh {layer.customize} "$1"')
    command += [target.suite, str(build.rootfs), target.mirror]
    return command


def hook_environment(build: Build) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PLANTD_IMAGE_TARGET=build.target.name,
        PLANTD_IMAGE_ARCH=build.target.arch,
        PLANTD_IMAGE_REPO=str(REPO),
        PLANTD_IMAGE_DIR=str(IMAGE_DIR),
        PLANTD_IMAGE_PYTHON=sys.executable,
        PLANTD_IMAGE_WHEELHOUSE=str(build.wheelhouse),
        PLANTD_IMAGE_CMDLINE=cmdline(build),
        PLANTD_IMAGE_CMDLINE_TEMPLATE=build.target.cmdline,
        PLANTD_IMAGE_KEYRING=str(build.signing.certificate),
        PLANTD_IMAGE_ROOT_PARTUUID=build.uuids["root_a"],
        PLANTD_IMAGE_VERSION=plantd_version(),
    )
    return env


def plantd_version() -> str:
    match = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    version = match.group(1) if match else "unknown"
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return version
    return f"{version}+g{commit}"


# ---------------------------------------------------------------------------------------------
# Disk image: genimage, from the directory.


def genimage_config(build: Build) -> str:
    disk, uuids, gpt = build.target.disk, build.uuids, build.target.disk.table == "gpt"
    root_type = GPT_TYPES[f"root-{build.target.arch}"]

    def kind(gpt_type: str, mbr_type: str) -> str:
        return f'partition-type-uuid = "{gpt_type}"' if gpt else f"partition-type = {mbr_type}"

    def ident(name: str) -> str:
        return f'partition-uuid = "{uuids[name]}"' if gpt else ""

    table = (
        f'partition-table-type = "gpt"\n    disk-uuid = "{uuids["disk"]}"'
        if gpt
        else f'partition-table-type = "mbr"\n    disk-signature = {uuids["disk"]}'
    )
    return f"""
image boot.vfat {{
  vfat {{
    label = "PLANTD-BOOT"
  }}
  size = {disk.boot}
  mountpoint = "/boot/firmware"
}}

image data.ext4 {{
  ext4 {{
    label = "plantd-data"
    use-mke2fs = true
  }}
  size = {disk.data}
  mountpoint = "/var"
}}

image root.ext4 {{
  ext4 {{
    label = "plantd-root"
    use-mke2fs = true
  }}
  size = {disk.root}
}}

image {build.stem}.img {{
  hdimage {{
    {table}
    align = 4M
  }}
  partition boot {{
    image = "boot.vfat"
    {kind(GPT_TYPES["esp"], "0x0c")}
    {ident("boot")}
    bootable = true
  }}
  partition root-a {{
    image = "root.ext4"
    {kind(root_type, "0x83")}
    {ident("root_a")}
  }}
  partition root-b {{
    size = {disk.root}
    {kind(root_type, "0x83")}
    {ident("root_b")}
  }}
  partition data {{
    image = "data.ext4"
    {kind(GPT_TYPES["var"], "0x83")}
    {ident("data")}
  }}
}}
"""


def make_disk(build: Build) -> Path:
    config = build.work / "genimage.cfg"
    config.write_text(genimage_config(build))
    tmp = build.work / "genimage-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    images = build.work / "images"
    shutil.rmtree(images, ignore_errors=True)
    images.mkdir()
    run(
        "genimage",
        "--config",
        config,
        "--rootpath",
        build.rootfs,
        "--tmppath",
        tmp,
        "--inputpath",
        images,
        "--outputpath",
        images,
    )
    shutil.rmtree(tmp, ignore_errors=True)
    result = build.out / f"{build.stem}.img"
    result.unlink(missing_ok=True)
    shutil.move(images / f"{build.stem}.img", result)
    if "update" in build.target.layers:
        with timed(build, "bundle"):
            make_bundle(build, images / "root.ext4")
    return result


# ---------------------------------------------------------------------------------------------
# The update bundle: the root file system genimage made, signed, for RAUC.

DEV_SIGNING = IMAGE_DIR / "out" / "signing"


def development_signing(directory: Path = DEV_SIGNING) -> Signing:
    """A self-signed key pair for bundles, made once: fine for a bench, not for a fleet (its
    secret lies beside the checkout). docs/appliance.md says how to use your own."""
    signing = Signing(directory / "development.key.pem", directory / "development.cert.pem")
    if not signing.key.is_file() or not signing.certificate.is_file():
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        run(
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "3650", "-subj", "/O=plantd/CN=plantd development update signing",
            "-keyout", signing.key, "-out", signing.certificate,
        )  # fmt: skip
        print(f"build.py: made a DEVELOPMENT update signing key in {directory}", flush=True)
    return signing


def make_bundle(build: Build, root_image: Path) -> Path:
    """``plantd-TARGET.raucb``: ``root_image`` (slot A's file system) as a signed RAUC bundle
    (verity format: RAUC checks every block it reads against the signed hash tree)."""
    content = build.work / "bundle"
    shutil.rmtree(content, ignore_errors=True)
    content.mkdir(parents=True)
    os.link(root_image, content / "root.ext4")
    (content / "manifest.raucm").write_text(
        "[update]\n"
        f"compatible=plantd-{build.target.name}\n"
        f"version={plantd_version()}\n"
        "[bundle]\n"
        "format=verity\n"
        "[image.rootfs]\n"
        "filename=root.ext4\n"
    )
    bundle = build.out / f"{build.stem}.raucb"
    bundle.unlink(missing_ok=True)
    # zstd: seconds where mksquashfs's default (gzip -9) takes minutes, for a bundle 5 % larger.
    run(
        "rauc", "bundle", "--mksquashfs-args=-comp zstd -Xcompression-level 9",
        "--cert", build.signing.certificate, "--key", build.signing.key, content, bundle,
    )  # fmt: skip
    shutil.rmtree(content)
    return bundle


# ---------------------------------------------------------------------------------------------
# What is in the image.


def manifest(build: Build) -> str:
    root = build.rootfs
    debs = subprocess.run(
        [
            "dpkg-query",
            f"--admindir={root}/var/lib/dpkg",
            "-W",
            "-f=${Package}\t${Version}\t${Architecture}\n",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    site = next((root / VENV.lstrip("/") / "lib").glob("python3*/site-packages"))
    wheels = []
    for info in sorted(site.glob("*.dist-info")):
        fields = dict(
            line.split(": ", 1)
            for line in (info / "METADATA").read_text(errors="replace").splitlines()
            if line.startswith(("Name: ", "Version: "))
        )
        wheels.append(f"{fields['Name']}\t{fields['Version']}")
    kernel = sorted(p.name.removeprefix("vmlinuz-") for p in (root / "boot").glob("vmlinuz-*"))
    lines = [
        f"# plantd appliance image {build.stem}: {build.target.description}",
        f"# plantd {plantd_version()}, Debian {build.target.suite} {build.target.arch}, "
        f"kernel {', '.join(kernel)}",
        f"# Debian packages ({len(debs)}): name, version, architecture",
        *(f"deb\t{line}" for line in sorted(debs)),
        f"# Python packages in {VENV} ({len(wheels)}): name, version",
        *(f"python\t{line}" for line in sorted(wheels, key=str.lower)),
    ]
    return "\n".join(lines) + "\n"


def du(path: Path) -> int:
    """Bytes allocated on disk (the image is sparse: root-b is a hole until an update)."""
    if path.is_file():
        return path.stat().st_blocks * 512
    seen: set[int] = set()
    total = 0
    for item in path.rglob("*"):
        info = item.lstat()
        if info.st_ino not in seen:
            seen.add(info.st_ino)
            total += info.st_blocks * 512
    return total


def build_image(
    target: Target,
    out: Path,
    work: Path,
    *,
    keep: bool,
    compress: bool,
    reuse: bool = False,
    signing: Signing | None = None,
) -> Build:
    build = Build(target=target, out=out, work=work, signing=signing or development_signing())
    build.uuids = make_uuids(target)
    layers = [load_layer(name) for name in target.layers]
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if reuse and (work / "rootfs").is_dir():
        # The root directory of an earlier --keep build: only the disk is made again. Its
        # command line names the old build's root partition, so that one's UUIDs are kept.
        build.uuids = json.loads((out / "build.json").read_text())["partuuids"]
    else:
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        with timed(build, "wheels"):
            build_wheelhouse(build)
        with timed(build, "rootfs"):
            run(*mmdebstrap_command(build, layers), env=hook_environment(build))
    with timed(build, "manifest"):
        (out / f"{build.stem}.manifest").write_text(manifest(build))
        (kernel,) = sorted((build.rootfs / "boot").glob("vmlinuz-*"))[-1:]
        version = kernel.name.removeprefix("vmlinuz-")
        shutil.copy(kernel, out / f"{build.stem}.vmlinuz")
        shutil.copy(build.rootfs / f"boot/initrd.img-{version}", out / f"{build.stem}.initrd")
        (out / f"{build.stem}.cmdline").write_text(cmdline(build) + "\n")
    rootfs_bytes = du(build.rootfs)
    with timed(build, "genimage"):
        image = make_disk(build)
    if compress:
        with timed(build, "compress"):
            run("zstd", "-q", "-f", "-T0", "-6", "--sparse", image, "-o", f"{image}.zst")
    build.timings["total"] = round(time.monotonic() - started, 1)
    report = {
        "target": target.name,
        "plantd": plantd_version(),
        "image": image.name,
        "image_bytes": image.stat().st_size,
        "image_allocated_bytes": du(image),
        "rootfs_bytes": rootfs_bytes,
        "compressed_bytes": Path(f"{image}.zst").stat().st_size if compress else None,
        "bundle": f"{build.stem}.raucb" if "update" in target.layers else None,
        "signing": {
            "key": str(build.signing.key),
            "certificate": str(build.signing.certificate),
        },
        "partuuids": build.uuids,
        "cmdline": cmdline(build),
        "seconds": build.timings,
    }
    (out / "build.json").write_text(json.dumps(report, indent=2) + "\n")
    if not keep:
        shutil.rmtree(work)
    print(json.dumps(report, indent=2))
    return build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build a target's image")
    build.add_argument("target", help="a file name in image/targets/ without .toml")
    build.add_argument("--out", type=Path, help="output directory (default image/out/TARGET)")
    build.add_argument("--work", type=Path, help="scratch directory (default OUT/work)")
    build.add_argument("--keep", action="store_true", help="keep the root directory afterwards")
    build.add_argument("--compress", action="store_true", help="also write IMAGE.img.zst")
    build.add_argument(
        "--reuse-rootfs",
        action="store_true",
        help="make the disk again from the root directory an earlier --keep build left",
    )
    build.add_argument("--signing-key", type=Path, help="PEM key the update bundle is signed with")
    build.add_argument(
        "--signing-cert",
        type=Path,
        help="its PEM certificate (or the CA's): the image's key ring for updates",
    )
    hook = sub.add_parser("install-venv", help="(a layer hook) fill ROOT's plantd venv")
    hook.add_argument("root", type=Path)
    args = parser.parse_args(argv)
    if args.command == "install-venv":
        install_venv(args.root)
        return 0
    if os.geteuid() != 0:
        raise SystemExit("build.py: run as root (mmdebstrap --mode=root, image file ownership)")
    target = load_target(args.target)
    out = (args.out or IMAGE_DIR / "out" / target.name).resolve()
    work = (args.work or out / "work").resolve()
    if (args.signing_key is None) != (args.signing_cert is None):
        raise SystemExit("build.py: give --signing-key and --signing-cert together")
    signing = (
        Signing(args.signing_key.resolve(), args.signing_cert.resolve())
        if args.signing_key is not None
        else None
    )
    build_image(
        target,
        out,
        work,
        keep=args.keep or args.reuse_rootfs,
        compress=args.compress,
        reuse=args.reuse_rootfs,
        signing=signing,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
