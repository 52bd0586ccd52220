"""Built-in plantd hardware drivers.

Each driver is a subpackage registered under the entry-point group ``plantd.drivers`` with its own
extra (``plantd[modbus]``, …), loaded through the same door as a third party's driver.
"""

from __future__ import annotations

__all__: list[str] = []
