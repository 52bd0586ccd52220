"""Simulated GPIO: a chip at the driver's seam (always), and the kernel's gpio-sim (where the
kernel has it).

    from hil.gpio import SimulatedChip
    chip = SimulatedChip()
    driver = GpioDriver(module, chip=chip)       # or connection.backend: simulated (realtime_chip)
    chip.bounce(17, True, edges=5, spacing=0.001); chip.advance(0.05)

See :mod:`hil.gpio._chip` and :mod:`hil.gpio._gpiosim`.
"""

from __future__ import annotations

from hil.gpio._chip import SimulatedChip, SimulatedLine, realtime_chip
from hil.gpio._gpiosim import GpioSim

__all__ = ["GpioSim", "SimulatedChip", "SimulatedLine", "realtime_chip"]
