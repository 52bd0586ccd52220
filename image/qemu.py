#!/usr/bin/env python3
"""Boot a built amd64 image under QEMU and reach it over SSH: ``python3 image/qemu.py OUT_DIR``.

QEMU uses KVM where it works and software emulation (TCG) where it does not. ``/dev/kvm``
being there is not enough: in a virtual machine (nested KVM) QEMU may abort on a model-specific
register the outer hypervisor refuses, or start and the guest's kernel hang before it prints
anything (both seen on the machines this was written on). So KVM is tried once per process
(:func:`kvm_boots`): the image's kernel must reach its init under KVM within a minute, or the
machine runs under TCG. ``PLANTD_QEMU_ACCEL=kvm`` or ``=tcg`` decides without the trial.
It boots either through UEFI firmware (OVMF, ``firmware=True``: systemd-boot on the disk picks
the slot, as on a real machine; what the A/B update tests need) or the kernel and initrd
written beside the image directly with the image's own command line (slot A, quicker), on a
*copy* of the image (sparse), optionally made larger (to see the data partition
grow) and with a provisioning file and SSH key put on its boot partition with mtools, as a
technician would with a card reader. The guest's network is QEMU's user-mode network with
``restrict=on``: the guest reaches nothing; the host reaches the guest's SSH port through a
loopback port forward, on a port the host's kernel chose when QEMU bound it (port 0), read
back from QEMU over its QMP socket.

As a program it boots the image, prints how to log in, and waits (Ctrl-C stops the machine).
The boot test (tests/image/) drives the same :class:`Machine` through reboots and power cuts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Machine", "Prepared", "boot_partition_offset", "prepare", "put_on_boot_partition"]


# How `info usernet` lists the SSH forward: TCP[HOST_FORWARD] FD 127.0.0.1 PORT 10.0.2.15 22.
_HOSTFWD = re.compile(r"TCP\[HOST_FORWARD\]\s+\d+\s+127\.0\.0\.1\s+(\d+)\s+\S+\s+22\b")


# What the kernel prints as it starts the initramfs's init: it has come through its own start.
_KERNEL_UP = b"Run /init as init process"
_kvm_verdict: dict[Path, bool] = {}


def accelerator(kernel: Path, initrd: Path, work: Path) -> str:
    """KVM or TCG ("kvm", "tcg") for a machine booting ``kernel`` (the module docstring: why)."""
    forced = os.environ.get("PLANTD_QEMU_ACCEL")
    if forced:
        if forced not in ("kvm", "tcg"):
            raise ValueError(f"PLANTD_QEMU_ACCEL={forced!r}: kvm or tcg")
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    if kernel not in _kvm_verdict:
        _kvm_verdict[kernel] = kvm_boots(kernel, initrd, work)
    return "kvm" if _kvm_verdict[kernel] else "tcg"


def kvm_boots(kernel: Path, initrd: Path, work: Path, timeout: float = 60) -> bool:
    """Whether ``kernel`` comes up to its init under KVM here (no disk: the trial stops there).

    Under KVM that takes a second or two; a minute without it is a hang, not slowness. The
    trial's console is kept as ``kvm-trial.log`` in ``work``."""
    console = work / "kvm-trial.log"
    console.unlink(missing_ok=True)
    process = subprocess.Popen(
        ["qemu-system-x86_64", "-machine", "q35", "-accel", "kvm", "-cpu", "host",
         "-m", "512M", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
         "-kernel", str(kernel), "-initrd", str(initrd), "-append", "console=ttyS0 panic=-1",
         "-serial", f"file:{console}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if console.exists() and _KERNEL_UP in console.read_bytes():
                return True
            time.sleep(0.2)
        return False
    finally:
        process.kill()
        process.wait()


class Monitor:
    """QEMU's machine protocol (QMP) on a unix socket: what QEMU made of its options."""

    def __init__(self, path: Path, qemu: subprocess.Popen[bytes], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX)
            try:
                sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if qemu.poll() is not None:
                    raise AssertionError(f"QEMU exited ({qemu.returncode})") from None
                if time.monotonic() > deadline:
                    raise AssertionError(f"QEMU's QMP socket {path} never answered") from None
                time.sleep(0.05)
        sock.settimeout(timeout)
        self._file = sock.makefile("rw", encoding="utf-8")
        self._sock = sock
        json.loads(self._file.readline())  # the greeting
        self.execute("qmp_capabilities")

    def execute(self, command: str, **arguments: Any) -> Any:
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self._file.write(json.dumps(request) + "\n")
        self._file.flush()
        while True:
            reply = json.loads(self._file.readline())
            if "event" in reply:
                continue  # asynchronous events (a guest reset) come between the replies
            if "error" in reply:
                raise RuntimeError(f"QMP {command}: {reply['error']}")
            return reply["return"]

    def close(self) -> None:
        self._file.close()
        self._sock.close()


def boot_partition_offset(image: Path) -> int:
    """Byte offset of the first partition (the boot partition), from the partition table."""
    table = json.loads(
        subprocess.run(
            ["sfdisk", "--json", str(image)], capture_output=True, text=True, check=True
        ).stdout
    )["partitiontable"]
    sector: int = table.get("sectorsize", 512)
    start: int = table["partitions"][0]["start"]
    return start * sector


def put_on_boot_partition(image: Path, files: dict[str, bytes]) -> None:
    """Write files into the boot partition's FAT file system (mtools: no mount)."""
    offset = boot_partition_offset(image)
    for name, body in files.items():
        source = image.with_name(f".{name}.upload")
        source.write_bytes(body)
        try:
            subprocess.run(
                ["mcopy", "-o", "-i", f"{image}@@{offset}", str(source), f"::{name}"],
                check=True,
                capture_output=True,
            )
        finally:
            source.unlink()


def read_boot_partition(image: Path, name: str) -> bytes | None:
    offset = boot_partition_offset(image)
    result = subprocess.run(
        ["mtype", "-i", f"{image}@@{offset}", f"::{name}"], capture_output=True, check=False
    )
    return result.stdout if result.returncode == 0 else None


def list_boot_partition(image: Path) -> list[str]:
    """Every file on the boot partition, as a path (``EFI/BOOT/BOOTX64.EFI``)."""
    offset = boot_partition_offset(image)
    result = subprocess.run(
        ["mdir", "-/", "-b", "-i", f"{image}@@{offset}", "::/"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [
        line.removeprefix("::/") for line in result.stdout.splitlines() if not line.endswith("/")
    ]


@dataclass(frozen=True)
class Prepared:
    """A disk to boot: the image's copy, its kernel, initrd and command line, an SSH key."""

    disk: Path
    kernel: Path
    initrd: Path
    cmdline: str
    ssh_key: Path


def prepare(
    out: Path,
    work: Path,
    *,
    grow: int = 0,
    provision: str | None = None,
    stem: str = "plantd-amd64",
) -> Prepared:
    """Copy the image from a build's output directory into ``work``, ready to boot."""
    work.mkdir(parents=True, exist_ok=True)
    disk = work / "disk.img"
    subprocess.run(["cp", "--sparse=always", str(out / f"{stem}.img"), str(disk)], check=True)
    if grow:
        with open(disk, "r+b") as handle:
            handle.truncate(disk.stat().st_size + grow)
    key = work / "id_ed25519"
    if not key.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "plantd-test", "-f", str(key)],
            check=True,
        )
    files = {"authorized_keys": key.with_suffix(".pub").read_bytes()}
    if provision is not None:
        files["plantd-provision.yaml"] = provision.encode()
    put_on_boot_partition(disk, files)
    return Prepared(
        disk=disk,
        kernel=out / f"{stem}.vmlinuz",
        initrd=out / f"{stem}.initrd",
        cmdline=(out / f"{stem}.cmdline").read_text().strip(),
        ssh_key=key,
    )


OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")


class Machine:
    """One QEMU process booting a prepared disk; SSH into it as root.

    ``firmware``: boot through OVMF and the disk's boot loader, with the machine's own UEFI
    variable store (``OVMF_VARS.fd`` in ``work``, kept across its boots as NVRAM is)."""

    def __init__(
        self,
        prepared: Prepared,
        work: Path,
        *,
        memory: str = "1024M",
        cpus: int = 2,
        firmware: bool = False,
    ) -> None:
        self.prepared = prepared
        self.work = work
        self.firmware = firmware
        self.memory = memory
        self.cpus = cpus
        self.port = 0  # the SSH forward's host port, known once QEMU has bound it (start)
        self.accelerator = ""  # "kvm" or "tcg": what QEMU runs this boot with (start)
        self.process: subprocess.Popen[bytes] | None = None
        self.boots = 0
        self.started_at = 0.0
        self._ssh_control: Path | None = None  # the shared SSH connections' sockets

    @property
    def console(self) -> Path:
        return self.work / f"console-{self.boots}.log"

    def command(self) -> list[str]:
        p = self.prepared
        return [
            "qemu-system-x86_64",
            "-machine", "q35",
            "-accel", self.accelerator,
            # KVM: the host's CPU as it is; TCG: every feature QEMU can emulate.
            "-cpu", "host" if self.accelerator == "kvm" else "max",
            "-smp", str(self.cpus),
            "-m", self.memory,
            "-nodefaults",
            "-no-user-config",
            "-display", "none",
            *self._boot_options(),
            "-drive", f"file={p.disk},format=raw,if=virtio,cache=writeback,discard=unmap",
            "-nic",
            # Host port 0: the kernel picks a free one as QEMU binds it (no port is chosen
            # first and bound later, which another process could take in between); the port
            # is read back over QMP.
            "user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:0-:22",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            "-device", "virtio-rng-pci",
            "-serial", f"file:{self.console}",
        ]  # fmt: skip

    def _boot_options(self) -> list[str]:
        p = self.prepared
        if not self.firmware:
            return ["-kernel", str(p.kernel), "-initrd", str(p.initrd), "-append", p.cmdline]
        variables = self.work / "OVMF_VARS.fd"
        if not variables.exists():
            variables.write_bytes(OVMF_VARS.read_bytes())
        return [
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={variables}",
        ]  # fmt: skip

    @property
    def qmp_path(self) -> Path:
        return self.work / "qmp.sock"

    def start(self) -> None:
        """Start QEMU; returns once it listens for SSH (the guest is still booting)."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the machine is running")
        self.boots += 1
        self.started_at = time.monotonic()
        self.qmp_path.unlink(missing_ok=True)
        p = self.prepared
        self.accelerator = accelerator(p.kernel, p.initrd, self.work)
        with open(self.work / f"qemu-{self.boots}.log", "wb") as log:
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log
            )
        try:
            monitor = Monitor(self.qmp_path, self.process)
        except (AssertionError, OSError, ValueError) as exc:
            self.power_cut()
            log_text = (self.work / f"qemu-{self.boots}.log").read_text(errors="replace")
            raise AssertionError(f"QEMU did not start ({exc}):\n{log_text}") from exc
        try:
            table = monitor.execute("human-monitor-command", **{"command-line": "info usernet"})
        finally:
            monitor.close()
        match = _HOSTFWD.search(table)
        if match is None:
            self.power_cut()
            raise AssertionError(f"QEMU forwards no host port to the guest's SSH:\n{table}")
        self.port = int(match.group(1))

    def ssh_command(self, command: str) -> list[str]:
        if self._ssh_control is None:
            # A directory of its own under /tmp: a socket's path must stay under ~104 bytes,
            # which a test's work directory does not promise.
            self._ssh_control = Path(tempfile.mkdtemp(prefix="plantd-ssh-"))
        return [
            "ssh",
            "-i", str(self.prepared.ssh_key),
            "-p", str(self.port),
            # One connection per boot, shared by every command: under emulation a new SSH
            # connection (key exchange, authentication) takes the guest about 0.8 s, a
            # command over an open one less than 0.1 s. %C hashes the port, which changes
            # with each QEMU start; the master ends with its connection (a reboot, a power cut).
            "-o", "ControlMaster=auto",
            "-o", f"ControlPath={self._ssh_control}/%C",
            "-o", "ControlPersist=60",
            "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=10",
            "-o", "BatchMode=yes",
            "-o", "ServerAliveInterval=5",
            "root@127.0.0.1",
            command,
        ]  # fmt: skip

    def ssh(
        self, command: str, *, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.ssh_command(command), capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(
                f"ssh {command!r}: exit {result.returncode}\n{result.stdout}{result.stderr}"
            )
        return result

    def put(self, directory: str, archive: bytes) -> None:
        """Unpack a gzipped tar into ``directory`` in the guest (made afresh)."""
        quoted = shlex.quote(directory)
        result = subprocess.run(
            self.ssh_command(f"rm -rf {quoted} && mkdir -p {quoted} && tar -xzf - -C {quoted}"),
            input=archive, capture_output=True, timeout=300, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(f"unpacking into {directory}: {result.stderr.decode()}")

    def send(self, source: Path, destination: str) -> None:
        """Copy a host file to ``destination`` in the guest (over SSH, as scp would)."""
        with open(source, "rb") as data:
            result = subprocess.run(
                self.ssh_command(f"cat > {shlex.quote(destination)}"),
                stdin=data, capture_output=True, timeout=600, check=False,
            )  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(f"copying {source} to {destination}: {result.stderr.decode()}")

    def wait_for_ssh(self, timeout: float = 300) -> float:
        """Seconds from QEMU's start until a command ran over SSH."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"QEMU exited ({self.process.returncode}): {self.tail()}")
            try:
                if self.ssh("true", check=False, timeout=20).returncode == 0:
                    return time.monotonic() - self.started_at
            except subprocess.TimeoutExpired:
                pass
            time.sleep(1)
        raise AssertionError(f"no SSH within {timeout} s; console:\n{self.tail()}")

    def wait_until(self, command: str, timeout: float = 180) -> str:
        """Run ``command`` over SSH until it succeeds; its output."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.ssh(command, check=False)
            if last.returncode == 0:
                return last.stdout
            time.sleep(1)
        raise AssertionError(f"{command!r} never succeeded: {last}")

    def wait_for_exit(self, timeout: float = 120) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def power_cut(self) -> None:
        """Pull the plug: SIGKILL QEMU (what the guest wrote to its disk is what it flushed)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.console.read_text(errors="replace")
        except FileNotFoundError:
            return "(no console output)"
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        self.power_cut()
        if self._ssh_control is not None:
            shutil.rmtree(self._ssh_control, ignore_errors=True)
            self._ssh_control = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qemu.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="a build's output directory (image/out/amd64)")
    parser.add_argument("--work", type=Path, help="where the disk copy goes (default OUT/qemu)")
    parser.add_argument("--grow", type=int, default=1 << 30, help="bytes added to the disk")
    parser.add_argument("--provision", type=Path, help="a plantd-provision.yaml to put on it")
    parser.add_argument("--memory", default="1024M")
    parser.add_argument(
        "--firmware", action="store_true", help="boot through UEFI (OVMF) and systemd-boot"
    )
    args = parser.parse_args(argv)
    work = (args.work or args.out / "qemu").resolve()
    provision = args.provision.read_text() if args.provision else None
    prepared = prepare(args.out.resolve(), work, grow=args.grow, provision=provision)
    machine = Machine(prepared, work, memory=args.memory, firmware=args.firmware)
    machine.start()
    print(f"booting ({machine.accelerator}); console: {machine.console}", flush=True)
    try:
        seconds = machine.wait_for_ssh()
        login = " ".join(shlex.quote(a) for a in machine.ssh_command("")[:-1])
        print(f"SSH after {seconds:.0f} s: {login}", flush=True)
        assert machine.process is not None
        machine.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        machine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
