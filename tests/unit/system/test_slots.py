"""The A/B slots' boot entries: which slot boots, trial, blessing, fallback — driven through
a model of what systemd-boot does with them at each boot (the QEMU boot test checks the real
one: tests/image/test_boot.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantd.system import BootEntries, SlotError
from tests.unit.system._bootloader_model import OPTIONS, boot, install_b


def test_a_fresh_image_boots_slot_a_which_is_good(esp: BootEntries) -> None:
    assert esp.primary() == "a"
    assert esp.state("a") == "good"
    assert esp.state("b") == "missing"
    assert boot(esp) == "a"
    assert boot(esp) == "a"


def test_an_update_boots_once_on_trial_and_stays_when_blessed(
    esp: BootEntries, tmp_path: Path
) -> None:
    install_b(esp, tmp_path)
    assert esp.primary() == "b"
    assert esp.state("b") == "trying"
    assert (esp.esp / "b" / "vmlinuz").read_bytes() == b"kernel b"
    assert boot(esp) == "b"  # the trial: its one try is used up now
    entry = esp.entry("b")
    assert entry is not None
    assert entry.tries_left == 0
    assert entry.on_trial
    esp.bless("b")  # plantd-boot-check: healthy in time
    assert esp.state("b") == "good"
    assert [boot(esp) for _ in range(3)] == ["b", "b", "b"]
    text = esp.entry("b")
    assert text is not None
    assert "options root=PARTUUID=1234 ro plantd.slot=b" in text.path.read_text()


def test_an_update_never_blessed_falls_back_to_the_old_slot_by_itself(
    esp: BootEntries, tmp_path: Path
) -> None:
    install_b(esp, tmp_path)
    assert boot(esp) == "b"  # the trial boot, which never reports healthy
    assert esp.state("b") == "bad"
    assert esp.primary() == "a"
    assert [boot(esp) for _ in range(3)] == ["a", "a", "a"]


def test_the_next_update_goes_to_the_other_slot_and_outranks_the_current_one(
    esp: BootEntries, tmp_path: Path
) -> None:
    install_b(esp, tmp_path)
    boot(esp)
    esp.bless("b")
    esp.make_primary("a", OPTIONS.format(slot="a"), tries=1)  # the update after: into A
    names = sorted(p.name for p in esp.directory.iterdir())
    assert names == ["plantd-2-b.conf", "plantd-3-a+1.conf"]  # A's old entry is gone
    assert boot(esp) == "a"
    # A broken release in A: never blessed, so B (good) boots again.
    assert [boot(esp) for _ in range(2)] == ["b", "b"]
    assert esp.state("a") == "bad"


def test_a_slot_marked_bad_by_hand_is_skipped(esp: BootEntries, tmp_path: Path) -> None:
    install_b(esp, tmp_path)
    boot(esp)
    esp.bless("b")
    esp.mark_bad("b")
    assert esp.primary() == "a"
    esp.mark_bad("b")  # idempotent
    assert esp.state("b") == "bad"


def test_blessing_twice_changes_nothing(esp: BootEntries, tmp_path: Path) -> None:
    install_b(esp, tmp_path)
    first = esp.bless("b")
    assert esp.bless("b") == first


def test_wrong_slots_and_missing_kernels_are_refused_with_reasons(esp: BootEntries) -> None:
    with pytest.raises(SlotError, match="no slot 'c'"):
        esp.make_primary("c", "x")
    with pytest.raises(SlotError, match="slot b: no b/vmlinuz on the boot partition"):
        esp.make_primary("b", "x")
    with pytest.raises(SlotError, match="slot b: no boot entry to keep"):
        esp.bless("b")


def test_files_that_are_not_plantd_entries_are_left_alone(esp: BootEntries) -> None:
    (esp.directory / "memtest.conf").write_text("title memtest\n")
    (esp.directory / "plantd-x-a.conf").write_text("not ours\n")
    assert [e.path.name for e in esp.entries()] == ["plantd-1-a.conf"]
