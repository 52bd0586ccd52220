"""Updates dropped by the web app (plantd.system._incoming): what status.json says at each
step, with a fake ``rauc`` on PATH (a script that records what it was given and answers as
told) and the reboot injected."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from plantd.system import _incoming
from plantd.system._incoming import (
    INCOMING,
    INCOMING_INFO,
    INSTALLING,
    SLOTS_FILE,
    STATUS_FILE,
    install_incoming,
    read_status,
    refresh_at_boot,
)
from tests.unit.system._bootloader_model import make_esp

BUNDLE = b"hsqs" + bytes(range(256)) * 40  # any bytes: the fake rauc does not look inside
SLOTS = {"booted": "a", "primary": "b", "slots": {"a": "good", "b": "trying"}}

# The fake rauc: `rauc install FILE` keeps a copy of FILE, its mode, and status.json as it is
# while it runs, says what FAKE_RAUC_SAYS holds, and exits FAKE_RAUC_EXIT.
FAKE_RAUC = """#!{python}
import os, shutil, sys
record = os.environ["FAKE_RAUC_RECORD"]
os.makedirs(record, exist_ok=True)
with open(os.path.join(record, "argv"), "w") as f:
    f.write("\\n".join(sys.argv[1:]))
bundle = sys.argv[2]
shutil.copy(bundle, os.path.join(record, "bundle"))
with open(os.path.join(record, "mode"), "w") as f:
    f.write(oct(os.stat(bundle).st_mode & 0o7777))
folder = os.path.dirname(bundle)
shutil.copy(os.path.join(folder, "status.json"), os.path.join(record, "status.json"))
with open(os.path.join(record, "incoming-there"), "w") as f:
    f.write(str(os.path.exists(os.path.join(folder, "incoming.raucb"))))
