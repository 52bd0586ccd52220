#!/usr/bin/env python3
"""Idle figures of the plantd services on a real CPU: boot an image's root directory with
``systemd-nspawn --boot`` and measure each service's RSS and CPU over a quiet minute.

    python3 image/build.py build amd64 --keep
    python3 image/nspawn.py image/out/amd64/work/rootfs [--seconds 60]

QEMU's software emulation (tests/image/test_boot.py) makes CPU figures several times too high;
a container runs the same root directory, the same systemd and the same units on the host's
CPU, in about a second. The root is read-only as on the device; /var and /etc/plantd are
scratch copies with one module (the ``fake`` driver, polling every second) configured. CPU time
comes from /proc/PID/stat (utime + stime of every thread), as the container has no cgroup
accounting of its own. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVICES = (
    "plantd-broker",
    "plantd-state",
    "plantd-historian",
    "plantd-logger",
    "plantd-modules",
    "plantd-proxy",
    "plantd-control",
)
MODULE = """\
driver: fake
groups:
  - name: main
    interval: 1s
    points:
      - {name: level, value: 5.0, pattern: sine, period: 60}
      - {name: count, pattern: counter}
"""
TICKS = os.sysconf("SC_CLK_TCK")


class Container:
    def __init__(self, rootfs: Path, scratch: Path) -> None:
        self.rootfs, self.scratch = rootfs, scratch
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        shutil.copytree(self.rootfs / "var", self.scratch / "var", symlinks=True)
        config = self.scratch / "plantd"
        shutil.copytree(self.rootfs / "etc/plantd", config, symlinks=True)
        module = config / "modules.d" / "demo.yaml"
        module.write_text(MODULE)
        shutil.chown(module, group=(self.rootfs / "etc/plantd").stat().st_gid)
        module.chmod(0o640)
        device = self.scratch / "var/lib/device"
        device.mkdir(parents=True, exist_ok=True)
        (device / "firstboot.done").touch()  # no partition to grow, no SSH wanted here
        with open(self.scratch / "console.log", "wb") as log:
            self.process = subprocess.Popen(
                ["systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--read-only",
                 f"--directory={self.rootfs}", "--machine=plantd-idle",
                 f"--bind={self.scratch / 'var'}:/var", f"--bind={config}:/etc/plantd",
                 "--console=read-only"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def init_pid(self) -> int:
        assert self.process is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = subprocess.run(
                ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True,
                check=False,
            ).stdout.split()  # fmt: skip
            if children:
                return int(children[0])
            time.sleep(0.2)
        raise RuntimeError("the container did not start")

    def run(self, *command: str) -> str:
        return subprocess.run(
            ["nsenter", "-t", str(self.init_pid()), "-a", *command],
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.run("systemctl", "poweroff")
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def cpu_ticks(container: Container, pid: str) -> int:
    fields = container.run("cat", f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


def measure(rootfs: Path, seconds: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="plantd-nspawn-") as tmp:
        container = Container(rootfs, Path(tmp))
        started = time.monotonic()
        container.start()
        try:
            deadline = time.monotonic() + 120
            while container.run("systemctl", "is-active", "plantd.target") != "active":
                if time.monotonic() > deadline:
                    raise RuntimeError((Path(tmp) / "console.log").read_text()[-3000:])
                time.sleep(0.5)
            ready_after = time.monotonic() - started
            time.sleep(10)  # let start-up work settle
            pids = {s: container.run("systemctl", "show", "-P", "MainPID", s) for s in SERVICES}
            before, t0 = {s: cpu_ticks(container, p) for s, p in pids.items()}, time.monotonic()
            time.sleep(seconds)
            after, elapsed = (
                {s: cpu_ticks(container, p) for s, p in pids.items()},
                (time.monotonic() - t0),
            )
            services = {}
            for service, pid in pids.items():
                status = container.run("cat", f"/proc/{pid}/status")
                rss_kb = int(status.split("VmRSS:")[1].split()[0])
                services[service] = {
                    "rss_mb": round(rss_kb / 1024, 1),
                    "cpu_percent": round((after[service] - before[service]) / TICKS / elapsed
                                         * 100, 3),
                }  # fmt: skip
            failed = container.run("systemctl", "--failed", "--no-legend", "--plain")
        finally:
            container.stop()
    return {
        "plantd_target_active_after_s": round(ready_after, 1),
        "services": services,
        "total_rss_mb": round(sum(s["rss_mb"] for s in services.values()), 1),
        "total_cpu_percent": round(sum(s["cpu_percent"] for s in services.values()), 3),
        "seconds": round(elapsed),
        "failed_units": failed.splitlines(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nspawn.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("rootfs", type=Path, help="a build's root directory (build.py --keep)")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("nspawn.py: run as root")
    print(json.dumps(measure(args.rootfs.resolve(), args.seconds), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
