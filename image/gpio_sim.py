#!/usr/bin/env python3
"""Build the kernel's gpio-sim module for an image's kernel: ``python3 image/gpio_sim.py OUT``.

Debian's bookworm kernel (6.1) is built without ``CONFIG_GPIO_SIM`` (and without the
``CONFIG_IRQ_SIM`` it selects), so the appliance has no gpio-sim. The image tests need one to
run the GPIO driver against a chip the kernel simulates; the image itself does not, and does
not get it. This builds it out of tree, for exactly the image's kernel (its ABI and package
version from the build's manifest), from the sources of the same Debian kernel:

- ``linux-headers-ABI`` of that version (installed with apt, as root);
- ``drivers/gpio/gpio-sim.c``, ``drivers/gpio/gpiolib.h`` and ``kernel/irq/irq_sim.c`` from
  the ``linux-source-6.1`` package of that version (``apt-get download``);
- ``irq_sim.c`` linked into the module, with one change: it hands a simulated interrupt on
  with ``generic_handle_irq(irq)`` (exported to modules) where the in-kernel build calls
  ``handle_simple_irq(irq_to_desc(irq))`` (``irq_to_desc`` is not exported). It reaches the
  same handler: the one the simulated domain installs is ``handle_simple_irq``.

The module is written to ``OUT/gpio-sim/ABI/gpio-sim.ko`` and reused from there. In the guest:
``modprobe configfs; insmod gpio-sim.ko`` (unsigned: the kernel accepts it, tainted, as it does
not enforce module signatures outside UEFI Secure Boot).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["build_gpio_sim", "image_kernel"]

SOURCES = {
    "gpio-sim-main.c": "drivers/gpio/gpio-sim.c",
    "gpiolib.h": "drivers/gpio/gpiolib.h",
    "irq_sim.c": "kernel/irq/irq_sim.c",
}
KBUILD = "obj-m := gpio-sim.o\ngpio-sim-y := gpio-sim-main.o irq_sim.o\n"
UNEXPORTED = "handle_simple_irq(irq_to_desc(irqnum));"
EXPORTED = "generic_handle_irq(irqnum);"


def image_kernel(manifest: str) -> tuple[str, str]:
    """The kernel's ABI name and Debian version, from a build's manifest
    (``deb	linux-image-6.1.0-50-amd64	6.1.176-1	amd64``): ("6.1.0-50-amd64", "6.1.176-1")."""
    for line in manifest.splitlines():
        match = re.fullmatch(r"deb\tlinux-image-(\d[^\t]*)\t(\S+)\t\S+", line)
        if match:
            return match.group(1), match.group(2)
    raise ValueError("the manifest names no linux-image-* package")


def run(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {result.returncode}\n{result.stderr}")
    return result.stdout


def build_gpio_sim(out: Path) -> Path:
    """gpio-sim.ko for the kernel of the image built in ``out`` (made once, then reused)."""
    abi, version = image_kernel(next(out.glob("*.manifest")).read_text())
    module = out / "gpio-sim" / abi / "gpio-sim.ko"
    if module.exists():
        return module
    headers = Path(f"/usr/src/linux-headers-{abi}")
    if not headers.is_dir():
        run(
            "apt-get", "install", "-y", "-qq", "--no-install-recommends",
            f"linux-headers-{abi}={version}", "make", "xz-utils",
        )  # fmt: skip
    series = ".".join(version.split(".")[:2])  # 6.1.176-1 → 6.1
    with tempfile.TemporaryDirectory(prefix="gpio-sim-") as scratch:
        work = Path(scratch)
        run("apt-get", "download", f"linux-source-{series}={version}", cwd=work)
        (package,) = work.glob("linux-source-*.deb")
        tarball = f"./usr/src/linux-source-{series}.tar.xz"
        subprocess.run(
            f"dpkg-deb --fsys-tarfile {package.name} | tar -x {tarball}",
            shell=True, cwd=work, check=True,
        )  # fmt: skip
        top = f"linux-source-{series}"
        run("tar", "-xJf", tarball, *(f"{top}/{path}" for path in SOURCES.values()), cwd=work)
        build = work / "build"
        build.mkdir()
        for name, path in SOURCES.items():
            shutil.copy(work / top / path, build / name)
        irq_sim = (build / "irq_sim.c").read_text()
        if UNEXPORTED not in irq_sim:
            raise RuntimeError(f"irq_sim.c of {version} no longer calls {UNEXPORTED}")
        (build / "irq_sim.c").write_text(irq_sim.replace(UNEXPORTED, EXPORTED))
        (build / "Kbuild").write_text(KBUILD)
        run("make", "-s", "-C", str(headers), f"M={build}", "modules")
        module.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(build / "gpio-sim.ko", module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpio_sim.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="a build's output directory (image/out/amd64)")
    args = parser.parse_args(argv)
    print(build_gpio_sim(args.out.resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