print(os.environ.get("FAKE_RAUC_SAYS", "installing: 100% Installing done."), flush=True)
sys.exit(int(os.environ.get("FAKE_RAUC_EXIT", "0")))
"""


@pytest.fixture
def rauc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ``rauc`` first on PATH; returns the directory where it records its run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "rauc"
    script.write_text(FAKE_RAUC.format(python=sys.executable))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    record = tmp_path / "rauc-record"
    monkeypatch.setenv("FAKE_RAUC_RECORD", str(record))
    return record


@pytest.fixture
def update_dir(tmp_path: Path) -> Path:
    """The update directory with a bundle dropped as the proxy drops one."""
    directory = tmp_path / "update"
    directory.mkdir()
    info = {"name": "plantd-1.2.raucb", "bytes": len(BUNDLE), "by": "user.ada", "sha256": "ab"}
    (directory / INCOMING_INFO).write_text(json.dumps(info))
    (directory / INCOMING).write_bytes(BUNDLE)
    return directory


class Reboots:
    """The injected reboot: counts, and keeps status.json as it was at the moment."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.seen: list[dict[str, Any]] = []

    def __call__(self) -> None:
        self.seen.append(read_status(self.directory))


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Every (file name, content) write_json wrote, in order."""
    seen: list[tuple[str, dict[str, Any]]] = []
    real = _incoming.write_json

    def recording(path: Path, value: dict[str, Any]) -> None:
        seen.append((path.name, dict(value)))
        real(path, value)

    monkeypatch.setattr(_incoming, "write_json", recording)
    return seen


def states(written: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [value["state"] for name, value in written if name == STATUS_FILE]


def test_a_good_bundle_is_installed_then_the_device_reboots(
    rauc: Path, update_dir: Path, written: list[tuple[str, dict[str, Any]]]
) -> None:
    reboot = Reboots(update_dir)
    code = install_incoming(update_dir / INCOMING, slots_now=lambda: SLOTS, reboot=reboot)
    assert code == 0
    # RAUC was given the bundle moved aside, byte for byte, while status.json said installing
    assert (rauc / "argv").read_text().splitlines() == ["install", str(update_dir / INSTALLING)]
    assert (rauc / "bundle").read_bytes() == BUNDLE
    assert (rauc / "incoming-there").read_text() == "False"  # the path unit cannot fire again
    during = json.loads((rauc / "status.json").read_text())
    assert during["state"] == "installing"
    assert during["bundle"] == "plantd-1.2.raucb"
    assert during["by"] == "user.ada"
    assert states(written) == ["installing", "installed", "rebooting"]
    assert [seen["state"] for seen in reboot.seen] == ["rebooting"]  # rebooted once, last
    final = read_status(update_dir)
    assert (final["state"], final["slot"], final["message"]) == (
        "rebooting",
        "b",
        "rebooting into slot b, on trial",
    )
    assert final["started"]
    assert final["finished"]
    # the bundle and what the proxy said about it are gone; the slots are written beside
    assert sorted(path.name for path in update_dir.iterdir()) == [SLOTS_FILE, STATUS_FILE]
    slots = json.loads((update_dir / SLOTS_FILE).read_text())
    assert {key: slots[key] for key in SLOTS} == SLOTS
    assert stat.S_IMODE((update_dir / STATUS_FILE).stat().st_mode) == 0o640


def test_a_refused_bundle_is_failed_with_raucs_words_and_no_reboot(
    rauc: Path,
    update_dir: Path,
    written: list[tuple[str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_RAUC_EXIT", "1")
    monkeypatch.setenv(
        "FAKE_RAUC_SAYS",
        "installing\nLastError: Failed verifying signature: signature verification failed",
    )
    reboot = Reboots(update_dir)
    code = install_incoming(update_dir / INCOMING, slots_now=lambda: SLOTS, reboot=reboot)
    assert code == 1
    assert reboot.seen == []
    assert states(written) == ["installing", "failed"]
    final = read_status(update_dir)
    assert final["state"] == "failed"
    assert "signature verification failed" in final["message"]
    assert final["finished"]
    assert not (update_dir / INSTALLING).exists()
    assert not (update_dir / INCOMING).exists()


def test_rauc_missing_is_a_failure_not_a_crash(
    tmp_path: Path, update_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reboot = Reboots(update_dir)
    code = install_incoming(
        update_dir / INCOMING,
        slots_now=lambda: SLOTS,
        reboot=reboot,
        rauc=str(tmp_path / "no-rauc"),
    )
    assert (code, reboot.seen) == (1, [])
    final = read_status(update_dir)
    assert final["state"] == "failed"
    assert "cannot run" in final["message"]


def test_a_link_dropped_as_the_bundle_is_refused_and_its_target_untouched(
    rauc: Path, update_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "a-file-of-roots"
    target.write_text("secret")
    target.chmod(0o600)
    (update_dir / INCOMING).unlink()
    (update_dir / INCOMING).symlink_to(target)
    reboot = Reboots(update_dir)
    code = install_incoming(update_dir / INCOMING, slots_now=lambda: SLOTS, reboot=reboot)
    assert (code, reboot.seen) == (1, [])
    final = read_status(update_dir)
    assert final["state"] == "failed"
    assert "not given to rauc" in final["message"]
    assert not rauc.exists()  # rauc never ran
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text() == "secret"
    assert not (update_dir / INSTALLING).exists()


def test_the_bundle_rauc_reads_is_no_longer_the_senders_to_change(
    rauc: Path, update_dir: Path
) -> None:
    (update_dir / INCOMING).chmod(0o664)
    install_incoming(update_dir / INCOMING, slots_now=lambda: SLOTS, reboot=Reboots(update_dir))
    assert (rauc / "mode").read_text() == "0o640"


def test_nothing_dropped_is_nothing_to_do(tmp_path: Path, rauc: Path) -> None:
    reboot = Reboots(tmp_path)
    assert install_incoming(tmp_path / INCOMING, slots_now=lambda: SLOTS, reboot=reboot) == 0
    assert reboot.seen == []
    assert not (tmp_path / STATUS_FILE).exists()
    assert not rauc.exists()


def test_the_slots_unreadable_do_not_stop_the_update(rauc: Path, update_dir: Path) -> None:
    def broken() -> dict[str, Any]:
        raise OSError("no boot partition")

    reboot = Reboots(update_dir)
    assert install_incoming(update_dir / INCOMING, slots_now=broken, reboot=reboot) == 0
    assert read_status(update_dir)["state"] == "rebooting"
    assert not (update_dir / SLOTS_FILE).exists()


@pytest.mark.parametrize(
    ("booted", "settle", "state"),
    [("b", True, "installed"), ("a", True, "failed"), ("b", False, "rebooting")],
)
def test_the_next_boot_settles_a_rebooting_status(
    tmp_path: Path, booted: str, settle: bool, state: str
) -> None:
    status = {"state": "rebooting", "bundle": "x.raucb", "slot": "b", "finished": None}
    (tmp_path / STATUS_FILE).write_text(json.dumps(status))
    slots = {**SLOTS, "booted": booted}
    refresh_at_boot(lambda: slots, settle=settle, directory=tmp_path)
    final = read_status(tmp_path)
    assert final["state"] == state
    if state == "failed":
        assert final["message"] == ("slot b did not stay (its trial boot failed): back on slot a")
    assert json.loads((tmp_path / SLOTS_FILE).read_text())["booted"] == booted


def test_a_boot_in_the_middle_of_an_install_fails_it(tmp_path: Path) -> None:
    (tmp_path / STATUS_FILE).write_text(json.dumps({"state": "installing", "finished": None}))
    (tmp_path / INSTALLING).write_bytes(BUNDLE)
    refresh_at_boot(lambda: SLOTS, directory=tmp_path)
    final = read_status(tmp_path)
    assert final["state"] == "failed"
    assert "restarted during the install" in final["message"]
    assert final["finished"]
    assert not (tmp_path / INSTALLING).exists()


def test_a_boot_leaves_other_statuses_and_a_missing_directory_alone(tmp_path: Path) -> None:
    (tmp_path / STATUS_FILE).write_text(json.dumps({"state": "failed", "message": "m"}))
    refresh_at_boot(lambda: SLOTS, directory=tmp_path)
    assert read_status(tmp_path) == {"state": "failed", "message": "m"}
    refresh_at_boot(lambda: SLOTS, directory=tmp_path / "none")  # no error, nothing made
    assert not (tmp_path / "none").exists()


def test_no_status_file_reads_as_idle(tmp_path: Path) -> None:
    assert read_status(tmp_path) == {"state": "idle"}
    (tmp_path / STATUS_FILE).write_text("not json")
    assert read_status(tmp_path) == {"state": "idle"}
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text('{"state": "installed"}')
    (tmp_path / STATUS_FILE).unlink()
    (tmp_path / STATUS_FILE).symlink_to(elsewhere)  # never read through a link
    assert read_status(tmp_path) == {"state": "idle"}


@pytest.mark.skipif(os.geteuid() != 0, reason="plant system update runs as root only")
def test_plant_system_update_from_proxy(rauc: Path, update_dir: Path, tmp_path: Path) -> None:
    """The command plantd-update.service runs, without its reboot (--no-reboot)."""
    (tmp_path / "esp").mkdir()
    esp = make_esp(tmp_path / "esp")
    command = ["system", "update", "--from-proxy", "--no-reboot", str(update_dir / INCOMING)]
    done = subprocess.run(
        [sys.executable, "-m", "plantd.cli", *command],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PLANTD_ESP": str(esp.esp)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Installing done." in done.stdout
    assert read_status(update_dir)["state"] == "rebooting"
    slots = json.loads((update_dir / SLOTS_FILE).read_text())
    assert (slots["primary"], slots["slots"]["a"]) == ("a", "good")
