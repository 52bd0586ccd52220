"""Building the appliance images for the tests (once per session, really: mmdebstrap, genimage).

``PLANTD_IMAGE_OUT=DIR`` reuses a build's output directory instead (``image/out/amd64`` after
``python3 image/build.py build amd64``), for quick iterations on the tests themselves.

The build and the boots take minutes: :func:`progress` says on the terminal what they are
doing as they go ("image amd64: rootfs done in 312 s"), past pytest's output capture.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "image"
TOOLS = ("mmdebstrap", "genimage", "mke2fs", "mcopy", "qemu-system-x86_64", "ssh", "sfdisk")


Progress = Callable[[str], None]


def progress_writer(config: pytest.Config) -> Progress:
    """A function that writes a line to the terminal now, while pytest captures the tests'
    output (the capture is suspended for the line). Under pytest-xdist a worker's stderr is
    the terminal's, so the line shows there too."""
    capture = config.pluginmanager.getplugin("capturemanager")

    def say(line: str) -> None:
        with capture.global_and_fixture_disabled():
            sys.stderr.write(f"\n[image] {line}\n")
            sys.stderr.flush()

    return say


@pytest.fixture(scope="session")
def progress(pytestconfig: pytest.Config) -> Progress:
    return progress_writer(pytestconfig)


def minutes(seconds: float) -> str:
    """``2m10s`` (or ``41s``): how long a phase took, for the progress lines."""
    whole = round(seconds)
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"


@dataclass(frozen=True)
class Built:
    target: str
    out: Path
    report: dict[str, Any]

    @property
    def image(self) -> Path:
        return self.out / f"plantd-{self.target}.img"

    @property
    def manifest(self) -> str:
        return (self.out / f"plantd-{self.target}.manifest").read_text()


def _require_builder(extra: tuple[str, ...] = ()) -> None:
    problems = []
    if os.geteuid() != 0:
        problems.append("root (mmdebstrap --mode=root)")
    missing = [tool for tool in (*TOOLS, *extra) if shutil.which(tool) is None]
    if missing:
        problems.append(f"image/deps.sh (missing: {', '.join(missing)})")
    if problems:
        pytest.fail(
            "the image tests need " + " and ".join(problems) + "; `make image-deps` installs "
            "the tools, or deselect these tests with -m 'not image'",
            pytrace=False,
        )


def build(target: str, out: Path, progress: Progress) -> Built:
    """Run image/build.py into ``out``; its steps ("== rootfs", "== rootfs: 312.4 s") are
    passed on to ``progress`` as they start and end, everything it says goes to build.log."""
    log = out / "build.log"
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    progress(f"building the {target} image (log: {log})")
    with (
        open(log, "w") as handle,
        subprocess.Popen(
            [sys.executable, str(IMAGE / "build.py"), "build", target, "--out", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            handle.write(line)
            handle.flush()
            if line.startswith("== "):
                step, _, took = line[3:].strip().partition(": ")
                seconds = took.removesuffix(" s")
                detail = f"done in {minutes(float(seconds))}" if took else "…"
                progress(f"image {target}: {step} {detail}")
        returncode = process.wait()
    if returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:])
        pytest.fail(f"image/build.py build {target} failed ({returncode}):\n{tail}")
    progress(f"image {target}: built in {minutes(time.monotonic() - started)}")
    return Built(target, out, json.loads((out / "build.json").read_text()))


@pytest.fixture(scope="session")
def amd64(tmp_path_factory: pytest.TempPathFactory, progress: Progress) -> Iterator[Built]:
    reuse = os.environ.get("PLANTD_IMAGE_OUT")
    if reuse:
        out = Path(reuse).resolve()
        progress(f"image amd64: reusing the build in {out} (PLANTD_IMAGE_OUT)")
        yield Built("amd64", out, json.loads((out / "build.json").read_text()))
        return
    _require_builder()
    out = tmp_path_factory.mktemp("image-amd64")
    built = build("amd64", out, progress)
    yield built
    shutil.rmtree(out / "work", ignore_errors=True)
