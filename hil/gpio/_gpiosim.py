"""The kernel's gpio-sim module (Linux 5.19+), driven through configfs and sysfs.

    reason = GpioSim.unavailable()        # None where it can be used (root, module loaded)
    with GpioSim(lines=8) as sim:
        sim.path                          # /dev/gpiochipN: give it to the driver (backend cdev)
        sim.pull(3, True)                 # an input's physical level (the simulated pull)
        sim.value(5)                      # what the driver drives on an output
        sim.unplug(); sim.plug()          # the chip goes away (held lines fail: ENODEV), returns

A chip made here is a real kernel GPIO chip: the driver's character-device backend runs
against it unchanged, so tests that pass here pass against hardware as far as the kernel is
concerned. Where gpio-sim is missing, :class:`hil.gpio.SimulatedChip` stands in at the seam.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import TracebackType

__all__ = ["GpioSim"]

CONFIGFS = Path("/sys/kernel/config/gpio-sim")


class GpioSim:
    def __init__(self, lines: int = 8, name: str | None = None) -> None:
        self.lines = lines
        self.name = name or f"plantd-{os.getpid()}-{time.monotonic_ns() % 1_000_000}"
        self.root = CONFIGFS / self.name
        self.path = ""
        self.live = False
        self._sysfs = Path()

    @staticmethod
    def unavailable() -> str | None:
        """Why gpio-sim cannot be used here, or None."""
        if not Path("/sys/kernel/config").is_dir():
            return "configfs is not mounted (/sys/kernel/config missing)"
        if not CONFIGFS.is_dir():
            return "the kernel has no gpio-sim (modprobe gpio-sim; CONFIG_GPIO_SIM)"
        if not os.access(CONFIGFS, os.W_OK):
            return "gpio-sim needs root (configfs is not writable)"
        return None

    def __enter__(self) -> GpioSim:
        bank = self.root / "bank0"
        bank.mkdir(parents=True)
        (bank / "num_lines").write_text(str(self.lines))
        self.plug()
        return self

    def plug(self) -> None:
        """Make the chip live (again): the kernel registers it, its lines can be requested."""
        bank = self.root / "bank0"
        (self.root / "live").write_text("1")
        chip = (bank / "chip_name").read_text().strip()
        device = (self.root / "dev_name").read_text().strip()
        self.path = f"/dev/{chip}"
        self._sysfs = Path("/sys/devices/platform") / device / chip
        self.live = True

    def unplug(self) -> None:
        """Take the chip away as a vanished expander would go: lines still held fail (ENODEV)."""
        (self.root / "live").write_text("0")
        self.live = False

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.live:
            self.unplug()
        (self.root / "bank0").rmdir()
        self.root.rmdir()

    def pull(self, offset: int, level: bool) -> None:
        (self._sysfs / f"sim_gpio{offset}" / "pull").write_text("pull-up" if level else "pull-down")

    def value(self, offset: int) -> bool:
        return (self._sysfs / f"sim_gpio{offset}" / "value").read_text().strip() == "1"
