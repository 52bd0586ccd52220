"""``plant sim run`` as a user meets it: a busy port and a non-root user without ``--config``
end in a clear message (or just work), never in a Python traceback."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PLANT = [sys.executable, "-m", "plantd.cli"]
NOBODY = 65534
SITE = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"


def sim_file(directory: Path, *, port: int = 0, transport: str = "tcp") -> Path:
    where = f"port: {port}" if transport == "tcp" else "link: ttyLINE"
    path = directory / "rig.yaml"
    path.write_text(
        "name: rig\n"
        "devices:\n"
        f"  - {{name: dev, transport: {transport}, {where},\n"
        "     units: [{unit: 1, points: [{name: p, table: holding, address: 0, value: 7}]}]}\n"
    )
    return path


def test_a_busy_port_is_named_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "plantd.yaml").write_text(f"paths: {{run: {tmp_path / 'run'}}}\n")
    with socket.socket() as taken:  # a server already there
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rig = sim_file(tmp_path, port=port)
        run = subprocess.run(
            [*PLANT, "--config", str(tmp_path), "sim", "run", "--no-control", str(rig)],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert (
        f"plant: error: rig: device 'dev' cannot listen on 127.0.0.1:{port}: "
        "Address already in use (another simulator or server has it? port: 0 or --free-ports "
        "takes any free port)"
    ) in run.stderr


def _python_for_nobody() -> str | None:
    """An interpreter of this version that user nobody may run (the virtualenv's may live in
    root's home), to run plantd from this checkout's site-packages."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (os.path.realpath(sys.executable), f"/usr/bin/{version}"):
        path = Path(candidate)
        if path.exists() and all(
            p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents] if p != Path("/")
        ):
            return str(path)
    return None


@pytest.fixture
def world_tmp() -> Iterator[Path]:
    """A temp directory user nobody may write in (pytest's own is root's alone)."""
    directory = Path(tempfile.mkdtemp(prefix="plantd-test-"))
    directory.chmod(0o1777)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process as nobody")
def test_a_user_without_config_gets_pty_links_in_a_directory_of_their_own(
    world_tmp: Path,
) -> None:
    python = _python_for_nobody()
    if python is None:
        pytest.skip("no interpreter of this version that user nobody may run")
    rig = sim_file(world_tmp, transport="rtu")
    rig.chmod(0o644)
    code = (
        f"import site, sys; site.addsitedir({str(SITE / 'site-packages')!r}); "
        "from plantd.cli import main; sys.exit(main())"
    )
    environ = {"PATH": "/usr/bin:/bin", "HOME": str(world_tmp), "TMPDIR": str(world_tmp)}
    # No --config and no /etc/plantd: built-in defaults, whose paths.run is /run/plantd.
    process = subprocess.Popen(
        [python, "-c", code, "sim", "run", "--no-control", str(rig)],
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        env=environ,
        cwd=world_tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # before: empty, and a traceback on stderr
        assert first.startswith("rig: 1 devices"), first
        line = process.stdout.readline()
        link = world_tmp / f"plantd-{NOBODY}" / "ttyLINE"
        assert f"{link} -> /dev/pts/" in line  # before: PermissionError: '/run/plantd'
        assert link.is_symlink()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "Traceback" not in stderr
