"""Running this checkout's pytest tests inside the booted appliance, over SSH.

The appliance has plantd (the drivers, ``hil``) and its dependencies in ``/opt/plantd/venv``,
but neither pytest nor the tests. :func:`bundle` packs the test files a run needs, the
project's pytest configuration (``pyproject.toml``: the same ``asyncio_mode``, ``timeout``,
``filterwarnings = error``), pytest with its plugins, copied from the distributions installed
in the host's venv (pure Python, and the image's Python is the same 3.11), and the checkout's
own ``plantd``, ``plantd_drivers`` and ``hil``; :func:`ship` unpacks them in the guest and
:func:`run_pytest` runs them with the appliance's Python, the checkout's packages ahead of the
venv's. In ``make test`` the image is built from the same checkout, so that is the image's
code; with ``PLANTD_IMAGE_OUT`` (an older build) the tests and the code they test still
match, only the dependencies are the image's.

    ship(machine, GPIO_TESTS, {"gpio-sim.ko": module})   # into GUEST_DIR
    run = run_pytest(machine, GPIO_TESTS[-1], "-k", "gpio-sim")
    run.outcomes      # {"test_conformance[gpio-sim]": "passed", ...} from pytest's JUnit XML
"""

from __future__ import annotations

import io
import shlex
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from image.qemu import Machine

REPO = Path(__file__).resolve().parents[2]
GUEST_DIR = "/var/tmp/plantd-tests"
GUEST_PYTHON = "/opt/plantd/venv/bin/python"
# pytest and the plugins the project's configuration names (asyncio_mode, timeout, the
# xdist_group marks of tests/_parallel.py); what they require comes along (:func:`closure`).
PYTEST = ("pytest", "pytest-asyncio", "pytest-timeout", "pytest-xdist")
# The checkout's packages (pure Python), at the paths pyproject's pythonpath and PYTHONPATH name.
PACKAGES = ("plantd", "drivers/plantd_drivers", "hil")
# The GPIO driver's tests and what they import from the checkout's tests/ (the root conftest,
# the module harness, the suite's plugin that pyproject's addopts loads).
GPIO_TESTS = (
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/_parallel.py",
    "tests/drivers/__init__.py",
    "tests/drivers/module_harness.py",
    "tests/drivers/gpio/__init__.py",
    "tests/drivers/gpio/conftest.py",
    "tests/drivers/gpio/test_driver.py",
)


def closure(names: tuple[str, ...]) -> list[metadata.Distribution]:
    """The installed distributions ``names`` and everything they require here (markers
    evaluated for this Python, extras left out)."""
    found: dict[str, metadata.Distribution] = {}
    pending = list(names)
    while pending:
        name = pending.pop()
        key = name.lower().replace("_", "-")
        if key in found:
            continue
        distribution = metadata.distribution(name)
        found[key] = distribution
        for line in distribution.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return sorted(found.values(), key=lambda d: d.metadata["Name"].lower())


def bundle(test_files: tuple[str, ...], extra: dict[str, Path]) -> tuple[bytes, list[str]]:
    """A gzipped tar of ``pyproject.toml``, ``test_files``, ``extra`` (name in the tar: file)
    and, under ``site/``, pytest and its plugins (their modules and metadata: pytest finds its
    plugins by their entry points); and the distributions it holds ("pytest 9.2.0")."""
    buffer = io.BytesIO()
    shipped = []
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in ("pyproject.toml", *test_files):
            archive.add(REPO / name, arcname=name)
        for package in PACKAGES:
            for path in sorted((REPO / package).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    archive.add(path, arcname=str(path.relative_to(REPO)))
        for name, path in extra.items():
            archive.add(path, arcname=name)
        for distribution in closure(PYTEST):
            shipped.append(f"{distribution.metadata['Name']} {distribution.version}")
            for file in distribution.files or []:
                # Scripts (../../bin/pytest) and byte code stay behind: the guest runs
                # `python -m pytest` and compiles what it imports.
                if file.parts[0] == ".." or file.suffix == ".pyc":
                    continue
                archive.add(Path(str(distribution.locate_file(file))), arcname=f"site/{file}")
    return buffer.getvalue(), shipped


@dataclass(frozen=True)
class GuestRun:
    returncode: int
    output: str
    outcomes: dict[str, str]
    """Each test's name and outcome: passed, failed, error or skipped (with its reason)."""


def outcomes_of(junit: str) -> dict[str, str]:
    outcomes = {}
    for case in ET.fromstring(junit).iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "error"
            elif child.tag == "skipped":
                outcome = f"skipped: {child.get('message', '')}"
        outcomes[case.get("name", "?")] = outcome
    return outcomes


def ship(
    machine: Machine, test_files: tuple[str, ...], extra: dict[str, Path] | None = None
) -> list[str]:
    """Put ``test_files``, ``extra`` and pytest into the guest's GUEST_DIR (made afresh); the
    distributions of pytest shipped."""
    archive, shipped = bundle(test_files, extra or {})
    machine.put(GUEST_DIR, archive)
    return shipped


def run_pytest(machine: Machine, test_file: str, *args: str) -> GuestRun:
    """Run pytest in the guest on ``test_file`` (shipped) with ``args``, as root, with the
    appliance's Python."""
    junit = f"{GUEST_DIR}/junit.xml"
    command = (
        f"cd {GUEST_DIR} && PYTHONPATH={GUEST_DIR}/site:{GUEST_DIR}/drivers:{GUEST_DIR} "
        "PYTHONDONTWRITEBYTECODE=1 "
        f"{GUEST_PYTHON} -m pytest -p no:cacheprovider -q -rA --junitxml={junit} "
        + " ".join(shlex.quote(a) for a in (test_file, *args))
    )
    result = machine.ssh(command, check=False, timeout=900)
    report = machine.ssh(f"cat {junit}", check=False).stdout
    return GuestRun(
        returncode=result.returncode,
        output=result.stdout + result.stderr,
        outcomes=outcomes_of(report) if report.strip() else {},
    )
