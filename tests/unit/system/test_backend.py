"""``plantd-slots``, RAUC's custom boot loader backend, on a boot partition and a slot that
are directories (PLANTD_ESP, PLANTD_SLOT_DEVICE)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plantd.system import BootEntries
from plantd.system._backend import booted_slot, main
from tests.unit.system._bootloader_model import boot

TEMPLATE = "root=PARTUUID={root_partuuid} ro panic=10 plantd.slot={slot} rauc.slot={slot}"


@pytest.fixture
def slots(tmp_path: Path, esp: BootEntries, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Slot B written by RAUC: a root file system with a kernel, an initrd, the command line."""
    slot_b = tmp_path / "slot-b"
    (slot_b / "boot").mkdir(parents=True)
    (slot_b / "boot" / "vmlinuz-6.1.0-40-amd64").write_bytes(b"new kernel")
    (slot_b / "boot" / "initrd.img-6.1.0-40-amd64").write_bytes(b"new initrd")
    (slot_b / "usr/lib/plantd").mkdir(parents=True)
    (slot_b / "usr/lib/plantd/cmdline").write_text(TEMPLATE + "\n")
    (slot_b / "usr/lib/plantd/version").write_text("0.9.0+gabc\n")
    (slot_b / ".partuuid").write_text("bbbb-2222\n")
    monkeypatch.setenv("PLANTD_ESP", str(esp.esp))
    monkeypatch.setenv("PLANTD_SLOT_DEVICE", str(tmp_path / "slot-{slot}"))
    return slot_b


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


def test_rauc_sees_slot_a_primary_and_good_on_a_fresh_image(
    slots: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "get-primary") == (0, "a", "")
    assert run(capsys, "get-state", "a") == (0, "good", "")
    assert run(capsys, "get-state", "b") == (0, "bad", "")  # nothing installed there


def test_set_primary_copies_the_slots_kernel_and_writes_its_entry_on_trial(
    slots: Path, esp: BootEntries, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "set-primary", "b") == (0, "", "")
    assert (esp.esp / "b" / "vmlinuz").read_bytes() == b"new kernel"
    assert (esp.esp / "b" / "initrd.img").read_bytes() == b"new initrd"
    entry = esp.entry("b")
    assert entry is not None
    assert entry.path.name == "plantd-2-b+1.conf"
    text = entry.path.read_text()
    assert "options root=PARTUUID=bbbb-2222 ro panic=10 plantd.slot=b rauc.slot=b\n" in text
    assert "title   plantd 0.9.0+gabc (slot B)" in text
    assert run(capsys, "get-primary") == (0, "b", "")
    assert run(capsys, "get-state", "b") == (0, "good", "")  # bootable: on trial
    # RAUC's mark-good after the trial boot blesses it; mark-bad sends it last.
    boot(esp)
    assert run(capsys, "set-state", "b", "good") == (0, "", "")
    assert esp.state("b") == "good"
    assert run(capsys, "set-state", "b", "bad") == (0, "", "")
    assert run(capsys, "get-primary") == (0, "a", "")


def test_status_is_json_for_plant_system_status(
    slots: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "status")
    assert code == 0
    assert json.loads(out) == {
        "booted": booted_slot(),
        "primary": "a",
        "slots": {"a": "good", "b": "missing"},
    }


def test_a_slot_without_a_kernel_or_command_line_is_refused_and_nothing_changes(
    slots: Path, esp: BootEntries, capsys: pytest.CaptureFixture[str]
) -> None:
    (slots / "usr/lib/plantd/cmdline").unlink()
    code, _, err = run(capsys, "set-primary", "b")
    assert code == 1
    assert "slot b: no /usr/lib/plantd/cmdline" in err
    for kernel in (slots / "boot").glob("vmlinuz-*"):
        kernel.unlink()
    code, _, err = run(capsys, "set-primary", "b")
    assert (code, err) == (1, "plantd-slots: slot b: no kernel in its /boot")
    assert esp.primary() == "a"
    assert esp.state("b") == "missing"


def test_bad_arguments_are_named(slots: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "set-primary", "c")[0:3:2] == (1, "plantd-slots: no slot 'c' (slots: a, b)")
    with pytest.raises(SystemExit):
        main(["set-state", "a"])


def test_booted_slot_comes_from_the_kernel_command_line() -> None:
    assert booted_slot("root=PARTUUID=x ro plantd.slot=b rauc.slot=b") == "b"
    assert booted_slot("root=/dev/sda2 ro") is None
    assert booted_slot("plantd.slot=z") is None
