"""A model of what systemd-boot does with the slots' entries at each boot, and the boot
partition the image builder leaves (tests/image/test_boot.py checks the real boot loader)."""

from __future__ import annotations

import re
from pathlib import Path

from plantd.system import BootEntries

OPTIONS = "root=PARTUUID=1234 ro plantd.slot={slot}"


def boot(entries: BootEntries) -> str:
    """What systemd-boot does at power-on: take the first entry in its order and, if it has a
    try counter, count one try down (renaming the file) before starting it."""
    first = entries.entries()[0]
    match = re.fullmatch(r"(.*)\+(\d+)(?:-(\d+))?\.conf", first.path.name)
    if match:
        stem, left, done = match.group(1), int(match.group(2)), int(match.group(3) or 0)
        if left > 0:
            first.path.rename(first.path.with_name(f"{stem}+{left - 1}-{done + 1}.conf"))
    return first.slot


def make_esp(tmp_path: Path) -> BootEntries:
    """A boot partition as the image builder leaves it: slot A's entry, kernel and initrd."""
    for slot in ("a", "b"):
        (tmp_path / slot).mkdir()
    (tmp_path / "a" / "vmlinuz").write_bytes(b"kernel a")
    (tmp_path / "a" / "initrd.img").write_bytes(b"initrd a")
    entries = tmp_path / "loader" / "entries"
    entries.mkdir(parents=True)
    (entries / "plantd-1-a.conf").write_text("title plantd\nlinux /a/vmlinuz\n")
    return BootEntries(tmp_path)


def install_b(esp: BootEntries, tmp_path: Path) -> None:
    kernel, initrd = tmp_path / "k", tmp_path / "i"
    kernel.write_bytes(b"kernel b")
    initrd.write_bytes(b"initrd b")
    esp.install_kernel("b", kernel, initrd)
    esp.make_primary("b", OPTIONS.format(slot="b"), tries=1)
