"""The two root slots as systemd-boot sees them: boot entries with boot counting.

Theory of operation. The boot partition (the ESP) holds one boot entry per slot,
``loader/entries/plantd-GEN-SLOT.conf``, and each slot's kernel and initrd in ``/SLOT/``.
There is no ``default`` in ``loader.conf``: systemd-boot boots the first entry in its own sort
order, in which

1. an entry with no tries left (``plantd-2-b+0-1.conf``: it was tried and never reported
   healthy) comes last, and
2. among the others, the highest ``GEN`` comes first (entry ids compare as versions, newest
   first).

So making a slot the next to boot is writing its entry with a generation above every other
one; and writing it *on trial*, with a try counter (``+1``), makes the fallback the boot
loader's own: systemd-boot counts the try down as it boots the entry (renaming the file to
``+0-1``), and if nothing blesses it (:meth:`BootEntries.bless`, once the new system is
healthy: the counter is dropped from the name), the next boot finds it with no tries left and
boots the other slot. No variable in firmware, no step that must run for the old slot to come
back. Boot Loader Specification, "Boot counting".

This module only reads and renames files under a directory; mounting the boot partition
read-write is its caller's (:mod:`plantd.system._backend`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from plantd.errors import PlantdError

__all__ = ["SLOTS", "BootEntries", "Entry", "SlotError", "check_slot"]

SLOTS = ("a", "b")
ENTRIES_DIR = "loader/entries"
_ENTRY = re.compile(r"plantd-(\d+)-([ab])(?:\+(\d+)(?:-(\d+))?)?\.conf", re.ASCII)


class SlotError(PlantdError):
    """A slot operation that cannot be done (unknown slot, no entry, no kernel)."""


@dataclass(frozen=True)
class Entry:
    """One boot entry file: ``plantd-GEN-SLOT[+LEFT[-DONE]].conf``."""

    path: Path
    generation: int
    slot: str
    tries_left: int | None  # None: no counter (blessed, or never on trial)
    tries_done: int | None

    @property
    def bad(self) -> bool:
        """Tried, and never reported healthy: systemd-boot sorts it last."""
        return self.tries_left == 0

    @property
    def on_trial(self) -> bool:
        """It has a counter: it is not blessed yet."""
        return self.tries_left is not None

    @property
    def id(self) -> str:
        """The entry's id in systemd-boot (its file name without the counter)."""
        return f"plantd-{self.generation}-{self.slot}"

    def status(self) -> str:
        if self.bad:
            return "bad"
        return "trying" if self.on_trial else "good"


class BootEntries:
    """The slots' boot entries on the boot partition mounted (or copied) at ``esp``."""

    def __init__(self, esp: Path) -> None:
        self.esp = esp
        self.directory = esp / ENTRIES_DIR

    def entries(self) -> list[Entry]:
        """Every plantd entry, in systemd-boot's order: the first is the one that boots."""
        found = []
        for path in self.directory.glob("plantd-*.conf") if self.directory.is_dir() else []:
            match = _ENTRY.fullmatch(path.name)
            if match is None:
                continue
            generation, slot, left, done = match.groups()
            found.append(
                Entry(
                    path,
                    int(generation),
                    slot,
                    int(left) if left is not None else None,
                    int(done) if done is not None else (0 if left is not None else None),
                )
            )
        return sorted(found, key=lambda e: (e.bad, -e.generation))

    def entry(self, slot: str) -> Entry | None:
        """The newest entry of ``slot`` (there is one per slot but while one is written)."""
        check_slot(slot)
        mine = [e for e in self.entries() if e.slot == slot]
        return max(mine, key=lambda e: e.generation) if mine else None

    def primary(self) -> str | None:
        """The slot that boots next (None: no entry at all)."""
        entries = self.entries()
        return entries[0].slot if entries else None

    def state(self, slot: str) -> str:
        """``good`` (blessed, or never on trial), ``trying``, ``bad`` (its try ran out), or
        ``missing`` (no entry: never installed, or removed)."""
        entry = self.entry(slot)
        return entry.status() if entry is not None else "missing"

    def make_primary(self, slot: str, options: str, *, tries: int = 1, title: str = "") -> Entry:
        """Write ``slot``'s entry above every other, on trial with ``tries`` boots (0: kept as
        good at once, for a rollback to a slot that ran well), and remove its older entries.
        Its kernel and initrd must be in ``/SLOT/`` already (:meth:`install_kernel`)."""
        check_slot(slot)
        for name in ("vmlinuz", "initrd.img"):
            if not (self.esp / slot / name).is_file():
                raise SlotError(f"slot {slot}: no {slot}/{name} on the boot partition")
        entries = self.entries()
        generation = max((e.generation for e in entries), default=0) + 1
        counter = f"+{tries}" if tries > 0 else ""
        path = self.directory / f"plantd-{generation}-{slot}{counter}.conf"
        text = (
            f"title   {title or 'plantd'} (slot {slot.upper()})\n"
            f"linux   /{slot}/vmlinuz\n"
            f"initrd  /{slot}/initrd.img\n"
            f"options {options}\n"
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_durably(path, text)
        for old in entries:
            if old.slot == slot:
                old.path.unlink()
        return Entry(path, generation, slot, tries if tries > 0 else None, 0 if tries else None)

    def bless(self, slot: str) -> Entry:
        """``slot`` booted and is healthy: drop its counter, so it stays (idempotent)."""
        entry = self.entry(slot)
        if entry is None:
            raise SlotError(f"slot {slot}: no boot entry to keep")
        if not entry.on_trial:
            return entry
        blessed = entry.path.with_name(f"{entry.id}.conf")
        os.replace(entry.path, blessed)
        _sync_directory(self.directory)
        return Entry(blessed, entry.generation, slot, None, None)

    def mark_bad(self, slot: str) -> None:
        """``slot`` must not boot unless chosen again: no tries left (sorted last)."""
        entry = self.entry(slot)
        if entry is None or entry.bad:
            return
        os.replace(entry.path, entry.path.with_name(f"{entry.id}+0-{entry.tries_done or 1}.conf"))
        _sync_directory(self.directory)

    def install_kernel(self, slot: str, kernel: Path, initrd: Path) -> None:
        """Copy a slot's kernel and initrd into ``/SLOT/`` (a new name first, then renamed:
        a power cut leaves the old pair or the new one)."""
        check_slot(slot)
        folder = self.esp / slot
        folder.mkdir(parents=True, exist_ok=True)
        for source, name in ((kernel, "vmlinuz"), (initrd, "initrd.img")):
            scratch = folder / f".{name}.new"
            _write_durably(scratch, source.read_bytes())
            os.replace(scratch, folder / name)
        _sync_directory(folder)


def check_slot(slot: str) -> None:
    """SlotError unless ``slot`` is one of :data:`SLOTS`."""
    if slot not in SLOTS:
        raise SlotError(f"no slot {slot!r} (slots: {', '.join(SLOTS)})")


def _write_durably(path: Path, data: str | bytes) -> None:
    raw = data.encode() if isinstance(data, str) else data
    with open(path, "wb") as handle:
        handle.write(raw)
        handle.flush()
        os.fsync(handle.fileno())
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (FAT on some kernels) refuse fsync on a directory
    finally:
        os.close(fd)
