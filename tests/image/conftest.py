"""Building the appliance images for the tests (once per session, really: mmdebstrap, genimage).

``PLANTD_IMAGE_OUT=DIR`` reuses a build's output directory instead (``image/out/amd64`` after
``python3 image/build.py build amd64``), for quick iterations on the tests themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "image"
TOOLS = ("mmdebstrap", "genimage", "mke2fs", "mcopy", "qemu-system-x86_64", "ssh", "sfdisk")


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


def build(target: str, out: Path) -> Built:
    log = out / "build.log"
    out.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as handle:
        result = subprocess.run(
            [sys.executable, str(IMAGE / "build.py"), "build", target, "--out", str(out)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:])
        pytest.fail(f"image/build.py build {target} failed ({result.returncode}):\n{tail}")
    return Built(target, out, json.loads((out / "build.json").read_text()))


@pytest.fixture(scope="session")
def amd64(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    reuse = os.environ.get("PLANTD_IMAGE_OUT")
    if reuse:
        out = Path(reuse).resolve()
        yield Built("amd64", out, json.loads((out / "build.json").read_text()))
        return
    _require_builder()
    out = tmp_path_factory.mktemp("image-amd64")
    built = build("amd64", out)
    yield built
    shutil.rmtree(out / "work", ignore_errors=True)
