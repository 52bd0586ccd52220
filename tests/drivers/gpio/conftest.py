"""The GPIO tests run against two backends: the simulated chip at the driver's seam (always)
and the kernel's gpio-sim through the character device (where the kernel has it)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest
from plantd_drivers.gpio import Chip, GpioDriver, GpioModule

from hil.gpio import GpioSim, SimulatedChip
from plantd.module import parse_module_file
from tests.drivers.module_harness import write_module

MODULE = """
driver: gpio
connection: {chip: /dev/gpiochip-test}
groups:
  - name: panel
    interval: 100ms
    points:
      - {name: door, kind: input, line: 1, active_low: true, bias: pull_up, debounce: 20ms}
      - {name: button, kind: input, line: 2}
      - {name: water, kind: counter, line: 3, edge: rising, debounce: 1ms, scale: 0.5}
      - {name: water_rate, kind: rate, counter: water, window: 2s, per: 1s}
  - name: outputs
    mode: poll
    points:
      - {name: pump, kind: output, line: 5, writable: true, safe_state: false, hold_timeout: 300ms}
      - {name: alarm, kind: output, line: 6, writable: true, safe_state: true, active_low: true}
      - {name: key, kind: input, line: 7, bias: pull_down}
"""


class Rig(Protocol):
    """What a test does to the chip: levels are physical, as a probe would see them."""

    chip: Chip
    virtual: bool

    def set_input(self, offset: int, level: bool) -> None: ...

    def bounce(self, offset: int, final: bool, *, edges: int, spacing: float) -> None: ...

    def pulses(self, offset: int, count: int, *, period: float, high: float) -> None:
        """``count`` clean pulses (rising, then falling ``high`` s later), one per ``period``."""

    async def settle(self, seconds: float) -> None: ...

    def output(self, offset: int) -> bool: ...

    def fail(self) -> str:
        """Make the chip fail; what the driver's errors then say (a pattern)."""

    def repair(self) -> None: ...

    def held_lines(self) -> int:
        """How many of the chip's lines are requested (open) now."""


class SimulatedRig:
    virtual = True

    def __init__(self) -> None:
        self.sim = SimulatedChip()
        self.chip: Chip = self.sim

    def set_input(self, offset: int, level: bool) -> None:
        self.sim.set_input(offset, level)

    def bounce(self, offset: int, final: bool, *, edges: int, spacing: float) -> None:
        self.sim.bounce(offset, final, edges=edges, spacing=spacing)

    def pulses(self, offset: int, count: int, *, period: float, high: float) -> None:
        self.sim.pulses(offset, count, period=period, high=high)

    async def settle(self, seconds: float) -> None:
        self.sim.advance(seconds)

    def output(self, offset: int) -> bool:
        return self.sim.output(offset)

    def fail(self) -> str:
        self.sim.fail("the GPIO expander stopped answering")
        return "stopped answering"

    def repair(self) -> None:
        self.sim.repair()

    def held_lines(self) -> int:
        return len(self.sim.requests)


class KernelRig:
    """gpio-sim: a real kernel chip, driven through sysfs; time is real."""

    virtual = False

    def __init__(self, sim: GpioSim) -> None:
        from plantd_drivers.gpio._periphery import CdevChip

        self.sim = sim
        self.cdev = CdevChip(sim.path)
        self.chip: Chip = self.cdev

    def set_input(self, offset: int, level: bool) -> None:
        self.sim.pull(offset, level)

    def bounce(self, offset: int, final: bool, *, edges: int, spacing: float) -> None:
        level = not final if edges % 2 else final
        for index in range(edges):
            level = not level
            if index:
                time.sleep(spacing)
            self.sim.pull(offset, level)

    def pulses(self, offset: int, count: int, *, period: float, high: float) -> None:
        # A signal generator in real time: the kernel stamps each edge as the pull changes.
        for _ in range(count):
            self.sim.pull(offset, True)
            time.sleep(high)
            self.sim.pull(offset, False)
            time.sleep(period - high)

    async def settle(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def output(self, offset: int) -> bool:
        return self.sim.value(offset)

    def fail(self) -> str:
        self.sim.unplug()  # the lines the driver holds are the chip's no more
        return "No such device"  # ENODEV, from every operation on them

    def repair(self) -> None:
        self.sim.plug()
        # A chip that went away with lines held comes back under another number (Linux 6.1
        # keeps the old one); the driver follows it as it would a udev symlink to the chip.
        self.cdev.path = self.sim.path

    def held_lines(self) -> int:
        # periphery holds a line by two descriptors: the chip's, and the line request's.
        fds = Path("/proc/self/fd")
        links = []
        for fd in fds.iterdir():
            try:
                links.append(os.readlink(fd))
            except FileNotFoundError:  # the listing's own descriptor, closed since
                continue
        return sum(1 for link in links if link == "anon_inode:gpio-line")


@pytest.fixture(params=["simulated", "gpio-sim"])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    if request.param == "simulated":
        yield SimulatedRig()
        return
    reason = GpioSim.unavailable()
    if reason is not None:
        pytest.skip(f"gpio-sim is not available here: {reason}")
    with GpioSim(lines=8) as sim:
        yield KernelRig(sim)


ModuleMaker = Callable[..., GpioModule]


@pytest.fixture
def make_module(tmp_path: Path) -> ModuleMaker:
    def make(text: str = MODULE, name: str = "panel") -> GpioModule:
        return parse_module_file(write_module(tmp_path / "modules.d", text, name), GpioModule)

    return make


@pytest.fixture
async def driver(rig: Rig, make_module: ModuleMaker) -> GpioDriver:
    return GpioDriver(make_module(), chip=rig.chip)
