"""A real ``plant up`` for the tests: started on a config directory, its output in files (a
pipe left unread would block it), its children looked up through /proc."""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Up:
    """One ``plant up`` process and the files its stdout and stderr go to."""

    process: subprocess.Popen[bytes]
    out: Path
    err: Path

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def children(self) -> list[int]:
        pid = self.process.pid
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(child) for child in text.split()]

    def child(self, module: str) -> int:
        """The pid of its child that runs ``python -m MODULE``."""
        for child in self.children():
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if module.encode() in argv:
                return child
        raise AssertionError(f"plant up has no child running {module}")

    def interrupt(self) -> int:
        """Ctrl-C, as in its terminal: it stops its children in order and exits."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def run_plant_up(config_dir: Path, output: Path, name: str = "up") -> Up:
    """``plant --config CONFIG_DIR up``, writing ``OUTPUT/NAME.out`` and ``NAME.err``."""
    out, err = output / f"{name}.out", output / f"{name}.err"
    with out.open("wb") as out_file, err.open("wb") as err_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "plantd.cli", "--config", str(config_dir), "up"],
            stdout=out_file,
            stderr=err_file,
        )
    return Up(process, out, err)
