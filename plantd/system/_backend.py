"""``plantd-slots``: RAUC's custom boot loader backend, and the slots at a glance.

RAUC (``/etc/rauc/system.conf``: ``bootloader=custom``) runs it as::

    plantd-slots get-primary            -> the slot that boots next (a | b)
    plantd-slots set-primary SLOT       make SLOT the next to boot, on trial (one try)
    plantd-slots get-state SLOT         -> good | bad
    plantd-slots set-state SLOT good|bad

``set-primary`` is what RAUC calls once it has written a bundle's root file system into the
inactive slot: the new slot's kernel and initrd are copied from its ``/boot`` to the boot
partition, and its entry is written from the kernel command line the slot carries
(``/usr/lib/plantd/cmdline``, with ``{root_partuuid}`` and ``{slot}`` filled in), on trial
(:mod:`plantd.system._slots`: the boot loader itself falls back if it is never blessed).
``plantd-slots status`` prints every slot's state as JSON (``plant system status``).

The boot partition is mounted read-only at ``/boot/firmware``; it is remounted read-write for
the moment of a change, as the provisioning import does. ``PLANTD_ESP`` and
``PLANTD_SLOT_DEVICE`` (a pattern with ``{slot}``) point elsewhere for tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from plantd.system._slots import SLOTS, BootEntries, SlotError, check_slot

__all__ = ["booted_slot", "main", "slots_status"]

ESP = "/boot/firmware"
SLOT_DEVICE = "/dev/disk/by-partlabel/root-{slot}"  # genimage names GPT partitions so
CMDLINE_TEMPLATE = "usr/lib/plantd/cmdline"  # in a slot's root file system
TITLE_FILE = "usr/lib/plantd/version"


def esp() -> Path:
    return Path(os.environ.get("PLANTD_ESP", ESP))


def slot_device(slot: str) -> str:
    return os.environ.get("PLANTD_SLOT_DEVICE", SLOT_DEVICE).format(slot=slot)


def booted_slot(cmdline: str | None = None) -> str | None:
    """The slot this system booted from (``plantd.slot=`` on the kernel command line)."""
    if cmdline is None:
        try:
            cmdline = Path("/proc/cmdline").read_text()
        except OSError:
            return None
    for word in cmdline.split():
        if word.startswith("plantd.slot="):
            slot = word.split("=", 1)[1]
            return slot if slot in SLOTS else None
    return None


def slots_status(entries: BootEntries, booted: str | None) -> dict[str, object]:
    """What ``plant system status`` shows: each slot's state, the booted and the next one."""
    return {
        "booted": booted,
        "primary": entries.primary(),
        "slots": {slot: entries.state(slot) for slot in SLOTS},
    }


@contextlib.contextmanager
def writable(esp: Path) -> Iterator[None]:
    """The boot partition read-write for a moment (it is mounted read-only), if mounted."""
    remount = os.path.ismount(esp)
    if remount:
        subprocess.run(["mount", "-o", "remount,rw", str(esp)], check=True)
    try:
        yield
    finally:
        if remount:
            os.sync()
            subprocess.run(["mount", "-o", "remount,ro", str(esp)], check=False)


@contextlib.contextmanager
def mounted_slot(slot: str) -> Iterator[Path]:
    """``slot``'s root file system, mounted read-only on a scratch directory."""
    device = slot_device(slot)
    if Path(device).is_dir():  # a test's slot: a directory, no mount
        yield Path(device)
        return
    with tempfile.TemporaryDirectory(prefix=f"plantd-slot-{slot}-") as scratch:
        subprocess.run(["mount", "-o", "ro", device, scratch], check=True)
        try:
            yield Path(scratch)
        finally:
            subprocess.run(["umount", scratch], check=False)


def partuuid(slot: str) -> str:
    device = slot_device(slot)
    if Path(device).is_dir():
        return (Path(device) / ".partuuid").read_text().strip()
    result = subprocess.run(
        ["blkid", "-s", "PARTUUID", "-o", "value", device],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def set_primary(entries: BootEntries, slot: str) -> None:
    """Copy ``slot``'s kernel and initrd to the boot partition and write its entry, on trial."""
    check_slot(slot)
    with mounted_slot(slot) as root:
        kernels = sorted((root / "boot").glob("vmlinuz-*"))
        if not kernels:
            raise SlotError(f"slot {slot}: no kernel in its /boot")
        kernel = kernels[-1]
        initrd = root / "boot" / f"initrd.img-{kernel.name.removeprefix('vmlinuz-')}"
        try:
            template = (root / CMDLINE_TEMPLATE).read_text().strip()
        except OSError as exc:
            raise SlotError(f"slot {slot}: no /{CMDLINE_TEMPLATE} ({exc.strerror})") from exc
        try:
            title = (root / TITLE_FILE).read_text().strip()
        except OSError:
            title = ""
        options = template.format(root_partuuid=partuuid(slot), slot=slot)
        with writable(entries.esp):
            entries.install_kernel(slot, kernel, initrd)
            entries.make_primary(slot, options, tries=1, title=f"plantd {title}".strip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="plantd-slots", description="RAUC's boot loader backend for plantd's A/B slots"
    )
    parser.add_argument("command", choices=["get-primary", "set-primary", "get-state",
                                            "set-state", "status"])  # fmt: skip
    parser.add_argument("slot", nargs="?")
    parser.add_argument("state", nargs="?", choices=["good", "bad"])
    args = parser.parse_args(argv)
    entries = BootEntries(esp())
    try:
        if args.command == "status":
            print(json.dumps(slots_status(entries, booted_slot()), indent=1))
        elif args.command == "get-primary":
            primary = entries.primary()
            if primary is None:
                raise SlotError(f"no plantd boot entry in {entries.directory}")
            print(primary)
        elif args.slot is None:
            parser.error(f"{args.command} needs a slot ({', '.join(SLOTS)})")
        elif args.command == "set-primary":
            set_primary(entries, args.slot)
        elif args.command == "get-state":
            print("bad" if entries.state(args.slot) in ("bad", "missing") else "good")
        elif args.state is None:
            parser.error("set-state needs good or bad")
        else:
            with writable(entries.esp):
                if args.state == "good":
                    entries.bless(args.slot)
                else:
                    entries.mark_bad(args.slot)
    except (SlotError, OSError, subprocess.CalledProcessError) as exc:
        print(f"plantd-slots: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
