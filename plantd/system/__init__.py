"""The appliance's own system: its two root slots, A/B updates with RAUC, the trial boot.

- :mod:`plantd.system._slots`: the boot entries of systemd-boot on the boot partition, one
  per slot, with boot counting: which slot boots next, which is on trial, which failed.
- :mod:`plantd.system._backend`: RAUC's custom boot loader backend (``plantd-slots``): RAUC
  asks it which slot is primary and to make the one it has just written the next to boot.
- :mod:`plantd.system._bootcheck`: the trial boot's health gate (``plantd-boot-check``):
  keeps a new slot once plantd is healthy, reboots into the old one if it is not in time.

docs/appliance.md ("Updates") is the user's side of it.
"""

from plantd.system._slots import (
    BootEntries,
    Entry,
    SlotError,
)

__all__ = ["BootEntries", "Entry", "SlotError"]
