"""``plantd-boot-check``: keep a new slot only if plantd comes up healthy on it in time.

Runs at every boot (``plantd-boot-check.service``). On a boot that is not a trial (the booted
slot's entry has no try counter: :mod:`plantd.system._slots`) it has nothing to do. On a trial
boot — the first boot of a slot an update has just written — it waits until

- ``plantd.target`` is active, and
- ``plant health`` exits 0 (every plantd process, module and sink ok),

then blesses the slot's entry: it stays the one that boots. If that has not happened
``deadline`` seconds after the kernel started (``/proc/uptime``: a slow early boot counts
against it too), it reboots. The boot loader then finds the entry's try used up and boots the
other slot, as it would after a kernel panic (``panic=10``) or a hang the watchdog ends:
nothing here has to work for the old slot to come back, only for the new one to stay.

With no other slot to go back to (it is missing or failed too), it does not reboot: a device
that boots is better than one that reboots forever.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from plantd.system._backend import booted_slot, esp, slots_status, writable
from plantd.system._incoming import refresh_at_boot
from plantd.system._slots import SLOTS, BootEntries

__all__ = ["Check", "main", "run_check"]

log = logging.getLogger("plantd-boot-check")

DEFAULT_DEADLINE = 300.0  # seconds from the kernel's start; a Pi's first boot of a slot is slow
POLL = 5.0
PLANT = "/opt/plantd/venv/bin/plant"


@dataclass
class Check:
    """One look: is plantd healthy now, and if not, why (for the journal)."""

    healthy: bool
    why: str


def look(plant: str, config: str) -> Check:
    target = subprocess.run(
        ["systemctl", "is-active", "plantd.target"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if target != "active":
        return Check(False, f"plantd.target is {target or 'unknown'}")
    try:
        health = subprocess.run(
            [plant, "--config", config, "health", "--timeout", "10"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Check(False, "plant health did not answer within 60 s")
    if health.returncode != 0:
        said = (health.stdout + health.stderr).strip().splitlines()
        return Check(False, f"plant health exit {health.returncode}: {' | '.join(said[-6:])}")
    return Check(True, "plantd.target active, plant health ok")


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def run_check(
    entries: BootEntries,
    booted: str | None,
    deadline: float,
    *,
    look_now: Callable[[], Check],
    clock: Callable[[], float] = uptime,
    sleep: Callable[[float], None] = time.sleep,
    reboot: Callable[[], None],
    bless: Callable[[str], None] | None = None,
) -> str:
    """Decide this boot; what was decided (``not-a-trial``, ``kept``, ``rebooting``,
    ``no-fallback``). The effects are injected so that a test can drive it."""
    if booted is None:
        log.warning("no plantd.slot= on the kernel command line: not an A/B boot")
        return "not-a-trial"
    entry = entries.entry(booted)
    if entry is None:
        log.error("slot %s: no boot entry in %s: is the boot partition mounted?", booted,
                  entries.directory)  # fmt: skip
        return "not-a-trial"
    if not entry.on_trial:
        log.info("slot %s: not on trial (%s)", booted, entries.state(booted))
        return "not-a-trial"
    log.info("slot %s on trial: it stays if plantd is healthy %.0f s after boot", booted, deadline)
    while True:  # one look at least, even if the boot was slower than the deadline
        last = look_now()
        if last.healthy:
            (bless or entries.bless)(booted)
            log.warning("slot %s is healthy after %.0f s (%s): kept", booted, clock(), last.why)
            return "kept"
        if clock() >= deadline:
            break
        sleep(min(POLL, max(0.0, deadline - clock())))
    others = [slot for slot in SLOTS if slot != booted]
    if all(entries.state(other) == "missing" for other in others):
        log.critical(
            "slot %s is not healthy after %.0f s (%s), and there is no other slot to go back "
            "to: staying on it",
            booted,
            deadline,
            last.why,
        )
        return "no-fallback"
    log.critical(
        "slot %s is not healthy after %.0f s (%s): rebooting into slot %s",
        booted,
        deadline,
        last.why,
        others[0],
    )
    reboot()
    return "rebooting"


def _reboot() -> None:
    subprocess.run(["systemctl", "reboot"], check=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plantd-boot-check", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--deadline",
        type=float,
        default=DEFAULT_DEADLINE,
        help=f"seconds after the kernel's start (default {DEFAULT_DEADLINE:.0f})",
    )
    parser.add_argument("--config", default="/etc/plantd")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    entries = BootEntries(esp())

    def bless(slot: str) -> None:
        with writable(entries.esp):
            entries.bless(slot)

    decision = run_check(
        entries,
        booted_slot(),
        args.deadline,
        look_now=lambda: look(PLANT, args.config),
        reboot=_reboot,
        bless=bless,
    )
    refresh_at_boot(  # what the web app shows (slots.json, the last update's outcome)
        lambda: slots_status(entries, booted_slot()), settle=decision != "rebooting"
    )
    return 1 if decision in ("rebooting", "no-fallback") else 0


if __name__ == "__main__":
    sys.exit(main())
