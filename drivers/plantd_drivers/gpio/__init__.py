"""GPIO driver (``driver: gpio``, extra ``plantd[gpio]``, python-periphery on the character
device): inputs with edge events, debounce, active-low and bias; pulse counters with a rate
over a window; outputs with a safe state. See ``docs/drivers/gpio.md``.
"""

from __future__ import annotations

from plantd_drivers.gpio._chip import Chip, Edge, Line
from plantd_drivers.gpio._config import GpioConnection, GpioGroup, GpioModule, GpioPoint
from plantd_drivers.gpio._driver import GpioDriver

__all__ = [
    "Chip",
    "Edge",
    "GpioConnection",
    "GpioDriver",
    "GpioGroup",
    "GpioModule",
    "GpioPoint",
    "Line",
]
