"""The trial boot's health gate, driven with an injected clock, health and reboot."""

from __future__ import annotations

from pathlib import Path

from plantd.system import BootEntries
from plantd.system._bootcheck import Check, run_check
from tests.unit.system._bootloader_model import boot, install_b


class Box:
    """The clock (seconds since the kernel started), what health says when, and reboots."""

    def __init__(self, healthy_at: float | None) -> None:
        self.now = 20.0
        self.healthy_at = healthy_at
        self.reboots = 0
        self.looks = 0

    def look(self) -> Check:
        self.looks += 1
        if self.healthy_at is not None and self.now >= self.healthy_at:
            return Check(True, "plantd.target active, plant health ok")
        return Check(False, "plant health exit 3: no broker")

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def reboot(self) -> None:
        self.reboots += 1


def check(esp: BootEntries, box: Box, booted: str | None, deadline: float = 120) -> str:
    return run_check(
        esp,
        booted,
        deadline,
        look_now=box.look,
        clock=lambda: box.now,
        sleep=box.sleep,
        reboot=box.reboot,
    )


def test_a_boot_that_is_not_a_trial_does_nothing(esp: BootEntries) -> None:
    box = Box(healthy_at=None)
    assert check(esp, box, "a") == "not-a-trial"
    assert (box.looks, box.reboots) == (0, 0)
    assert check(esp, box, None) == "not-a-trial"


def test_a_healthy_trial_is_kept(esp: BootEntries, tmp_path: Path) -> None:
    install_b(esp, tmp_path)
    assert boot(esp) == "b"
    box = Box(healthy_at=75)
    assert check(esp, box, "b") == "kept"
    assert box.reboots == 0
    assert esp.state("b") == "good"
    assert boot(esp) == "b"


def test_a_trial_unhealthy_at_the_deadline_reboots_into_the_old_slot(
    esp: BootEntries, tmp_path: Path
) -> None:
    install_b(esp, tmp_path)
    assert boot(esp) == "b"
    box = Box(healthy_at=None)
    assert check(esp, box, "b", deadline=120) == "rebooting"
    assert box.reboots == 1
    assert box.now >= 120  # it kept looking until the deadline
    assert boot(esp) == "a"  # the boot loader's own fallback


def test_healthy_too_late_is_not_healthy(esp: BootEntries, tmp_path: Path) -> None:
    install_b(esp, tmp_path)
    boot(esp)
    box = Box(healthy_at=500)
    assert check(esp, box, "b", deadline=120) == "rebooting"
    assert esp.state("b") == "bad"


def test_with_nothing_to_go_back_to_it_stays(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "vmlinuz").write_bytes(b"k")
    (tmp_path / "a" / "initrd.img").write_bytes(b"i")
    esp = BootEntries(tmp_path)
    esp.make_primary("a", "plantd.slot=a", tries=1)
    boot(esp)
    box = Box(healthy_at=None)
    assert check(esp, box, "a") == "no-fallback"
    assert box.reboots == 0


def test_a_boot_slower_than_the_deadline_still_gets_one_look(
    esp: BootEntries, tmp_path: Path
) -> None:
    install_b(esp, tmp_path)
    boot(esp)
    box = Box(healthy_at=0)
    box.now = 500  # the check starts after its deadline
    assert check(esp, box, "b", deadline=120) == "kept"
    assert (box.looks, box.reboots) == (1, 0)
