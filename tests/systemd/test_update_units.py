"""Updates from the web app: plantd-update.path sees the bundle the proxy renamed into place
and starts plantd-update.service (root, ``plant system update --from-proxy``). The files they
name are the ones plantd.system._incoming and the proxy use, the directory is made for the
proxy to write, ``systemd-analyze verify`` says nothing about the units, and the root service
stays at most 2.0 on ``systemd-analyze security``."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantd.config import PathsConfig
from plantd.system._incoming import INCOMING, UPDATE_DIR
from tests.systemd._analyze import analyze, exposure, needs_systemd
from tests.systemd._unitfiles import REPO, UNITS, appliance_root, one, values

PATH_UNIT = "plantd-update.path"
SERVICE = "plantd-update.service"


def test_the_directory_is_the_proxys_update_directory_on_the_appliance() -> None:
    # the proxy writes <paths.data>/update; the units and the wrapper name the appliance's
    assert PathsConfig().data / "update" == UPDATE_DIR
    tmpfiles = (UNITS / "plantd.tmpfiles").read_text().splitlines()
    assert f"d {UPDATE_DIR} 0750 plantd plantd -" in tmpfiles
    # the proxy's sandbox may write there: /var/lib/plantd is its StateDirectory
    assert one("plantd-proxy.service", "Service", "StateDirectory") == "plantd"


def test_the_path_unit_sees_only_a_complete_bundle() -> None:
    # PathExists= on the name the rename makes: never the .part file being written
    assert values(PATH_UNIT, "Path", "PathExists") == [str(UPDATE_DIR / INCOMING)]
    assert values(PATH_UNIT, "Path", "PathChanged") == []
    assert values(PATH_UNIT, "Path", "PathModified") == []
    assert one(PATH_UNIT, "Path", "Unit") == SERVICE
    assert int(one(PATH_UNIT, "Path", "TriggerLimitBurst")) >= 1
    assert one(PATH_UNIT, "Install", "WantedBy") == "multi-user.target"


def test_the_service_is_a_root_oneshot_that_installs_from_the_proxy() -> None:
    assert one(SERVICE, "Service", "Type") == "oneshot"
    assert values(SERVICE, "Service", "User") == []  # root: RAUC's D-Bus API, the reboot
    assert one(SERVICE, "Service", "ExecStart") == (
        f"/opt/plantd/venv/bin/plant system update --from-proxy {UPDATE_DIR / INCOMING}"
    )
    assert one(SERVICE, "Service", "ReadWritePaths") == str(UPDATE_DIR)
    assert one(SERVICE, "Service", "ProtectSystem") == "strict"
    assert set(one(SERVICE, "Service", "CapabilityBoundingSet").split()) == {
        "CAP_DAC_OVERRIDE",
        "CAP_CHOWN",
    }
    assert one(SERVICE, "Unit", "StartLimitIntervalSec") == "0"


def test_the_image_enables_the_path_unit() -> None:
    script = (REPO / "image/layers/plantd/customize.sh").read_text()
    assert '"$repo"/systemd/*.path' in script
    assert '"$repo"/systemd/*.service' in script
    assert "enable plantd-update.path" in script


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return appliance_root(tmp_path_factory.mktemp("root"), ["opt/plantd/venv/bin/plant"])


@needs_systemd
def test_the_units_verify_with_no_output(root: Path) -> None:
    result = analyze("verify", f"--root={root}", PATH_UNIT, SERVICE)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_systemd
def test_the_update_service_scores_at_most_2(root: Path) -> None:
    result = analyze("security", "--offline=true", f"--root={root}", SERVICE)
    assert result.returncode == 0, result.stderr
    assert exposure(result.stdout) <= 2.0, result.stdout
